"""The OpenAI-compatible provider against real loopback servers: llama.cpp's and our fault injector."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx
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


async def _stream(
    url: str, prompt: str, model: str = "fault-model", max_body_bytes: int | None = None, **params: object
) -> list[StreamChunk]:
    provider = provider_for(url, **({} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}))
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

    @pytest.mark.slow
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


def raw_server(fault, **raw: object):
    """*fault* answering every chat with the scripted raw response."""
    fault.configure(mix={"raw": 1.0}, raw=raw, hang_s=10.0)
    return fault


def sse(*chunks: object, done: bool = True) -> str:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return body + ("data: [DONE]\n\n" if done else "")


def delta(content: str | None = None, finish: str | None = None) -> dict[str, object]:
    fields = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


def answer(content: object = "hi", **over: object) -> str:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return json.dumps({"model": "fault-model", "choices": [choice], **over})


class TestStrictReading:
    def test_a_body_over_the_cap_is_refused_while_reading_not_after(self, fault) -> None:
        raw_server(fault, body="x" * 1024, repeat=1_000_000)  # a gigabyte: only a refusal mid-read can end this
        with pytest.raises(MalformedResponseError, match="over the 65536-byte cap"):
            run(_complete(fault.base_url, "hi", max_body_bytes=64 * 1024))

    def test_a_stream_over_the_cap_is_refused_while_reading(self, fault) -> None:
        raw_server(fault, body="data: " + "x" * 1024, repeat=1_000_000)  # one endless line
        with pytest.raises(MalformedResponseError, match="cap"):
            run(_stream(fault.base_url, "hi", max_body_bytes=64 * 1024))

    def test_a_declared_length_over_the_cap_is_refused_before_reading(self, fault) -> None:
        raw_server(fault, headers={"Content-Length": str(1 << 30)}, body="{", hang=True)
        with pytest.raises(MalformedResponseError, match="1073741824 bytes is over the 65536-byte cap"):
            run(_complete(fault.base_url, "hi", max_body_bytes=64 * 1024))

    @pytest.mark.parametrize(
        ("body", "names"),
        [
            (answer(usage={"prompt_tokens": 1, "completion_tokens": float("nan")}), "usage.completion_tokens is nan"),
            (answer(usage={"prompt_tokens": -1}), "usage.prompt_tokens is -1"),
            (answer(42), "content is an int, not text"),
            (answer([{"type": "image_url"}]), "part that is not text (type 'image_url')"),
            (json.dumps({"choices": {"0": {}}}), "choices is a dict"),
            ("[" * 100_000, "nested too deeply"),
        ],
        ids=["usage_nan", "usage_negative", "content_int", "content_image_part", "choices_dict", "deep_json"],
    )
    def test_a_broken_body_is_malformed_naming_what_broke(self, fault, body: str, names: str) -> None:
        raw_server(fault, body=body)
        with pytest.raises(MalformedResponseError, match=re.escape(names)):
            run(_complete(fault.base_url, "hi"))

    def test_text_parts_are_joined(self, fault) -> None:
        raw_server(fault, body=answer([{"type": "text", "text": "a"}, {"text": "b"}]))
        assert run(_complete(fault.base_url, "hi")).text == "ab"

    def test_a_tool_call_answer_without_text_is_an_empty_answer(self, fault) -> None:
        call = {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        body = json.dumps({"choices": [{"message": {"content": None, "tool_calls": [call]}}]})
        raw_server(fault, body=body)
        assert run(_complete(fault.base_url, "hi")).text == ""

    def test_a_catalog_entry_keeps_its_id_and_drops_numbers_that_are_not_sizes(self, fault) -> None:
        fault.configure(
            models=[{"id": "a", "context_length": float("inf")}, {"id": "b", "meta": {"n_ctx_train": 4096}}]
        )
        models = run(_models(fault.base_url))
        assert [(m.id, m.context_length) for m in models] == [("a", None), ("b", 4096)]


async def _models(url: str):
    provider = provider_for(url)
    try:
        return await provider.list_models()
    finally:
        await provider.aclose()


class TestTimeLimits:
    def test_a_stream_that_finished_and_then_hangs_is_complete_after_a_short_grace(self, fault) -> None:
        raw_server(fault, body=sse(delta("done"), delta(finish="stop"), done=False), hang=True)
        provider = provider_for(fault.base_url, timeout_s=30, finish_grace_s=0.2)

        async def go() -> list[StreamChunk]:
            try:
                return await _collect(provider.stream("fault-model", ChatRequest.build("hi")))
            finally:
                await provider.aclose()

        final = run(go())[-1].completion
        assert final is not None and (final.text, final.finish_reason) == ("done", "stop")

    @pytest.mark.slow
    def test_a_trickling_answer_times_out_after_timeout_s(self, fault) -> None:
        raw_server(fault, trickle=" ", trickle_s=0.02)
        with pytest.raises(ProviderTimeout, match=r"timeout_s=0\.5s"):
            run(_complete(fault.base_url, "hi", timeout_s=0.5))

    @pytest.mark.slow
    def test_a_stream_whose_text_keeps_coming_may_outlast_timeout_s(self, fault) -> None:
        fault.configure(chunk_delay_s=0.1)
        words = " ".join(f"w{i}" for i in range(15))  # about 1.6 s of deltas, each well within the 1 s timeout
        provider = provider_for(fault.base_url, timeout_s=1.0)

        async def go() -> list[StreamChunk]:
            try:
                return await _collect(provider.stream("fault-model", ChatRequest.build(words)))
            finally:
                await provider.aclose()

        final = run(go())[-1].completion
        assert final is not None and final.text == f"echo: {words}"


class TestCredentials:
    PASSWORD = "hunter2-DISTINCTIVE-5151"

    def test_user_info_in_the_base_url_is_sent_as_basic_auth_and_kept_out_of_the_url(self) -> None:
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, text=answer())

        url = f"http://alice:{self.PASSWORD}@127.0.0.1:9/v1"
        provider = provider_for(url, api_key=Secret("sk-unused-1234567890"), transport=httpx.MockTransport(handle))
        run(provider.complete("fault-model", ChatRequest.build("hi")))
        expected = base64.b64encode(f"alice:{self.PASSWORD}".encode()).decode()
        assert seen[0].headers["Authorization"] == f"Basic {expected}"
        assert str(seen[0].url) == "http://127.0.0.1:9/v1/chat/completions"
        assert self.PASSWORD not in repr(provider) and provider.base_url == "http://127.0.0.1:9/v1"

    def test_header_values_held_as_secrets_are_sent_as_their_value(self) -> None:
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, text=answer())

        headers = {"X-Api-Key": Secret("hdr-DISTINCTIVE-0987654321"), "X-Plain": "yes"}
        provider = provider_for("http://127.0.0.1:9/v1", headers=headers, transport=httpx.MockTransport(handle))
        run(provider.complete("fault-model", ChatRequest.build("hi")))
        assert seen[0].headers["X-Api-Key"] == "hdr-DISTINCTIVE-0987654321"
        assert seen[0].headers["X-Plain"] == "yes"

    def test_a_key_echoed_inside_an_answer_is_masked(self, fault) -> None:
        key = Secret("sk-echo-DISTINCTIVE-1122334455")
        raw_server(fault, body=answer(f"your key is {key.reveal()}."))
        assert run(_complete(fault.base_url, "hi", api_key=key)).text == "your key is ***."

    def test_a_key_split_across_stream_deltas_is_masked_in_every_delta(self, fault) -> None:
        key = Secret("sk-split-DISTINCTIVE-6677889900").reveal()
        raw_server(fault, body=sse(delta("key: " + key[:7]), delta(key[7:] + " ok"), delta(finish="stop")))
        chunks = run(_stream(fault.base_url, "hi"))
        deltas = [c.delta for c in chunks if c.delta]
        assert "".join(deltas) == "key: *** ok" and chunks[-1].completion.text == "key: *** ok"
        assert not any(key[:7] in d for d in deltas)
