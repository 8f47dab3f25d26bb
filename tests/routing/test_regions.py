"""Regions in routing, on three regional loopback servers: the ``nearest`` strategy and residency as a hard rule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from opencode_lab import Lab, ResidencyError
from opencode_lab.testing import FaultServer

REGIONS = ("eu-central-1", "europe-west1", "us-east-1")


def regional_toml(servers: list[FaultServer], *, lab: str = "", model: str = "", regions: tuple = REGIONS) -> str:
    """Model ``haiku`` with one deployment per server, server i in ``regions[i]`` (``None``: no region), plus a
    model ``us-only`` on the last server; *lab* and *model* are extra lines for ``[lab]`` and ``[models.haiku]``."""
    lines = [f"[lab]\nmax_retries = 0\n{lab}\n"]
    for i, (server, region) in enumerate(zip(servers, regions, strict=True)):
        where = "" if region is None else f'region = "{region}"'
        lines.append(f'[providers.p{i}]\nbase_url = "{server.base_url}"\n{where}\n')
    lines.append(f"[models.haiku]\n{model}\n")
    for i in range(len(servers)):
        lines.append(f'[[models.haiku.deployments]]\nprovider = "p{i}"\nupstream = "fault-model"\n')
    lines.append(f'[models.us-only]\nprovider = "p{len(servers) - 1}"\nupstream = "fault-model"\n')
    return "\n".join(lines)


def served(lab: Lab, calls: int, **options: object) -> Counter[str]:
    """Where *calls* sequential uncached calls to ``haiku`` were answered, by region."""
    return Counter(lab.chat(f"q{i}", "haiku", cache=False, **options).region or "?" for i in range(calls))


@pytest.mark.slow
def test_nearest_sends_most_calls_to_the_fastest_region_and_leaves_it_when_it_slows(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    fast, medium, slow = faults
    fast.configure(latency_s=0.005)
    medium.configure(latency_s=0.1)
    slow.configure(latency_s=0.2)
    lab = make_lab(regional_toml(faults, lab='strategy = "nearest"'))
    first = served(lab, 200)
    assert first["eu-central-1"] >= 160, first
    fast.configure(latency_s=0.6)
    moved = [lab.chat(f"slow{i}", "haiku", cache=False).region for i in range(20)]
    assert "eu-central-1" not in moved[2:], moved  # gone within a few calls
    assert Counter(moved[2:]).most_common(1)[0][0] == "europe-west1"  # to the next fastest


def test_nearest_leaves_a_throttled_region_at_once(faults: list[FaultServer], make_lab: Callable[..., Lab]) -> None:
    fast, medium, slow = faults
    fast.configure(latency_s=0.0)
    medium.configure(latency_s=0.05)
    slow.configure(latency_s=0.1)
    lab = make_lab(regional_toml(faults, lab='strategy = "nearest"'))
    served(lab, 5)  # every region measured once; the fastest leads
    assert lab.chat("warm", "haiku", cache=False).region == "eu-central-1"
    fast.configure(queue=["rate_limit"], retry_after=60)
    throttled = lab.chat("now", "haiku", cache=False)
    assert throttled.region == "europe-west1"
    assert [a.deployment for a in throttled.attempts] == ["p0/fault-model", "p1/fault-model"]
    before = fast.count()
    assert set(served(lab, 10)) == {"europe-west1"}
    assert fast.count() == before  # paused for its Retry-After: not sent to again


def test_nearest_prefers_the_home_region_over_a_faster_one(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    faults[0].configure(latency_s=0.0)
    faults[2].configure(latency_s=0.05)
    lab = make_lab(regional_toml(faults, lab='strategy = "nearest"\nhome_region = "us-east-1"'))
    assert set(served(lab, 10)) == {"us-east-1"}
    faults[2].configure(mix={"server_error": 1.0})
    assert lab.chat("home is down", "haiku", cache=False).region in ("eu-central-1", "europe-west1")


def test_an_eu_only_model_with_both_eu_servers_down_never_reaches_the_us_server(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    eu1, eu2, us = faults
    lab = make_lab(regional_toml(faults, model='regions = ["eu-*", "europe-*"]'))
    eu1.configure(mix={"server_error": 1.0})
    eu2.configure(mix={"unavailable": 1.0})
    with pytest.raises(ResidencyError, match=r'regions = \["eu-\*", "europe-\*"\]') as caught:
        lab.chat("private", "haiku", cache=False)
    assert "kept out: p2/fault-model (us-east-1)" in str(caught.value)
    rows = lab.compare(["a", "b", "c"], "haiku", cache=False)
    assert list(rows["error_type"]) == ["residency"] * 3
    assert us.count() == 0
    assert eu1.count() > 0 and eu2.count() > 0


def test_a_residency_rule_is_kept_on_a_fallback_list(faults: list[FaultServer], make_lab: Callable[..., Lab]) -> None:
    eu1, eu2, us = faults
    lab = make_lab(regional_toml(faults, model='regions = ["eu-*"]'))
    eu1.configure(mix={"server_error": 1.0})
    with pytest.raises(ResidencyError):
        lab.chat("private", ["haiku", "us-only"], cache=False)
    assert us.count() == 0 and eu2.count() == 0  # europe-west1 is outside eu-*


def test_a_calls_regions_narrow_where_it_goes(faults: list[FaultServer], make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(regional_toml(faults))
    assert set(served(lab, 6, regions=["us-*"])) == {"us-east-1"}
    assert faults[0].count() == faults[1].count() == 0


def test_the_lab_wide_rule_holds_for_every_call(faults: list[FaultServer], make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(regional_toml(faults, lab='regions = ["europe-*"]'))
    assert set(served(lab, 6)) == {"europe-west1"}
    with pytest.raises(ResidencyError, match="no deployment is inside"):
        lab.chat("hello", "us-only", cache=False)
    assert faults[2].count() == 0


def test_a_deployment_without_a_region_never_satisfies_a_rule(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(regional_toml(faults, regions=(None, "eu-central-1", None)))
    assert set(served(lab, 6, regions=["*"])) == {"eu-central-1"}
    assert faults[0].count() == faults[2].count() == 0


def test_no_deployment_inside_the_rule_fails_before_anything_is_sent(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(regional_toml(faults))
    row = lab.compare(["a"], "haiku", regions=["ap-*"]).iloc[0]
    assert row["error_type"] == "residency"
    assert 'regions = ["ap-*"]' in row["error"] and "no deployment is inside" in row["error"]
    assert sum(s.count() for s in faults) == 0


def test_rows_record_the_region_that_answered_and_stats_group_by_it(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(regional_toml(faults, lab='strategy = "round_robin"'))
    rows = lab.compare([f"p{i}" for i in range(6)], "haiku", concurrency=1)
    assert sorted(Counter(rows["region"]).items()) == [("eu-central-1", 2), ("europe-west1", 2), ("us-east-1", 2)]
    table = lab.stats(rows, by="region")
    assert sorted(table.index) == sorted(REGIONS) and list(table["calls"]) == [2, 2, 2]


def test_a_cached_answer_is_not_reused_across_a_residency_rule(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(regional_toml(faults))
    lab.chat("same", "us-only")
    assert lab.chat("same", "us-only").cached
    with pytest.raises(ResidencyError):
        lab.chat("same", "us-only", regions=["eu-*"])


def test_a_stream_keeps_the_rule_too(faults: list[FaultServer], make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(regional_toml(faults))
    faults[0].configure(mix={"server_error": 1.0})
    with pytest.raises(ResidencyError):
        list(lab.stream("private", "haiku", regions=["eu-central-*"], cache=False))
    assert faults[1].count() == faults[2].count() == 0
    *_, result = lab.stream_events("open", "haiku", regions=["us-*"], cache=False)
    assert result.region == "us-east-1"


def test_a_chat_health_check_never_probes_outside_the_lab_wide_rule(
    faults: list[FaultServer], make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(regional_toml(faults, lab='regions = ["eu-*", "europe-*"]'))
    report = lab.health_check(chat=True)
    assert report.loc["p2/fault-model", "error"].startswith("residency: not sent")
    assert bool(report.loc["p0/fault-model", "ok"]) and faults[2].count() == 0
