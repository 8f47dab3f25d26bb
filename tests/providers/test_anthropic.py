"""The Anthropic provider against a real loopback server that speaks the Messages API."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest

from opencode_lab import (
    AuthenticationError,
    ChatRequest,
    ContextWindowError,
    InvalidRequestError,
    Lab,
    LabError,
    MalformedResponseError,
    ModelNotFoundError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from opencode_lab.core.errors import error_type_of
from opencode_lab.core.secrets import Secret
from opencode_lab.core.structured import SchemaMismatchError
from opencode_lab.core.types import Completion, StreamChunk
from opencode_lab.providers.anthropic import AnthropicProvider
from opencode_lab.providers.prices import bundled_price
from opencode_lab.testing.anthropic_server import AnthropicServer

T = TypeVar("T")
KEY = "sk-ant-api03-TESTANTHROPICKEY-0123456789"
MODEL = "claude-3-5-haiku-latest"


@pytest.fixture(scope="module")
def _server() -> Iterator[AnthropicServer]:
    with AnthropicServer(models=[MODEL, "claude-sonnet-4-0"]) as srv:
        yield srv


@pytest.fixture
def server(_server: AnthropicServer) -> AnthropicServer:
    _server.reset()
    return _server


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def _with(server: AnthropicServer, use: Any, **kw: Any) -> Any:
    provider = AnthropicProvider("anthropic", server.base_url, api_key=Secret(KEY), **kw)
    try:
        return await use(provider)
    finally:
        await provider.aclose()


def complete(server: AnthropicServer, prompt: Any, **params: Any) -> Completion:
    provider_kw = {k: params.pop(k) for k in ("max_tokens_default",) if k in params}
    request = ChatRequest.build(prompt, **params)
    kw = {"max_tokens": provider_kw["max_tokens_default"]} if provider_kw else {}
    return run(_with(server, lambda p: p.complete(MODEL, request), **kw))


def stream(server: AnthropicServer, prompt: Any, **params: Any) -> list[StreamChunk]:
    request = ChatRequest.build(prompt, **params)

    async def collect(provider: AnthropicProvider) -> list[StreamChunk]:
        return [chunk async for chunk in provider.stream(MODEL, request)]

    return run(_with(server, collect))


def test_an_answer_has_its_text_usage_and_finish_reason(server: AnthropicServer) -> None:
    completion = complete(server, "hello there")
    assert completion.text == "echo: hello there" and completion.model == MODEL
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (2, 3)
    assert completion.finish_reason == "stop"


def test_the_system_prompt_is_the_top_level_field(server: AnthropicServer) -> None:
    complete(server, "hi", system="be brief")
    assert server.log[-1]["sampling"]["system"] == "be brief"
    assert server.log[-1]["outcome"] == "ok"  # the server refuses a "system" role inside messages


def test_max_tokens_defaults_to_the_setting_and_the_request_wins(server: AnthropicServer) -> None:
    complete(server, "hi", max_tokens_default=77)
    complete(server, "hi", max_tokens=5, max_tokens_default=77)
    assert [e["sampling"]["max_tokens"] for e in server.log] == [77, 5]


def test_sampling_parameters_take_anthropic_names_and_seed_is_left_out(server: AnthropicServer) -> None:
    complete(server, "hi", temperature=0.5, top_p=0.9, stop=["END"], seed=7)
    assert server.log[-1]["sampling"] == {
        "max_tokens": 1024,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
    }


def test_an_answer_claims_no_seed_since_none_was_sent(server: AnthropicServer) -> None:
    whole = complete(server, "hi", temperature=0.5, seed=7)
    streamed = stream(server, "hi", temperature=0.5, seed=7)[-1].completion
    assert whole.seed is None and streamed is not None and streamed.seed is None


def test_a_temperature_over_one_is_refused_before_sending(server: AnthropicServer) -> None:
    with pytest.raises(InvalidRequestError, match="temperature must be at most 1"):
        complete(server, "hi", temperature=1.5)
    assert server.log == []


def test_the_version_header_and_key_are_sent(server: AnthropicServer) -> None:
    complete(server, "hi")
    assert server.log[-1]["version"] == "2023-06-01" and server.log[-1]["auth"]


def test_the_stop_reason_max_tokens_is_length(server: AnthropicServer) -> None:
    completion = complete(server, "one two three four", max_tokens=2)
    assert completion.text == "echo: one" and completion.finish_reason == "length"


def test_a_stream_yields_deltas_then_the_whole_completion(server: AnthropicServer) -> None:
    chunks = stream(server, "one two three")
    deltas = [c.delta for c in chunks if c.delta]
    final = chunks[-1].completion
    assert deltas == ["echo:", " one", " two", " three"]
    assert final is not None and final.text == "".join(deltas) and final.finish_reason == "stop"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)
    assert final.ttft_s is not None


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ("unauthorized", AuthenticationError),
        ("rate_limit", RateLimitError),
        ("overloaded", ServerError),
        ("server_error", ServerError),
        ("context_length", ContextWindowError),
        ("malformed", MalformedResponseError),
        ("reset", ProviderConnectionError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_each_failure_maps_to_its_typed_error(server, outcome: str, error: type, streamed: bool) -> None:
    with pytest.raises(error) as info:
        (stream if streamed else complete)(server, f"[[fault:{outcome}]]")
    assert info.value.provider == "anthropic"


def test_an_overload_is_retryable_and_trips_the_breaker(server: AnthropicServer) -> None:
    with pytest.raises(ServerError) as info:
        complete(server, "[[fault:overloaded]]")
    assert info.value.status_code == 529 and info.value.retryable and info.value.trips_breaker
    assert "Overloaded" in str(info.value)


def test_a_rate_limit_carries_retry_after(server: AnthropicServer) -> None:
    server.configure(retry_after=3)
    with pytest.raises(RateLimitError) as info:
        complete(server, "[[fault:rate_limit]]")
    assert info.value.retry_after == pytest.approx(3.0)


def test_an_error_event_after_text_is_a_stream_interruption(server: AnthropicServer) -> None:
    with pytest.raises(StreamInterruptedError) as info:
        stream(server, "one two [[fault:error_event]]")
    assert info.value.partial_text == "echo:" and "overloaded_error" in str(info.value)


def test_a_stream_cut_before_any_text_is_a_retryable_connection_error(server: AnthropicServer) -> None:
    with pytest.raises(ProviderConnectionError) as info:
        stream(server, "one two [[fault:cut_stream]]")
    assert info.value.retryable


def test_the_model_list_is_read_page_by_page(server: AnthropicServer) -> None:
    ids = [f"claude-test-{i:04d}" for i in range(1003)]  # more than one 1000-model page
    server.configure(models=ids)
    listed = run(_with(server, lambda p: p.list_models()))
    assert [m.id for m in listed] == ids
    assert sum(e["path"] == "/v1/models" for e in server.log) == 2


# -- through the Lab -----------------------------------------------------------------------------


@pytest.fixture
def lab(server: AnthropicServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    with Lab.from_env() as lab:
        yield lab


def test_an_anthropic_model_answers_with_cost_from_the_price_table(lab: Lab) -> None:
    result = lab.chat("one two three", model=f"anthropic/{MODEL}", cache=False)
    price = bundled_price("anthropic", MODEL)
    assert price is not None and result.text == "echo: one two three"
    assert result.cost_source == "catalog"
    expected = (result.input_tokens * price.input_per_mtok + result.output_tokens * price.output_per_mtok) / 1e6
    assert result.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_cache_reads_and_writes_are_priced_apart(lab: Lab, server: AnthropicServer, streamed: bool) -> None:
    server.configure(usage={"cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200})
    ask = (lambda *a, **k: list(lab.stream_events(*a, **k))[-1]) if streamed else lab.chat
    result = ask("one two three", model=f"anthropic/{MODEL}", cache=False)
    assert (result.input_tokens, result.cached_input_tokens, result.cache_write_tokens) == (1203, 1000, 200)
    # haiku 3.5: 3 uncached x $0.80 + 1000 reads x $0.08 + 200 writes x $1.00 + 4 output x $4.00, per million
    assert result.cost_usd == pytest.approx(298.4e-6)
    assert result.cache_discount_usd == pytest.approx((1000 * 0.72 - 200 * 0.20) / 1e6)


def test_a_streamed_anthropic_answer_reaches_the_lab(lab: Lab) -> None:
    assert "".join(lab.stream("one two", model=f"anthropic:{MODEL}", cache=False)) == "echo: one two"


def test_an_overload_is_retried_by_the_router(lab: Lab, server: AnthropicServer) -> None:
    result = lab.chat("hi [[fault:overloaded*1]]", model=f"anthropic/{MODEL}", cache=False)
    assert [a.error_type for a in result.attempts] == ["server_error", None]


def test_an_id_anthropic_does_not_list_suggests_the_closest(lab: Lab) -> None:
    with pytest.raises(ModelNotFoundError, match=r"did you mean anthropic/claude-3-5-haiku-latest"):
        lab.chat("hi", model="anthropic/claude-3-5-haiku-lates")


def test_the_key_never_reaches_an_error_or_a_log(
    lab: Lab, server: AnthropicServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LabError) as info:
        lab.chat("[[fault:unauthorized]]", model=f"anthropic/{MODEL}", cache=False)
    assert error_type_of(info.value) == "auth"
    assert KEY not in str(info.value) and KEY not in repr(info.value.attempts)
    assert KEY not in caplog.text and KEY not in str(server.log)


# -- structured output ---------------------------------------------------------------------------

CITY = {
    "title": "City",
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
}


@pytest.mark.parametrize("streamed", [False, True])
def test_a_schema_is_a_forced_tool_whose_input_is_the_answer(server: AnthropicServer, streamed: bool) -> None:
    completion = (
        stream(server, "biggest city?", schema=CITY)[-1].completion
        if streamed
        else complete(server, "biggest city?", schema=CITY)
    )
    assert completion is not None and json.loads(completion.text) == {"name": "example", "population": 1}
    assert completion.tool_calls == () and completion.finish_reason == "stop"
    assert server.log[-1]["tools"] == ["City"]


def test_an_answer_that_breaks_the_schema_is_a_schema_mismatch(lab: Lab) -> None:
    """The router checks every provider's answer against the schema (one place for every provider)."""
    with pytest.raises(SchemaMismatchError, match="population"):
        lab.chat('biggest city? [[call:City {"name": "Tokyo"}]]', f"anthropic/{MODEL}", schema=CITY, cache=False)


def test_a_schema_that_is_not_an_object_is_refused_before_sending(server: AnthropicServer) -> None:
    with pytest.raises(InvalidRequestError, match="must describe a JSON object"):
        complete(server, "hi", schema={"type": "array"})
    assert server.log == []


def test_max_tokens_comes_from_its_setting(server: AnthropicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("OC_ANTHROPIC_MAX_TOKENS", "33")
    with Lab.from_env() as lab:
        lab.chat("hi", model=f"anthropic/{MODEL}", cache=False)
    assert server.log[-1]["sampling"]["max_tokens"] == 33


@pytest.mark.slow
def test_the_package_never_imports_a_vendor_sdk() -> None:
    modules = [
        "opencode_lab.providers.anthropic",
        "opencode_lab.providers.gemini",
        "opencode_lab.providers.openai_compat",
    ]
    modules += ["opencode_lab.testing.anthropic_server", "opencode_lab.testing.gemini_server"]
    code = (
        f"import sys, {', '.join(modules)}\n"
        + "print([m for m in ('anthropic', 'google.genai', 'openai') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
