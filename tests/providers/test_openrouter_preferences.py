"""OpenRouter provider preferences reach the request body exactly as configured; the upstream that served lands in
the row.  Every test talks to the OpenAI-compatible loopback server in OpenRouter mode (``upstream_provider``)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from opencode_lab import ConfigError, InvalidRequestError, Lab
from opencode_lab.testing import FaultServer


def openrouter_toml(server: FaultServer, *, provider: str = "", model: str = "") -> str:
    """An OpenRouter provider table ``or`` on *server* and a model ``x`` on it, each with extra TOML lines."""
    return (
        f'[providers.or]\ntype = "openrouter"\nbase_url = "{server.base_url}"\n{provider}\n\n'
        f'[models.x]\nprovider = "or"\nupstream = "fault-model"\n{model}\n'
    )


@pytest.fixture
def openrouter(fault: FaultServer) -> FaultServer:
    fault.configure(upstream_provider="DeepInfra")
    return fault


def test_a_calls_preferences_are_the_provider_object_sent(
    openrouter: FaultServer, make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    preferences = {
        "order": ["anthropic", "amazon-bedrock"],
        "allow_fallbacks": False,
        "only": ["anthropic", "amazon-bedrock", "google-vertex"],
        "ignore": ["deepinfra"],
        "sort": "throughput",
        "data_collection": "deny",
        "zdr": True,
        "require_parameters": True,
        "quantizations": ["fp8", "bf16"],
        "max_price": {"prompt": 1, "completion": 2.5},
    }
    lab.chat("hello", "x", provider_routing=preferences, cache=False)
    assert openrouter.requests[-1]["provider"] == preferences


def test_no_preferences_send_no_provider_object(openrouter: FaultServer, make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    lab.chat("hello", "x", cache=False)
    assert "provider" not in openrouter.requests[-1]


def test_provider_table_model_and_call_merge_key_by_key_the_narrower_winning(
    openrouter: FaultServer, make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(
        openrouter_toml(
            openrouter,
            provider='provider_routing = { sort = "price", data_collection = "allow" }',
            model='provider_routing = { data_collection = "deny", order = ["anthropic"] }',
        )
    )
    lab.chat("hello", "x", cache=False)
    assert openrouter.requests[-1]["provider"] == {"sort": "price", "data_collection": "deny", "order": ["anthropic"]}
    lab.chat("hello", "x", provider_routing={"order": ["google-vertex"], "zdr": True}, cache=False)
    assert openrouter.requests[-1]["provider"] == {
        "sort": "price",
        "data_collection": "deny",
        "order": ["google-vertex"],
        "zdr": True,
    }


def test_lab_wide_preferences_come_from_the_vendor_setting(
    openrouter: FaultServer, make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OC_OPENROUTER_PROVIDER_ROUTING", '{"data_collection": "deny"}')
    lab = make_lab(openrouter_toml(openrouter))
    lab.chat("hello", "x", cache=False)
    assert openrouter.requests[-1]["provider"] == {"data_collection": "deny"}


def test_the_upstream_that_served_lands_in_the_row_and_survives_the_cache(
    openrouter: FaultServer, make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    live = lab.compare(["one", "two"], ["x"])
    assert list(live["upstream_provider"]) == ["DeepInfra", "DeepInfra"]
    openrouter.configure(upstream_provider="Together")
    again = lab.compare(["one", "two"], ["x"])
    assert list(again["cached"]) == [True, True]
    assert list(again["upstream_provider"]) == ["DeepInfra", "DeepInfra"]  # who answered then, not now


def test_a_streamed_answer_records_its_upstream(openrouter: FaultServer, make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    *_, result = lab.stream_events("hello", "x", cache=False)
    assert result.upstream_provider == "DeepInfra"


def test_a_server_that_names_no_upstream_leaves_it_unknown(fault: FaultServer, make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(openrouter_toml(fault))
    row = lab.compare(["hello"], ["x"]).iloc[0]
    assert row["upstream_provider"] is None


def test_stats_group_by_upstream(openrouter: FaultServer, make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    first = lab.compare(["a", "b"], ["x"])
    openrouter.configure(upstream_provider="Together")
    second = lab.compare(["c", "d", "e"], ["x"])
    table = lab.stats(pd.concat([first, second], ignore_index=True), by="upstream_provider")
    assert list(table.index) == ["DeepInfra", "Together"]
    assert list(table["calls"]) == [2, 3]


def test_a_misspelt_key_is_refused_naming_the_right_one_before_sending(
    openrouter: FaultServer, make_lab: Callable[..., Lab]
) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    with pytest.raises(InvalidRequestError, match="'data_colection'; did you mean 'data_collection'"):
        lab.chat("hello", "x", provider_routing={"data_colection": "deny"})
    with pytest.raises(InvalidRequestError, match=r"provider_routing\.sort must be one of"):
        lab.chat("hello", "x", provider_routing={"sort": "fastest"})
    with pytest.raises(InvalidRequestError, match="'fp9'; did you mean 'fp8'"):
        lab.compare(["hello"], ["x"], provider_routing={"quantizations": ["fp9"]})
    assert openrouter.requests == []


def test_a_misspelt_toml_key_names_the_file_and_table(openrouter: FaultServer, make_lab: Callable[..., Lab]) -> None:
    with pytest.raises(ConfigError, match=r"\[models.x\] provider_routing has unknown key 'ordr'; did you mean"):
        make_lab(openrouter_toml(openrouter, model='provider_routing = { ordr = ["a"] }'))
    with pytest.raises(ConfigError, match=r"\[providers.or\] provider_routing.allow_fallbacks must be true or false"):
        make_lab(openrouter_toml(openrouter, provider='provider_routing = { allow_fallbacks = "no" }'))


def test_preferences_for_a_model_not_on_openrouter_are_refused(
    fault: FaultServer, make_lab: Callable[..., Lab], fault_toml: Callable[..., str]
) -> None:
    lab = make_lab(fault_toml(fault, model="plain"))
    with pytest.raises(InvalidRequestError, match=r"no candidate .* is on OpenRouter"):
        lab.chat("hello", "plain", provider_routing={"data_collection": "deny"})
    assert fault.requests == []


def test_preferences_are_part_of_the_cache_key(openrouter: FaultServer, make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(openrouter_toml(openrouter))
    lab.chat("hello", "x")
    assert lab.chat("hello", "x").cached
    assert not lab.chat("hello", "x", provider_routing={"data_collection": "deny"}).cached
