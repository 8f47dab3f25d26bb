"""The OpenAI-compatible provider against real loopback servers: llama.cpp's and our fault injector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest

from opencode_lab import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ContextWindowError,
    MalformedResponseError,
    ModelUnavailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from opencode_lab.core.secrets import Secret
from opencode_lab.core.types import StreamChunk
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def provider_for(url: str, **kw: object) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider("test", url, **kw)  # type: ignore[arg-type]


async def _complete(url: str, prompt: str, **kw: object):
    provider = provider_for(url, **kw)
    try:
        return await provider.complete("fault-model", ChatRequest.build(prompt, temperature=0, seed=1))
    finally:
        await provider.aclose()


async def _collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [c async for c in chunks]


async def _stream(url: str, prompt: str, model: str = "fault-model", **params: object) -> list[StreamChunk]:
    provider = provider_for(url)
    try:
        return await _collect(provider.stream(model, ChatRequest.build(prompt, **params)))
    finally:
        await provider.aclose()


@pytest.mark.llama
class TestAgainstLlamaCppServer:
    def test_chat_completion_returns_text_and_usage(self, llama_server: str) -> None:
        async def go():
            provider = provider_for(llama_server, timeout_s=120)
            try:
                return await provider.complete(
                    "smollm2", ChatRequest.build("What is the capital of France?", temperature=0, seed=1, max_tokens=20)
                )
            finally:
                await provider.aclose()

        completion = run(go())
        assert "Paris" in completion.text
        assert completion.usage.input_tokens and completion.usage.input_tokens > 5
        assert completion.usage.output_tokens and completion.usage.output_tokens > 0
        assert completion.finish_reason in ("stop", "length")

    def test_streaming_yields_several_deltas_then_the_whole_completion(self, llama_server: str) -> None:
        chunks = run(
            _stream(llama_server, "Count from one to five.", model="smollm2", temperature=0, seed=1, max_tokens=30)
        )
        deltas = [c.delta for c in chunks if c.delta]
        assert len(deltas) > 3
        final = chunks[-1].completion
        assert final is not None and final.text == "".join(deltas)
        assert final.ttft_s is not None

    def test_models_lists_the_served_model(self, llama_server: str) -> None:
        async def go():
            provider = provider_for(llama_server)
            try:
                return await provider.list_models()
            finally:
                await provider.aclose()

        assert "smollm2" in [m.id for m in run(go())]


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("outcome", "error"),
        [
            ("rate_limit", RateLimitError),
            ("server_error", ServerError),
            ("bad_gateway", ServerError),
            ("unavailable", ServerError),
            ("unauthorized", AuthenticationError),
            ("payment_required", PaymentRequiredError),
            ("bad_request", BadRequestError),
            ("not_found_model", ModelUnavailableError),
            ("context_length", ContextWindowError),
            ("malformed", MalformedResponseError),
            ("error_in_200", ServerError),
            ("empty_choices", MalformedResponseError),
            ("reset", ProviderConnectionError),
        ],
    )
    def test_each_failure_maps_to_its_typed_error(self, fault, outcome: str, error: type) -> None:
        with pytest.raises(error) as info:
            run(_complete(fault.base_url, f"hi [[fault:{outcome}]]"))
        assert info.value.provider == "test"

    def test_rate_limit_carries_retry_after_seconds(self, fault) -> None:
        fault.configure(retry_after=2)
        with pytest.raises(RateLimitError) as info:
            run(_complete(fault.base_url, "hi [[fault:rate_limit]]"))
        assert info.value.retry_after == pytest.approx(2.0)
        assert info.value.status_code == 429

    def test_rate_limit_retry_after_as_http_date(self, fault) -> None:
        fault.configure(retry_after=30, retry_after_http_date=True)
        with pytest.raises(RateLimitError) as info:
            run(_complete(fault.base_url, "hi [[fault:rate_limit]]"))
        assert info.value.retry_after is not None and 20 <= info.value.retry_after <= 31

    def test_an_answer_slower_than_the_timeout_is_a_timeout(self, fault) -> None:
        fault.configure(hang_s=5)
        with pytest.raises(ProviderTimeout):
            run(_complete(fault.base_url, "hi [[fault:hang]]", timeout_s=0.3))

    def test_an_error_object_inside_a_200_is_never_an_empty_answer(self, fault) -> None:
        with pytest.raises(ServerError, match="upstream provider error"):
            run(_complete(fault.base_url, "hi [[fault:error_in_200]]"))


class TestStreaming:
    def test_stream_of_the_fault_server_reassembles_the_echo(self, fault) -> None:
        chunks = run(_stream(fault.base_url, "one two three"))
        final = chunks[-1].completion
        assert final is not None and final.text == "echo: one two three"
        assert final.usage.output_tokens == 4

    def test_a_stream_cut_after_text_is_interrupted_and_keeps_the_partial_text(self, fault) -> None:
        with pytest.raises(StreamInterruptedError) as info:
            run(_stream(fault.base_url, "alpha beta gamma delta epsilon [[fault:cut_stream]]"))
        assert info.value.partial_text.startswith("echo:")

    def test_a_non_utf8_byte_in_a_stream_is_a_clear_error(self, fault) -> None:
        with pytest.raises(MalformedResponseError, match="UTF-8"):
            run(_stream(fault.base_url, "hello [[fault:bad_utf8]]"))

    def test_a_failure_status_before_streaming_maps_like_a_plain_call(self, fault) -> None:
        with pytest.raises(RateLimitError):
            run(_stream(fault.base_url, "hello [[fault:rate_limit]]"))


class TestSecrets:
    KEY = "sk-test-DISTINCTIVE-4242424242"

    def test_the_key_is_sent_as_a_bearer_header_but_never_logged_by_the_server(self, fault) -> None:
        run(_complete(fault.base_url, "hi", api_key=Secret(self.KEY)))
        assert fault.log[-1]["auth"] is True

    def test_the_key_appears_in_no_repr_and_no_error_text(self, fault) -> None:
        provider = provider_for(fault.base_url, api_key=Secret(self.KEY))
        assert self.KEY not in repr(provider)
        with pytest.raises(AuthenticationError) as info:
            run(_complete(fault.base_url, f"my key is {self.KEY} [[fault:unauthorized]]", api_key=Secret(self.KEY)))
        assert self.KEY not in str(info.value)
        assert self.KEY not in repr(info.value)
