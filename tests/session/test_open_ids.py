"""Open provider catalogs: ``openai/ANY-ID`` without declaring it, ``provider:model``, the bundled price table."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from opencode_lab import Lab, LabError, ModelNotFoundError
from opencode_lab.providers.prices import bundled_price
from opencode_lab.testing import FaultServer

KEY = "sk-test-open-ids-123456"


@pytest.fixture
def openai_lab(fault: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """Only OPENAI_API_KEY and OPENAI_BASE_URL set, the base URL on a loopback server that lists two models."""
    fault.configure(models=["gpt-4o-mini", "some-new-model"])
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fault.base_url)
    with Lab.from_env() as lab:
        yield lab


def test_an_undeclared_openai_id_answers(openai_lab: Lab, fault: FaultServer) -> None:
    result = openai_lab.chat("hi there", model="openai/gpt-4o-mini", cache=False)
    assert result.text == "echo: hi there"
    assert result.served_by == "openai/gpt-4o-mini"
    assert fault.log[-1]["model"] == "gpt-4o-mini"


def test_provider_colon_model_is_a_synonym(openai_lab: Lab) -> None:
    result = openai_lab.chat("hi", model="openai:gpt-4o-mini", cache=False)
    assert result.served_by == "openai/gpt-4o-mini"


def test_an_id_the_provider_does_not_list_suggests_the_closest(openai_lab: Lab, fault: FaultServer) -> None:
    with pytest.raises(ModelNotFoundError, match=r"openai/gpt-4o-mni.*did you mean openai/gpt-4o-mini"):
        openai_lab.chat("hi", model="openai/gpt-4o-mni")
    assert [e["path"] for e in fault.log] == ["/v1/models"]  # refused before any chat was sent


def test_the_model_list_is_fetched_once_per_session(openai_lab: Lab, fault: FaultServer) -> None:
    for _ in range(3):
        openai_lab.chat("hi", model="openai/gpt-4o-mini", cache=False)
    assert sum(e["path"] == "/v1/models" for e in fault.log) == 1


def test_ids_stay_unchecked_when_the_list_cannot_be_fetched(fault: FaultServer, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fault.base_url.replace("/v1", "/elsewhere"))
    with Lab.from_env() as lab, pytest.raises(LabError, match="no route POST /elsewhere/chat/completions"):
        lab.chat("hi", model="openai/any-model-at-all", cache=False)  # the list's 404 did not stop the chat
    assert [e["path"] for e in fault.log][:2] == ["/elsewhere/models", "/elsewhere/chat/completions"]


def test_cost_comes_from_the_bundled_price_table(openai_lab: Lab) -> None:
    result = openai_lab.chat("one two three", model="openai/gpt-4o-mini", cache=False)
    price = bundled_price("openai", "gpt-4o-mini")
    assert price is not None
    assert result.cost_source == "catalog"
    expected = (result.input_tokens * price.input_per_mtok + result.output_tokens * price.output_per_mtok) / 1e6
    assert result.cost_usd == pytest.approx(expected)


def test_a_model_missing_from_the_price_table_has_unknown_cost(openai_lab: Lab) -> None:
    result = openai_lab.chat("hi", model="openai/some-new-model", cache=False)
    assert result.cost_source == "unknown" and math.isnan(result.cost_usd)


def test_a_price_in_toml_overrides_the_table(fault: FaultServer, monkeypatch, make_lab) -> None:
    fault.configure(models=["gpt-4o-mini"])
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fault.base_url)
    lab = make_lab(
        '[models."openai/gpt-4o-mini"]\nprovider = "openai"\nupstream = "gpt-4o-mini"\n'
        "input_price = 1.0\noutput_price = 2.0\n"
    )
    result = lab.chat("one two three", model="openai/gpt-4o-mini", cache=False)
    assert result.cost_usd == pytest.approx((result.input_tokens * 1.0 + result.output_tokens * 2.0) / 1e6)


@pytest.mark.parametrize(
    ("provider", "model", "base"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini", "gemini-1.5-flash-001", "gemini-1.5-flash"),
    ],
)
def test_a_dated_snapshot_is_priced_as_its_model(provider: str, model: str, base: str) -> None:
    assert bundled_price(provider, model) == bundled_price(provider, base) is not None


def test_the_table_knows_nothing_of_an_unlisted_model() -> None:
    assert bundled_price("openai", "gpt-99") is None
    assert bundled_price("nobody", "gpt-4o") is None


def test_colon_is_a_synonym_for_a_declared_provider_too(fault: FaultServer, make_lab) -> None:
    lab = make_lab(f'[providers.mine]\nbase_url = "{fault.base_url}"\nmodels = ["fault-model"]\n')
    assert lab.chat("hi", model="mine:fault-model", cache=False).served_by == "mine/fault-model"


def test_a_colon_inside_a_model_id_is_not_taken_for_a_provider(fault: FaultServer, make_lab) -> None:
    lab = make_lab(f'[providers.mine]\nbase_url = "{fault.base_url}"\nmodels = ["llama3:8b"]\n')
    assert lab.chat("hi", model="llama3:8b", cache=False).served_by == "mine/llama3:8b"
