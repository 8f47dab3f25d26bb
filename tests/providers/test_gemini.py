"""The Gemini provider against a real loopback server that speaks the Gemini API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest

from opencode_lab import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ContextWindowError,
    Lab,
    LabError,
    MalformedResponseError,
    ModelNotFoundError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from opencode_lab.core.config import Settings
from opencode_lab.core.errors import error_type_of
from opencode_lab.core.secrets import Secret
from opencode_lab.core.types import Completion, StreamChunk
from opencode_lab.providers.gemini import GeminiProvider
from opencode_lab.providers.prices import bundled_price
from opencode_lab.testing.gemini_server import GeminiServer

T = TypeVar("T")
KEY = "AIzaSy-TESTGEMINIKEY-0123456789abcdef"
MODEL = "gemini-2.0-flash"


@pytest.fixture(scope="module")
def _server() -> Iterator[GeminiServer]:
    with GeminiServer(models=[MODEL, "gemini-2.5-pro"]) as srv:
        yield srv


@pytest.fixture
def server(_server: GeminiServer) -> GeminiServer:
    _server.reset()
    return _server


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def _with(server: GeminiServer, use: Any) -> Any:
    provider = GeminiProvider("gemini", server.base_url, api_key=Secret(KEY))
    try:
        return await use(provider)
    finally:
        await provider.aclose()


def complete(server: GeminiServer, prompt: Any, **params: Any) -> Completion:
    request = ChatRequest.build(prompt, **params)
    return run(_with(server, lambda p: p.complete(MODEL, request)))


def stream(server: GeminiServer, prompt: Any, **params: Any) -> list[StreamChunk]:
    request = ChatRequest.build(prompt, **params)

    async def collect(provider: GeminiProvider) -> list[StreamChunk]:
        return [chunk async for chunk in provider.stream(MODEL, request)]

    return run(_with(server, collect))


def test_an_answer_has_its_text_usage_and_finish_reason(server: GeminiServer) -> None:
    completion = complete(server, "hello there")
    assert completion.text == "echo: hello there" and completion.model == MODEL
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (2, 3)
    assert completion.finish_reason == "stop"
    assert server.log[-1]["path"] == f"/v1beta/models/{MODEL}:generateContent"


def test_the_system_prompt_is_the_system_instruction(server: GeminiServer) -> None:
    complete(server, "hi", system="be brief")
    assert server.log[-1]["sampling"] == {"system": "be brief"}


def test_sampling_parameters_go_in_generation_config(server: GeminiServer) -> None:
    complete(server, "hi", temperature=0.5, top_p=0.9, max_tokens=20, stop=["END"], seed=7)
    assert server.log[-1]["sampling"] == {
        "temperature": 0.5,
        "topP": 0.9,
        "maxOutputTokens": 20,
        "stopSequences": ["END"],
        "seed": 7,
    }


def test_an_answer_reports_the_seed_it_was_sent_and_none_when_none_was(server: GeminiServer) -> None:
    streamed = stream(server, "hi", temperature=0.5, seed=7)[-1].completion
    assert complete(server, "hi", seed=7).seed == 7 and streamed is not None and streamed.seed == 7
    assert complete(server, "hi", temperature=0.5).seed is None and "seed" not in server.log[-1]["sampling"]


def test_the_key_travels_in_a_header_never_in_the_url(server: GeminiServer) -> None:
    complete(server, "hi")
    assert server.log[-1]["auth"] and KEY not in server.log[-1]["path"]


def test_max_tokens_is_length(server: GeminiServer) -> None:
    completion = complete(server, "one two three four", max_tokens=2)
    assert completion.text == "echo: one" and completion.finish_reason == "length"


def test_a_stream_yields_deltas_then_the_whole_completion(server: GeminiServer) -> None:
    chunks = stream(server, "one two three")
    deltas = [c.delta for c in chunks if c.delta]
    final = chunks[-1].completion
    assert deltas == ["echo:", " one", " two", " three"]
    assert final is not None and final.text == "".join(deltas) and final.finish_reason == "stop"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)
    assert server.log[-1]["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent"


@pytest.mark.parametrize("streamed", [False, True])
def test_a_blocked_prompt_is_a_bad_request_naming_the_reason(server: GeminiServer, streamed: bool) -> None:
    with pytest.raises(BadRequestError, match=r"blocked by Gemini's safety filter \(SAFETY\)") as info:
        (stream if streamed else complete)(server, "[[fault:blocked]]")
    assert not info.value.retryable and not info.value.rotate


@pytest.mark.parametrize("streamed", [False, True])
def test_a_safety_stop_is_the_content_filter_finish_reason(server: GeminiServer, streamed: bool) -> None:
    completion = stream(server, "[[fault:safety]]")[-1].completion if streamed else complete(server, "[[fault:safety]]")
    assert completion is not None and completion.text == "" and completion.finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ("unauthorized", AuthenticationError),
        ("rate_limit", RateLimitError),
        ("unavailable", ServerError),
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
    assert info.value.provider == "gemini"


def test_an_invalid_key_is_an_authentication_error(server: GeminiServer) -> None:
    with pytest.raises(AuthenticationError, match="API key not valid") as info:
        complete(server, "[[fault:unauthorized]]")
    assert info.value.status_code == 400  # Gemini's answer to a bad key; its detail says API_KEY_INVALID


def test_a_rate_limit_carries_the_retry_delay(server: GeminiServer) -> None:
    server.configure(retry_after=3)
    with pytest.raises(RateLimitError) as info:
        complete(server, "[[fault:rate_limit]]")
    assert info.value.retry_after == pytest.approx(3.0)


def test_an_overloaded_model_is_retryable(server: GeminiServer) -> None:
    with pytest.raises(ServerError) as info:
        complete(server, "[[fault:unavailable]]")
    assert info.value.status_code == 503 and info.value.retryable and "overloaded" in str(info.value)


def test_a_response_with_no_candidates_and_no_block_reason_is_malformed(server: GeminiServer) -> None:
    said_nothing = {"usageMetadata": {"promptTokenCount": 1}, "modelVersion": MODEL}
    server.configure(mix={"raw": 1.0}, raw={"body": json.dumps(said_nothing)})
    with pytest.raises(MalformedResponseError, match="no candidates and no block reason"):
        complete(server, "hi")


def test_an_error_after_text_is_a_stream_interruption(server: GeminiServer) -> None:
    with pytest.raises(StreamInterruptedError) as info:
        stream(server, "one two [[fault:error_event]]")
    assert info.value.partial_text == "echo:" and info.value.status_code == 503


def test_a_stream_cut_after_text_is_a_stream_interruption(server: GeminiServer) -> None:
    with pytest.raises(StreamInterruptedError) as info:
        stream(server, "one two three [[fault:cut_stream]]")
    assert info.value.partial_text == "echo: one"


def test_the_model_list_drops_the_prefix_and_reads_every_page(server: GeminiServer) -> None:
    ids = [f"gemini-test-{i:04d}" for i in range(1002)]
    server.configure(models=ids)
    listed = run(_with(server, lambda p: p.list_models()))
    assert [m.id for m in listed] == ids and listed[0].context_length == 1048576


# -- through the Lab -----------------------------------------------------------------------------


@pytest.fixture
def lab(server: GeminiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
    with Lab.from_env() as lab:
        yield lab


def test_a_gemini_model_answers_with_cost_from_the_price_table(lab: Lab) -> None:
    result = lab.chat("one two three", model=f"gemini/{MODEL}", cache=False)
    price = bundled_price("gemini", MODEL)
    assert price is not None and result.text == "echo: one two three"
    assert result.cost_source == "catalog"
    expected = (result.input_tokens * price.input_per_mtok + result.output_tokens * price.output_per_mtok) / 1e6
    assert result.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize("streamed", [False, True])
def test_gemini_thoughts_and_cached_content_are_priced(lab: Lab, server: GeminiServer, streamed: bool) -> None:
    server.configure(usage={"promptTokenCount": 1000, "cachedContentTokenCount": 600, "thoughtsTokenCount": 50})
    ask = (lambda *a, **k: list(lab.stream_events(*a, **k))[-1]) if streamed else lab.chat
    result = ask("one two three", model=f"gemini/{MODEL}", cache=False)
    assert (result.input_tokens, result.cached_input_tokens, result.output_tokens, result.reasoning_tokens) == (
        1000, 600, 54, 50,
    )
    # 2.0 flash: 400 uncached x $0.10 + 600 cached x $0.025 + (4 + 50 thinking) output x $0.40, per million
    assert result.cost_usd == pytest.approx(76.6e-6)
    assert result.cache_discount_usd == pytest.approx(600 * 0.075 / 1e6)


def test_gemini_api_key_works_as_well_as_google_api_key(server: GeminiServer, monkeypatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
    with Lab.from_env() as lab:
        assert lab.chat("hi", model=f"gemini:{MODEL}", cache=False).text == "echo: hi"


def test_an_id_gemini_does_not_list_suggests_the_closest(lab: Lab) -> None:
    with pytest.raises(ModelNotFoundError, match=r"did you mean gemini/gemini-2\.0-flash"):
        lab.chat("hi", model="gemini/gemini-2.0-flsh")


def test_an_overloaded_model_is_retried_by_the_router(lab: Lab) -> None:
    result = lab.chat("hi [[fault:unavailable*1]]", model=f"gemini/{MODEL}", cache=False)
    assert [a.error_type for a in result.attempts] == ["server_error", None]


def test_the_key_never_reaches_an_error_or_a_log(lab: Lab, server: GeminiServer, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LabError) as info:
        lab.chat("[[fault:unauthorized]]", model=f"gemini/{MODEL}", cache=False)
    assert error_type_of(info.value) == "auth"
    assert KEY not in str(info.value) and KEY not in caplog.text and KEY not in str(server.log)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_schema_is_sent_as_the_response_json_schema(server: GeminiServer, streamed: bool) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    completion = (
        stream(server, "hi", schema=schema)[-1].completion if streamed else complete(server, "hi", schema=schema)
    )
    assert completion is not None and json.loads(completion.text) == {"name": "example"}
    sampling = server.log[-1]["sampling"]
    assert sampling["responseMimeType"] == "application/json" and sampling["responseJsonSchema"] == schema


def test_google_api_key_wins_over_gemini_api_key_as_in_the_sdk() -> None:
    settings = Settings.load(env={"GEMINI_API_KEY": "AIza-gemini-key-0001", "GOOGLE_API_KEY": "AIza-google-key-0002"})
    key = settings.vendors["gemini"].api_key
    assert key is not None and key.reveal() == "AIza-google-key-0002"
