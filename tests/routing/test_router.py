"""Routing scenarios against several real loopback fault servers: rotation, limits, failover, breakers."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from opencode_lab import AllAttemptsFailedError, BadRequestError, ContextWindowError, StreamInterruptedError


def served(lab_or_frame) -> Counter:
    return Counter(a["served_by"] for a in lab_or_frame.records if a["status"] == "ok")


def test_round_robin_rotates_across_deployments(faults, make_lab, fault_toml) -> None:
    lab = make_lab(fault_toml(*faults) + '\n[lab]\nstrategy = "round_robin"\n[cache]\nmode = "off"\n')
    for i in range(9):
        lab.chat(f"q{i}", "m")
    assert [s.count() for s in faults] == [3, 3, 3]


def test_a_429_with_retry_after_pauses_that_deployment_and_moves_traffic(faults, make_lab, fault_toml) -> None:
    """Scenario (a): no request reaches the throttled deployment before its Retry-After passes."""
    faults[0].configure(queue=["rate_limit"], retry_after=2)
    lab = make_lab(fault_toml(*faults) + '\n[cache]\nmode = "off"\n')
    first = lab.chat("q-first", "m")
    assert first.served_by != "f0/fault-model"
    assert next(a.error_type for a in first.attempts) == "rate_limit"
    throttled_at = faults[0].log[0]["t"]
    for i in range(40):
        lab.chat(f"q{i}", "m")
        if faults[0].count() > 1:
            break
    later = [e["t"] for e in faults[0].log[1:]]
    assert all(t - throttled_at >= 2.0 for t in later)
    assert faults[1].count() + faults[2].count() >= 2


@pytest.mark.slow
def test_the_paused_deployment_is_retried_only_when_no_other_remains(fault, make_lab, fault_toml) -> None:
    fault.configure(queue=["rate_limit"], retry_after=0.5)
    lab = make_lab(fault_toml(fault) + '\n[cache]\nmode = "off"\n')
    result = lab.chat("only one deployment", "m")
    assert result.text == "echo: only one deployment"
    first, second = fault.log
    assert second["t"] - first["t"] >= 0.5


def test_a_dead_deployment_is_opened_and_then_only_probed_once_per_cooldown(faults, make_lab, fault_toml) -> None:
    """Scenario (b): the breaker opens after the threshold; afterwards at most one probe per cool-down."""
    faults[0].configure(mix={"server_error": 1.0}, seed=1)
    lab = make_lab(
        fault_toml(faults[0], faults[1])
        + """
[lab]
breaker_failures = 3
breaker_cooldown_s = 0.5
max_retries = 0
[cache]
mode = "off"
"""
    )
    import time

    started = time.monotonic()
    for i in range(60):
        assert lab.chat(f"q{i}", "m").served_by == "f1/fault-model"
    elapsed = time.monotonic() - started
    dead_hits = faults[0].count()
    assert dead_hits <= 3 + int(elapsed / 0.5) + 1
    assert lab.health().loc["f0/fault-model", "state"] in ("open", "half_open")


@pytest.mark.slow
def test_rpm_is_never_exceeded_in_any_window_on_the_server(fault, make_lab, fault_toml) -> None:
    """Scenario (c), with a scaled window: rpm=10 per 1 s window, 35 concurrent requests."""
    lab = make_lab(fault_toml(fault, rpm=10) + '\n[lab]\nrate_window_s = 1.0\n[cache]\nmode = "off"\n')
    frame = lab.compare([f"q{i}" for i in range(35)], "m", progress=False, concurrency=35)
    assert frame["error_type"].isna().all()
    times = sorted(e["t"] for e in fault.log)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 10


@pytest.mark.slow
def test_random_faults_are_absorbed_by_failover(faults, make_lab, fault_toml) -> None:
    """Scenario (d): 500 requests, 20% faults at random; >= 99% succeed, none resent after success."""
    for i, server in enumerate(faults):
        server.configure(
            mix={"rate_limit": 0.07, "server_error": 0.07, "hang": 0.03, "reset": 0.03},
            seed=100 + i,
            retry_after=0.2,
            hang_s=5,
        )
    # timeout_s bounds a whole attempt: 0.5 s cut answers that a loaded machine delivered late, resending them
    lab = make_lab(
        fault_toml(*faults)
        + """
[lab]
timeout_s = 1.5
[cache]
mode = "off"
"""
    )
    frame = lab.compare([f"prompt {i}" for i in range(500)], "m", progress=False, concurrency=50)
    assert len(frame) == 500
    assert list(frame["prompt"]) == [f"prompt {i}" for i in range(500)]
    ok = frame["error_type"].isna()
    assert ok.mean() >= 0.99
    known = {"rate_limit", "server_error", "timeout", "connection"}
    assert set(frame.loc[~ok, "error_type"]) <= known
    successes = Counter(e["prompt"] for s in faults for e in s.log if e["outcome"] == "ok")
    assert max(successes.values()) == 1


@pytest.mark.slow
def test_least_latency_sends_most_traffic_to_the_fastest(faults, make_lab, fault_toml) -> None:
    """Scenario (e1)."""
    for server, latency in zip(faults, (0.0, 0.03, 0.06), strict=True):
        server.configure(latency_s=latency)
    lab = make_lab(fault_toml(*faults) + '\n[lab]\nstrategy = "least_latency"\n[cache]\nmode = "off"\n')
    lab.router.rng.seed(5)  # the strategy draws its pairs from the router's rng
    for i in range(60):
        lab.chat(f"q{i}", "m")
    counts = [s.count() for s in faults]
    assert counts[0] > counts[1] + counts[2]


@pytest.mark.slow  # real latencies: a loaded machine adds noise; the strategy itself is unit-tested
@pytest.mark.parametrize("concurrency", [1, 8])
def test_least_latency_splits_two_equal_servers_within_60_40(faults, make_lab, fault_toml, concurrency) -> None:
    """Issue 12 (3): in flight and stale figures count, so neither server starves, one at a time or in bursts."""
    for server in faults[:2]:
        server.configure(latency_s=0.08)  # long enough that a loaded machine's scheduling noise cannot tip it
    lab = make_lab(
        fault_toml(faults[0], faults[1])
        + '\n[lab]\nstrategy = "least_latency"\nrunlog = "off"\n[cache]\nmode = "off"\n'
    )
    lab.router.rng.seed(12)
    frame = lab.compare([f"q{i}" for i in range(60)], "m", progress=False, concurrency=concurrency)
    assert frame["error_type"].isna().all()
    assert 24 <= faults[0].count() <= 36, [s.count() for s in faults]


@pytest.mark.slow
def test_weighted_follows_its_weights_within_five_points(faults, make_lab) -> None:
    """Scenario (e2): 1,000 calls with weights 1:2:7."""
    toml = "\n".join(f'[providers.f{i}]\nbase_url = "{s.base_url}"\n' for i, s in enumerate(faults))
    for i, weight in enumerate((1, 2, 7)):
        toml += f'\n[[models.m.deployments]]\nprovider = "f{i}"\nupstream = "x"\nweight = {weight}\n'
    lab = make_lab(toml + '\n[lab]\nstrategy = "weighted"\nrunlog = "off"\n[cache]\nmode = "off"\n')
    lab.compare([f"q{i}" for i in range(1000)], "m", progress=False, concurrency=20)
    shares = [s.count() / 1000 for s in faults]
    for share, expected in zip(shares, (0.1, 0.2, 0.7), strict=True):
        assert abs(share - expected) <= 0.05


def test_a_bad_request_is_never_retried(faults, make_lab, fault_toml) -> None:
    lab = make_lab(fault_toml(*faults) + '\n[cache]\nmode = "off"\n')
    with pytest.raises(BadRequestError):
        lab.chat("broken [[fault:bad_request]]", "m")
    assert sum(s.count() for s in faults) == 1


@pytest.mark.slow
def test_an_exhausted_request_raises_one_error_naming_every_attempt(faults, make_lab, fault_toml) -> None:
    lab = make_lab(fault_toml(*faults) + '\n[lab]\nmax_retries = 1\n[cache]\nmode = "off"\n')
    with pytest.raises(AllAttemptsFailedError) as info:
        lab.chat("always [[fault:server_error]]", "m")
    assert len(info.value.attempts) == 6
    assert {a.deployment for a in info.value.attempts} == {f"f{i}/fault-model" for i in range(3)}
    assert "#6" in str(info.value)


def test_agent_max_iter_bounds_the_candidates_one_request_rotates_through(faults, make_lab, fault_toml) -> None:
    lab = make_lab(fault_toml(*faults) + '\n[lab]\nagent_max_iter = 2\nmax_retries = 0\n[cache]\nmode = "off"\n')
    with pytest.raises(AllAttemptsFailedError) as info:
        lab.chat("always [[fault:unauthorized]]", "m")
    assert len({a.deployment for a in info.value.attempts}) == 2


def test_a_prompt_too_long_for_every_deployment_fails_before_sending(fault, make_lab, fault_toml) -> None:
    lab = make_lab(fault_toml(fault, context_length=50))
    with pytest.raises(ContextWindowError):
        lab.chat("word " * 400, "m")
    assert fault.count() == 0


def test_context_window_fallback_skips_a_deployment_that_cannot_fit(faults, make_lab) -> None:
    toml = (
        f'[providers.small]\nbase_url = "{faults[0].base_url}"\n[providers.big]\nbase_url = "{faults[1].base_url}"\n'
        '[[models.m.deployments]]\nprovider = "small"\nupstream = "x"\ncontext_length = 64\n'
        '[[models.m.deployments]]\nprovider = "big"\nupstream = "x"\ncontext_length = 100000\n'
    )
    lab = make_lab(toml + '[cache]\nmode = "off"\n')
    assert lab.chat("word " * 300, "m").served_by == "big/x"
    assert faults[0].count() == 0


def test_fallback_across_a_model_list_in_chat(faults, make_lab) -> None:
    toml = (
        f'[providers.bad]\nbase_url = "{faults[0].base_url}"\nmodels = ["a"]\n'
        f'[providers.good]\nbase_url = "{faults[1].base_url}"\nmodels = ["b"]\n'
    )
    faults[0].configure(mix={"payment_required": 1.0})
    lab = make_lab(toml + '[cache]\nmode = "off"\n')
    result = lab.chat("hello", ["bad/a", "good/b"])
    assert result.served_by == "good/b"
    assert result.model == "bad/a,good/b"
    assert [a.error_type for a in result.attempts] == ["payment_required", None]


def test_a_stream_fails_over_before_its_first_token(faults, make_lab, fault_toml) -> None:
    faults[0].configure(queue=["server_error"])
    lab = make_lab(fault_toml(faults[0], faults[1]) + '\n[lab]\nmax_retries = 0\n[cache]\nmode = "off"\n')
    assert "".join(lab.stream("one two three", "m")) == "echo: one two three"


def test_a_stream_cut_after_its_first_token_is_an_error_with_the_partial_text(faults, make_lab, fault_toml) -> None:
    lab = make_lab(fault_toml(faults[0], faults[1]) + '\n[cache]\nmode = "off"\n')
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for delta in lab.stream("a b c d e f [[fault:cut_stream]]", "m"):
            received.append(delta)
    assert info.value.partial_text == "".join(received) != ""
    assert sum(s.count() for s in faults) == 1


def test_opening_and_pausing_log_one_info_line(faults, make_lab, fault_toml, caplog) -> None:
    faults[0].configure(queue=["rate_limit"], retry_after=5)
    lab = make_lab(fault_toml(faults[0], faults[1]) + '\n[lab]\nstrategy = "round_robin"\n[cache]\nmode = "off"\n')
    with caplog.at_level(logging.INFO, logger="opencode_lab"):
        lab.chat("hello", "m")
    assert any("f0/fault-model paused for 5.00s" in r.getMessage() for r in caplog.records)
