"""The Lab end to end: chat, stream, costs, validation and the sync API inside a running event loop."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import pytest

import opencode_lab
from opencode_lab import InvalidRequestError, Lab, ModelNotFoundError


@pytest.fixture(scope="module")
def local_lab(tmp_path_factory: pytest.TempPathFactory):
    import os

    os.environ["OC_CACHE_DIR"] = str(tmp_path_factory.mktemp("lab-cache"))
    lab = Lab.from_env()
    yield lab
    lab.close()


@pytest.mark.llama
def test_chat_answers_with_the_bundled_model(local_lab: Lab) -> None:
    result = local_lab.chat(
        "What is the capital of Japan?", "local/smollm2-135m", temperature=0, seed=1, max_tokens=24, cache=False
    )
    assert "Tokyo" in result.text
    assert (result.model, result.served_by, result.provider) == ("local/smollm2-135m", "local/smollm2-135m", "local")
    assert result.cost_usd == 0.0 and result.cost_source == "local"
    assert len(result.attempts) == 1 and result.attempts[0].status == "ok"
    assert result.latency_s > 0 and result.input_tokens and result.output_tokens


def test_a_unique_suffix_resolves_to_the_full_id(local_lab: Lab) -> None:
    assert local_lab.resolve("smollm2-135m") == ["local/smollm2-135m"]


@pytest.mark.llama
def test_the_sync_api_works_inside_a_running_event_loop(local_lab: Lab) -> None:
    async def cell() -> str:
        return local_lab.chat("Say hi.", "local/smollm2-135m", temperature=0, seed=1, max_tokens=8).text

    assert asyncio.run(cell())


@pytest.mark.llama
def test_achat_is_the_async_twin(local_lab: Lab) -> None:
    sync = local_lab.chat("Name a fruit.", "local/smollm2-135m", temperature=0, seed=3, max_tokens=8, cache=False)
    result = asyncio.run(
        local_lab.achat("Name a fruit.", "local/smollm2-135m", temperature=0, seed=3, max_tokens=8, cache=False)
    )
    assert result.text == sync.text


@pytest.mark.llama
def test_stream_yields_deltas_that_make_the_answer(local_lab: Lab) -> None:
    deltas = list(
        local_lab.stream("Count to three.", "local/smollm2-135m", temperature=0, seed=1, max_tokens=16, cache=False)
    )
    assert len(deltas) > 2
    assert local_lab.calls[-1]["response"] == "".join(deltas).rstrip()


@pytest.mark.llama
def test_the_second_identical_chat_is_a_cache_hit(local_lab: Lab) -> None:
    first = local_lab.chat("Name an ocean.", "local/smollm2-135m", temperature=0, seed=2, max_tokens=12)
    second = local_lab.chat("Name an ocean.", "local/smollm2-135m", temperature=0, seed=2, max_tokens=12)
    assert second.cached and not first.cached
    assert second.text == first.text
    assert second.attempts == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "hi", "temperature": -1}, "temperature must be between"),
        ({"prompt": "hi", "temperature": "hot"}, "temperature must be a number"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens must be at least 1"),
        ({"prompt": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"prompt": 42}, "prompt must be a string"),
    ],
)
def test_bad_input_is_refused_before_any_request(local_lab: Lab, kwargs: dict, message: str) -> None:
    before = len(local_lab.records), len(local_lab.calls)
    prompt = kwargs.pop("prompt")
    with pytest.raises(InvalidRequestError, match=message):
        local_lab.chat(prompt, "local/smollm2-135m", **kwargs)
    assert (len(local_lab.records), len(local_lab.calls)) == before  # nothing was sent, nothing recorded


def test_an_unknown_model_suggests_the_closest_ids(local_lab: Lab) -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean local/smollm2-135m"):
        local_lab.chat("hi", "smollm-135")


@pytest.mark.llama
def test_module_functions_use_a_default_lab_from_the_environment() -> None:
    result = opencode_lab.chat("What is 2 + 2?", "local/smollm2-135m", temperature=0, seed=1, max_tokens=12)
    assert result.text
    assert opencode_lab.default_lab().calls[-1]["response"] == result.text


def test_openrouter_cost_is_the_providers_own_number(fault, monkeypatch: pytest.MonkeyPatch) -> None:
    fault.configure(cost_per_token=0.001)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-test-cost-123456")
    monkeypatch.setenv("OPENROUTER_BASE_URL", fault.base_url)
    monkeypatch.setenv("OPENROUTER_MODEL_LIST", "vendor/fault-model")
    with Lab.from_env() as lab:
        result = lab.chat("one two three", cache=False)
    assert result.served_by == "openrouter/vendor/fault-model"
    assert result.cost_source == "provider"
    assert result.cost_usd == pytest.approx(0.001 * result.output_tokens)


def test_catalog_pricing_prices_a_provider_that_reports_no_cost(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.p]\nbase_url = "{fault.base_url}"\n'
        '[models.m]\nprovider = "p"\nupstream = "x"\ninput_price = 1.0\noutput_price = 2.0\n'
    )
    result = lab.chat("one two three", "m", cache=False)
    assert result.cost_source == "catalog"
    assert result.cost_usd == pytest.approx((result.input_tokens * 1.0 + result.output_tokens * 2.0) / 1e6)


def _priced_model(server) -> str:
    """A model on *server* priced with a cached-input price and a request fee."""
    declared = f'[providers.p]\nbase_url = "{server.base_url}"\n[models.m]\nprovider = "p"\nupstream = "x"\n'
    return declared + _CACHED_PRICES


_CACHED_PRICES = 'input_price = 2.0\noutput_price = 8.0\ncached_input_price = 0.5\nrequest_fee = 0.001\n'
_REASONED = {
    "prompt_tokens": 2000,
    "prompt_tokens_details": {"cached_tokens": 1500},
    "completion_tokens": 300,
    "completion_tokens_details": {"reasoning_tokens": 250},
}


@pytest.mark.parametrize("streamed", [False, True])
def test_cached_input_reasoning_and_the_request_fee_are_priced_from_reported_usage(
    fault, make_lab, streamed: bool
) -> None:
    fault.configure(usage=_REASONED)
    lab = make_lab(_priced_model(fault))
    ask = (lambda *a, **k: list(lab.stream_events(*a, **k))[-1]) if streamed else lab.chat
    result = ask("one two three", "m", cache=False)
    assert (result.input_tokens, result.cached_input_tokens, result.output_tokens, result.reasoning_tokens) == (
        2000, 1500, 300, 250,
    )
    # 500 uncached x $2 + 1500 cached x $0.5 + 300 output (reasoning included) x $8, per million, + $0.001
    assert result.cost_usd == pytest.approx(0.00515)
    assert result.cache_discount_usd == pytest.approx(1500 * (2.0 - 0.5) / 1e6)


def test_the_footer_says_how_many_tokens_were_cached_and_spent_thinking(fault, make_lab) -> None:
    fault.configure(usage=_REASONED)
    result = make_lab(_priced_model(fault)).chat("one two three", "m", cache=False)
    assert "2000→300 tok (1500 cached, 250 thinking) · $0.00515" in result.footer()


def test_cached_input_without_a_cached_price_leaves_the_cost_unknown(fault, make_lab) -> None:
    fault.configure(usage=_REASONED)
    lab = make_lab(
        f'[providers.p]\nbase_url = "{fault.base_url}"\n'
        '[models.m]\nprovider = "p"\nupstream = "x"\ninput_price = 2.0\noutput_price = 8.0\n'
    )
    result = lab.chat("one two three", "m", cache=False)
    assert result.cost_source == "unknown" and math.isnan(result.cost_usd) and math.isnan(result.cache_discount_usd)


def test_a_server_that_reports_no_cache_counts_has_no_discount_rather_than_zero(fault, make_lab) -> None:
    lab = make_lab(_priced_model(fault))
    result = lab.chat("one two three", "m", cache=False)
    assert result.cost_usd == pytest.approx((3 * 2.0 + 4 * 8.0) / 1e6 + 0.001)
    assert result.cached_input_tokens is None and result.reasoning_tokens is None
    assert math.isnan(result.cache_discount_usd)


def test_a_cache_hit_keeps_the_token_details_and_pays_no_discount(fault, make_lab) -> None:
    fault.configure(usage=_REASONED)
    lab = make_lab(_priced_model(fault))
    first = lab.chat("one two three", "m")
    hit = lab.chat("one two three", "m")
    assert hit.cached and (hit.cached_input_tokens, hit.reasoning_tokens) == (1500, 250)
    assert hit.cost_usd == 0.0 and hit.cache_discount_usd == 0.0 and hit.cost_saved_usd == first.cost_usd


def test_a_cache_hit_is_a_results_row_and_makes_no_attempt(fault, make_lab) -> None:
    """The attempts, in memory and in the run log, are the requests sent; a hit's row says what it saved."""
    lab = make_lab(_priced_model(fault))
    first = lab.chat("one two three", "m")
    lab.chat("one two three", "m")
    assert lab.compare(["one two three"], "m", progress=False).cached.all()
    lab.flush()
    assert list(lab.attempts().request_id) == list(lab.require_runlog().attempts().request_id) == [first.request_id]
    results = lab.results()
    assert list(results.cached) == [False, True, True]
    assert list(results.cost_saved_usd) == [0.0, first.cost_usd, first.cost_usd]


def test_results_say_what_every_call_asked_a_compares_too(fault, make_lab) -> None:
    lab = make_lab(_priced_model(fault))
    lab.chat("alone", "m")
    lab.compare(["first", "second"], "m", n=2, progress=False)  # sent, then answered by the cache
    lab.compare(["first", "second"], "m", n=2, progress=False)
    results = lab.results()
    asked = list(zip(results.via, results.prompt, results["sample"], strict=True))
    assert asked[0] == ("chat", "alone", 0)
    assert sorted(asked[1:]) == sorted([("compare", p, k) for p in ("first", "second") for k in (0, 1)] * 2)


def test_unknown_pricing_is_nan_never_zero(fault, make_lab) -> None:
    lab = make_lab(f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')
    result = lab.chat("hello", "p/x", cache=False)
    assert result.cost_source == "unknown" and math.isnan(result.cost_usd)


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import opencode_lab"], capture_output=True, text=True, check=True
    ).stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.splitlines() if "|" in line}
    assert not imported & {"pandas", "matplotlib", "IPython", "llama_cpp", "joblib"}


def test_a_custom_provider_object_plugs_in_like_the_built_in_ones(tmp_path) -> None:
    from opencode_lab import Completion, ModelInfo, Provider, Settings, StreamChunk, Usage

    class Reverse(Provider):
        name = "reverse"

        async def complete(self, model, request):
            return Completion(request.messages[-1].content[::-1], model, "stop", Usage(1, 1, None))

        async def stream(self, model, request):
            completion = await self.complete(model, request)
            yield StreamChunk(completion.text)
            yield StreamChunk("", completion)

        async def list_models(self):
            return [ModelInfo("backwards")]

    config = tmp_path / "lab.toml"
    config.write_text('[models.backwards]\nprovider = "reverse"\n')
    with Lab(Settings.load(config), providers={"reverse": Reverse()}) as lab:
        assert lab.chat("abc", "backwards", cache=False).text == "cba"
        assert "".join(lab.stream("xyz", "backwards", cache=False)) == "zyx"


@pytest.mark.llama
def test_a_gguf_file_named_in_toml_becomes_a_local_model(tmp_path) -> None:
    from opencode_lab import Settings
    from opencode_lab.providers.local import smollm2_path

    config = tmp_path / "lab.toml"
    config.write_text(f'[models.mine]\nprovider = "local"\npath = "{smollm2_path()}"\ncontext_length = 1024\n')
    with Lab(Settings.load(config)) as lab:
        result = lab.chat("What is the capital of Japan?", "mine", temperature=0, seed=1, max_tokens=16, cache=False)
        assert result.served_by == "local/mine" and "Tokyo" in result.text
        assert lab.models().loc["local/mine", "context_length"] == 1024
