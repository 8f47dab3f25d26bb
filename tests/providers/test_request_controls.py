"""Reasoning controls, provider-specific options and log-probabilities, on real loopback servers of every wire
format: each reaches the request body in the provider's own shape, comes back read, keys the cache, and is
refused before anything is sent where the provider or model has no such thing."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opencode_lab import ConfigError, InvalidRequestError, Lab, RunMismatchError
from opencode_lab.testing.anthropic_server import AnthropicServer
from opencode_lab.testing.gemini_server import GeminiServer
from opencode_lab.testing.openai_server import FaultServer

THINKS, PLAIN = "claude-sonnet-4-0", "claude-3-5-haiku-latest"
GEMINI = "gemini-2.5-pro"
ROUTED = "vendor/fault-model"
P = math.log(0.6)  # the scripted servers choose every token with probability 0.6


@pytest.fixture(scope="module")
def _anthropic() -> Iterator[AnthropicServer]:
    with AnthropicServer(models=[THINKS, PLAIN]) as server:
        yield server


@pytest.fixture(scope="module")
def _gemini() -> Iterator[GeminiServer]:
    with GeminiServer(models=[GEMINI, "gemini-2.0-flash"]) as server:
        yield server


@pytest.fixture
def anthropic(_anthropic: AnthropicServer) -> AnthropicServer:
    _anthropic.reset()
    return _anthropic


@pytest.fixture
def gemini(_gemini: GeminiServer) -> GeminiServer:
    _gemini.reset()
    return _gemini


@pytest.fixture
def lab(
    fault: FaultServer,
    anthropic: AnthropicServer,
    gemini: GeminiServer,
    make_lab: Callable[..., Lab],
    monkeypatch: pytest.MonkeyPatch,
) -> Lab:
    """One lab over every wire format: ``p/x`` (any OpenAI-compatible server), OpenRouter, Anthropic, Gemini."""
    fault.configure(models=["fault-model", ROUTED])
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-test-controls-123456")
    monkeypatch.setenv("OPENROUTER_BASE_URL", fault.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-TESTCONTROLS-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.base_url)
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSy-TESTCONTROLS-0123456789abcdef")
    monkeypatch.setenv("GEMINI_BASE_URL", gemini.base_url)
    return make_lab(f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')


def last_body(server: FaultServer | AnthropicServer | GeminiServer) -> dict[str, Any]:
    return server.requests[-1]


# -- reasoning controls and options reach the wire in each provider's shape --------------------------------------


def test_openai_compatible_servers_get_reasoning_effort_and_options_under_their_own_names(lab: Lab, fault) -> None:
    lab.chat("hi", "p/x", reasoning_effort="high", options={"presence_penalty": 0.5, "logit_bias": {"7": -100}})
    body = last_body(fault)
    assert (body["reasoning_effort"], body["presence_penalty"], body["logit_bias"]) == ("high", 0.5, {"7": -100})
    assert "options" not in body and "reasoning" not in body


@pytest.mark.parametrize(
    ("control", "sent"),
    [({"reasoning_effort": "low"}, {"effort": "low"}), ({"reasoning_budget": 2000}, {"max_tokens": 2000})],
)
def test_openrouter_gets_its_unified_reasoning_object(lab: Lab, fault, control: dict, sent: dict) -> None:
    lab.chat("hi", f"openrouter/{ROUTED}", **control)
    body = last_body(fault)
    assert body["reasoning"] == sent
    assert "reasoning_effort" not in body and "reasoning_budget" not in body


def test_openrouter_takes_one_reasoning_control_at_a_time(lab: Lab, fault) -> None:
    with pytest.raises(InvalidRequestError, match="reasoning_effort or reasoning_budget, not both"):
        lab.chat("hi", f"openrouter/{ROUTED}", reasoning_effort="low", reasoning_budget=100)
    assert fault.requests == []


def test_anthropic_gets_a_thinking_budget_on_top_of_its_answer_tokens_and_options(lab: Lab, anthropic) -> None:
    lab.chat("hi", f"anthropic/{THINKS}", reasoning_budget=2048, options={"top_k": 5})
    body = last_body(anthropic)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 2048 + 1024  # the budget counts against max_tokens; 1024 are left to answer
    assert body["top_k"] == 5


def test_anthropic_thinking_can_be_turned_off(lab: Lab, anthropic) -> None:
    lab.chat("hi", f"anthropic/{THINKS}", reasoning_budget=0)
    assert last_body(anthropic)["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"reasoning_budget": 500}, "must be 0 .no thinking. or at least 1024"),
        ({"reasoning_budget": 2048, "max_tokens": 2048}, r"max_tokens \(2048\) must be more than reasoning_budget"),
        ({"reasoning_budget": 2048, "temperature": 0.2}, "thinking takes no temperature but 1"),
    ],
)
def test_anthropic_refuses_a_thinking_budget_it_would_reject(lab: Lab, anthropic, values: dict, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        lab.chat("hi", f"anthropic/{THINKS}", **values)
    assert anthropic.requests == []


def test_gemini_gets_a_thinking_budget_and_options_in_generation_config_or_at_the_top(lab: Lab, gemini) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    lab.chat("hi", f"gemini/{GEMINI}", reasoning_budget=512, options={"top_k": 3, "safetySettings": safety})
    body = last_body(gemini)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512}
    assert body["generationConfig"]["topK"] == 3
    assert body["safetySettings"] == safety


@pytest.mark.parametrize(
    ("model", "control", "message"),
    [
        ("p/x", "reasoning_budget", r"'p/x' has no reasoning_budget control \(it takes reasoning_effort\)"),
        (f"anthropic/{THINKS}", "reasoning_effort", r"has no reasoning_effort control \(it takes reasoning_budget\)"),
        (f"gemini/{GEMINI}", "reasoning_effort", r"has no reasoning_effort control \(it takes reasoning_budget\)"),
        (f"anthropic/{PLAIN}", "reasoning_budget", "does not reason .the catalog marks it no-reasoning"),
        ("gemini/gemini-2.0-flash", "reasoning_budget", "does not reason"),
        ("local/smollm2-135m", "reasoning_effort", r"has no reasoning_effort control \(it takes none\)"),
    ],
)
def test_a_reasoning_control_a_model_has_not_is_refused_before_anything_is_sent(
    lab: Lab, fault, anthropic, gemini, model: str, control: str, message: str
) -> None:
    value = "high" if control == "reasoning_effort" else 2048
    with pytest.raises(InvalidRequestError, match=message):
        lab.chat("hi", model, **{control: value})
    assert fault.requests == anthropic.requests == gemini.requests == []


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("p/x", {"response_format": {"type": "text"}}, "option 'response_format' would override"),
        (f"openrouter/{ROUTED}", {"reasoning": {"effort": "high"}}, "option 'reasoning' would override"),
        (f"anthropic/{THINKS}", {"thinking": {"type": "enabled"}}, "option 'thinking' would override"),
        (f"gemini/{GEMINI}", {"maxOutputTokens": 5}, "option 'maxOutputTokens' would override the generationConfig"),
        (f"gemini/{GEMINI}", {"max_output_tokens": 5}, "option 'maxOutputTokens' would override the generationConfig"),
        (f"gemini/{GEMINI}", {"contents": []}, "option 'contents' would override"),
        ("local/smollm2-135m", {"top_kk": 3}, "takes no option 'top_kk'; did you mean 'top_k'"),
    ],
)
def test_an_option_never_overrides_what_the_request_sets(
    lab: Lab, fault, anthropic, gemini, model: str, options: dict, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        lab.chat("hi", model, options=options)
    assert fault.requests == anthropic.requests == gemini.requests == []


# -- the cache key and the run --------------------------------------------------------------------------------


def test_two_calls_differing_only_in_reasoning_effort_are_two_cache_entries(lab: Lab, fault) -> None:
    low = lab.chat("same prompt", "p/x", reasoning_effort="low")
    high = lab.chat("same prompt", "p/x", reasoning_effort="high")
    again = lab.chat("same prompt", "p/x", reasoning_effort="low")
    assert (low.cached, high.cached, again.cached) == (False, False, True)
    assert sorted(b["reasoning_effort"] for b in fault.requests) == ["high", "low"]  # sent concurrently


def test_options_key_the_cache_whatever_order_they_were_given_in(lab: Lab, fault) -> None:
    lab.chat("same prompt", "p/x", options={"presence_penalty": 0.5, "frequency_penalty": 0.1})
    assert lab.chat("same prompt", "p/x", options={"frequency_penalty": 0.1, "presence_penalty": 0.5}).cached
    assert not lab.chat("same prompt", "p/x", options={"presence_penalty": 0.6, "frequency_penalty": 0.1}).cached
    assert len(fault.requests) == 2


# -- log-probabilities ----------------------------------------------------------------------------------------


def _asked(lab: Lab, model: str, streamed: bool, **params: Any) -> Any:
    if streamed:
        return list(lab.stream_events("one two", model, cache=False, **params))[-1]
    return lab.chat("one two", model, cache=False, **params)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("model", ["p/x", f"gemini/{GEMINI}"])
def test_log_probabilities_come_back_per_token_with_their_alternatives(lab: Lab, model: str, streamed: bool) -> None:
    result = _asked(lab, model, streamed, top_logprobs=3)
    assert "".join(entry.token for entry in result.logprobs) == "echo: one two"
    first = result.logprobs[0]
    assert first.logprob == pytest.approx(P) and first.probability == pytest.approx(0.6)
    assert [token for token, _ in first.top] == ["echo:", "alt1", "alt2"]
    assert [math.exp(lp) for _, lp in first.top] == pytest.approx([0.6, 0.2, 0.1])


def test_logprobs_without_alternatives_gives_each_token_alone(lab: Lab, fault) -> None:
    result = lab.chat("one two", "p/x", logprobs=True, cache=False)
    assert last_body(fault)["logprobs"] is True and "top_logprobs" not in last_body(fault)
    assert [e.top for e in result.logprobs] == [(), (), ()]


def test_gemini_is_asked_for_log_probabilities_in_generation_config(lab: Lab, gemini) -> None:
    lab.chat("one two", f"gemini/{GEMINI}", top_logprobs=4, cache=False)
    config = last_body(gemini)["generationConfig"]
    assert (config["responseLogprobs"], config["logprobs"]) == (True, 4)


def test_a_result_without_logprobs_asked_has_none(lab: Lab) -> None:
    assert lab.chat("one two", "p/x", cache=False).logprobs is None


def test_anthropic_refuses_logprobs_before_sending(lab: Lab, anthropic) -> None:
    with pytest.raises(InvalidRequestError, match="returns no log-probabilities"):
        lab.chat("hi", f"anthropic/{THINKS}", top_logprobs=2)
    assert anthropic.requests == []


def test_log_probabilities_are_a_json_column_of_the_results_and_survive_the_cache(lab: Lab) -> None:
    frame = lab.compare(["one two"], ["p/x"], top_logprobs=1)
    again = lab.compare(["one two"], ["p/x"], top_logprobs=1)
    assert bool(again["cached"].iloc[0])
    for cell in (frame["logprobs"].iloc[0], again["logprobs"].iloc[0]):
        entries = json.loads(cell)
        assert [e["token"] for e in entries] == ["echo:", " one", " two"]
        assert entries[0]["top"] == [["echo:", pytest.approx(P)]]


def test_a_server_claiming_a_probability_above_one_is_malformed(lab: Lab, fault) -> None:
    bad = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop",
                        "logprobs": {"content": [{"token": "hi", "logprob": 0.5, "top_logprobs": []}]}}]}  # fmt: skip
    fault.configure(mix={"raw": 1.0}, raw={"body": json.dumps(bad)})
    result = lab.compare(["hi"], ["p/x"], logprobs=True, cache=False)
    assert result["error_type"].iloc[0] == "malformed_response"
    assert "logprobs.content[0]" in result["error"].iloc[0]


# -- parameters a model declares in TOML ----------------------------------------------------------------------

TWO_WAYS = """
[providers.p]
base_url = "{url}"

[models.x-low]
provider = "p"
upstream = "x"
reasoning_effort = "low"
options = {{ presence_penalty = 0.5 }}

[models.x-high]
provider = "p"
upstream = "x"
reasoning_effort = "high"

[aliases]
fast = ["x-low"]
"""


@pytest.fixture
def two_ways(fault: FaultServer, make_lab: Callable[..., Lab]) -> Lab:
    """One upstream model declared twice: at low and at high reasoning effort."""
    return make_lab(TWO_WAYS, url=fault.base_url)


def test_a_model_asks_with_the_parameters_its_table_declares_and_a_call_wins(two_ways: Lab, fault) -> None:
    two_ways.chat("hi", "x-low", cache=False)
    two_ways.chat("hi", "fast", cache=False, options={"presence_penalty": 0.1, "top_k": 3})
    two_ways.chat("hi", "x-high", cache=False, reasoning_effort="medium")
    sent = [(b.get("reasoning_effort"), b.get("presence_penalty"), b.get("top_k")) for b in fault.requests]
    assert sent == [("low", 0.5, None), ("low", 0.1, 3), ("medium", None, None)]


def test_one_upstream_asked_two_ways_is_two_cache_entries(two_ways: Lab, fault) -> None:
    first = two_ways.compare(["same"], ["x-low", "x-high"])
    again = two_ways.compare(["same"], ["x-low", "x-high"])
    assert list(first["cached"]) == [False, False] and list(again["cached"]) == [True, True]
    assert sorted(b["reasoning_effort"] for b in fault.requests) == ["high", "low"]  # sent concurrently


def test_wide_headers_show_the_parameters_that_differ_between_models(two_ways: Lab) -> None:
    view = two_ways.compare(["same"], ["x-low", "x-high"], temperature=0).oc.wide()
    assert view.headers["x-low"].startswith("options=presence_penalty:0.5 reasoning_effort=low")
    assert view.headers["x-high"].startswith("options=default reasoning_effort=high")
    assert "temperature" not in view.headers["x-low"]  # the same for both: not a difference


def test_a_bad_declared_parameter_is_a_config_error_naming_the_table(fault, make_lab) -> None:
    bad = TWO_WAYS.replace('reasoning_effort = "high"', 'reasoning_effort = "hihg"')
    with pytest.raises(ConfigError, match=r"\[models.x-high\] reasoning_effort must be one of .*did you mean 'high'"):
        make_lab(bad, url=fault.base_url)


@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_thinking_is_not_part_of_the_answer(lab: Lab, streamed: bool) -> None:
    result = _asked(lab, f"anthropic/{THINKS}", streamed, reasoning_budget=1024)
    assert result.text == "echo: one two" and result.finish_reason == "stop"


@pytest.mark.slow
def test_a_stream_that_thinks_longer_than_the_timeout_is_not_cut_as_stalled(
    anthropic, make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thinking deltas are progress: five events 0.5 s apart reach the answer (2.5 s) past a 2 s timeout,
    while no two events in a row that are not progress are more than 1 s apart."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-TESTCONTROLS-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.base_url)
    anthropic.configure(chunk_delay_s=0.5)
    lab = make_lab("[lab]\ntimeout_s = 2\nmax_retries = 0\n")
    chunks = list(lab.stream_events("one two", f"anthropic/{THINKS}", cache=False, reasoning_budget=1024))
    assert chunks[-1].text == "echo: one two"


def test_a_named_run_resumes_only_under_the_same_declared_parameters(fault, make_lab: Callable[..., Lab]) -> None:
    make_lab(TWO_WAYS, url=fault.base_url).compare(["q"], ["x-low"], run="exp")
    changed = make_lab(TWO_WAYS.replace('reasoning_effort = "low"', 'reasoning_effort = "medium"'), url=fault.base_url)
    with pytest.raises(RunMismatchError, match="model_params"):
        changed.compare(["q"], ["x-low"], run="exp")
