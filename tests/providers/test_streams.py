"""What every streamed answer promises, whatever its wire format, against the three loopback servers.

A complete answer is never thrown away: a finish reason followed by a dropped connection, or by a
connection left open, is the whole answer.  Whatever breaks after text arrived keeps that text in the
error (``partial_text``), whatever the error's class.  A 200 that is no event stream is a clear error.
Raw bodies are scripted in each format with the helpers below (`Format.text`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from opencode_lab import (
    BadRequestError,
    ChatRequest,
    MalformedResponseError,
    ProviderError,
    ProviderTimeout,
    StreamInterruptedError,
)
from opencode_lab.core.secrets import Secret
from opencode_lab.core.types import StreamChunk
from opencode_lab.providers.anthropic import AnthropicProvider
from opencode_lab.providers.gemini import GeminiProvider
from opencode_lab.providers.http import HTTPProvider
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.testing import AnthropicServer, FaultServer, GeminiServer, VendorServer

KEY = "sk-STREAMS-test-key-0123456789"
MODEL = "fault-model"
E = TypeVar("E", bound=ProviderError)


def data(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def openai_text(text: str) -> str:
    return data({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def anthropic_text(text: str) -> str:
    start = {"type": "message_start", "message": {"model": MODEL, "usage": {"input_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return data(start) + data(block) + data(delta)


def gemini_text(text: str) -> str:
    return data({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}]})


@dataclass(frozen=True)
class Format:
    """One wire format: its loopback server, our provider for it, and a raw SSE body that streams text."""

    server_type: type[VendorServer]
    provider_type: type[HTTPProvider]
    text: Callable[[str], str]

    def provider(self, server: VendorServer, **kw: Any) -> HTTPProvider:
        return self.provider_type(self.server_type.__name__, server.base_url, api_key=Secret(KEY), **kw)


FORMATS = {
    "openai": Format(FaultServer, OpenAICompatibleProvider, openai_text),
    "anthropic": Format(AnthropicServer, AnthropicProvider, anthropic_text),
    "gemini": Format(GeminiServer, GeminiProvider, gemini_text),
}


@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, VendorServer]]:
    servers = {name: f.server_type(models=[MODEL]).start() for name, f in FORMATS.items()}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(params=list(FORMATS))
def wire(request: pytest.FixtureRequest, _servers: dict[str, VendorServer]) -> tuple[Format, VendorServer]:
    server = _servers[request.param]
    server.reset()
    return FORMATS[request.param], server


def stream(
    wire: tuple[Format, VendorServer],
    prompt: str = "one two three",
    *,
    into: list[StreamChunk] | None = None,
    **kw: Any,
) -> list[StreamChunk]:
    """Every chunk our provider streams for *prompt* (its keywords: *kw*), appended to *into* as they come."""
    fmt, server = wire
    chunks = [] if into is None else into

    async def collect() -> None:
        provider = fmt.provider(server, **kw)
        try:
            async for chunk in provider.stream(MODEL, ChatRequest.build(prompt)):
                chunks.append(chunk)
        finally:
            await provider.aclose()

    asyncio.run(collect())
    return chunks


def kept(wire: tuple[Format, VendorServer], error: type[E], **kw: Any) -> E:
    """The *error* a stream of ``"partial answer"`` on *wire* breaks with, checked to keep the text it showed.

    That is the whole text, less at most a tail held back as the possible start of a key (any test may have
    registered one that starts with ``r``)."""
    chunks: list[StreamChunk] = []
    with pytest.raises(error) as info:
        stream(wire, into=chunks, **kw)
    shown = "".join(c.delta for c in chunks)
    assert info.value.partial_text == shown and shown.startswith("partial")
    return info.value


def scripted(wire: tuple[Format, VendorServer], **raw: Any) -> None:
    """Every chat on *wire*'s server answered with the scripted raw response."""
    wire[1].configure(mix={"raw": 1.0}, raw=raw, hang_s=30.0)


# -- a complete answer is never thrown away -------------------------------------------------------------------


def test_a_finish_and_then_a_dropped_connection_is_the_whole_answer(wire) -> None:
    wire[1].configure(queue=["cut_before_end"])
    chunks = stream(wire)
    final = chunks[-1].completion
    assert final is not None and (final.text, final.finish_reason) == ("echo: one two three", "stop")
    assert "".join(c.delta for c in chunks) == final.text
    assert final.usage.output_tokens == 4  # the usage came with (or before) the finish, and is kept


def test_a_finish_and_then_a_connection_left_open_is_the_whole_answer_after_a_short_grace(wire) -> None:
    wire[1].configure(queue=["hang_before_end"], hang_s=60.0)
    started = time.monotonic()
    final = stream(wire, timeout_s=30.0, finish_grace_s=0.2)[-1].completion
    assert final is not None and (final.text, final.finish_reason) == ("echo: one two three", "stop")
    assert time.monotonic() - started < 15  # the grace, not timeout_s (30 s), let alone the server's 60 s


def test_a_cut_before_the_finish_still_is_an_interruption_keeping_the_text(wire) -> None:
    scripted(wire, body=wire[0].text("partial answer"))  # the body ends cleanly, but the answer never finished
    kept(wire, StreamInterruptedError)


# -- whatever breaks after text keeps the text -----------------------------------------------------------------


def test_a_malformed_event_after_text_is_malformed_and_keeps_the_text(wire) -> None:
    scripted(wire, body=wire[0].text("partial answer") + 'data: {"broken": \n\n')
    error = kept(wire, MalformedResponseError)
    assert "not JSON" in str(error) and error.trips_breaker  # still counts against the server's health


def test_the_body_cap_after_text_is_malformed_and_keeps_the_text(wire) -> None:
    scripted(wire, body=wire[0].text("partial answer"), trickle=": " + "x" * 1000 + "\n", trickle_s=0.01)
    assert "over the 16384-byte cap" in str(kept(wire, MalformedResponseError, max_body_bytes=16 * 1024))


def test_a_stall_after_text_is_an_interruption_keeping_the_text(wire) -> None:
    scripted(wire, body=wire[0].text("partial answer"), hang=True)
    assert "stalled" in str(kept(wire, StreamInterruptedError, timeout_s=0.5))


def test_anthropic_usage_of_infinity_after_text_is_malformed_and_keeps_the_text(_servers) -> None:
    wire = (FORMATS["anthropic"], _servers["anthropic"])
    wire[1].reset()
    ending = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": float("inf")}}
    scripted(wire, body=anthropic_text("partial answer") + data(ending) + data({"type": "message_stop"}))
    assert "output_tokens is inf" in str(kept(wire, MalformedResponseError))


def test_a_gemini_block_after_text_is_a_bad_request_and_keeps_the_text(_servers) -> None:
    wire = (FORMATS["gemini"], _servers["gemini"])
    wire[1].reset()
    scripted(wire, body=gemini_text("partial answer") + data({"promptFeedback": {"blockReason": "SAFETY"}}))
    assert "blocked" in str(kept(wire, BadRequestError))


def test_an_error_before_any_text_has_no_partial_text(wire) -> None:
    scripted(wire, body='data: {"broken": \n\n')
    with pytest.raises(MalformedResponseError) as info:
        stream(wire)
    assert info.value.partial_text is None


# -- a reply that is no event stream ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        ("application/json", json.dumps({"error": {"message": "streaming is off here"}}), "streaming is off here"),
        ("text/html; charset=utf-8", "<html><title>Sign in</title></html>", "<html><title>Sign in"),
    ],
    ids=["json", "html"],
)
def test_a_reply_that_is_no_event_stream_is_a_clear_error_not_retried(wire, content_type, body, says) -> None:
    scripted(wire, headers={"Content-Type": content_type}, body=body)
    with pytest.raises(ProviderError) as info:
        stream(wire)
    assert type(info.value) is ProviderError and not info.value.retryable
    assert f"the server answered {content_type.split(';')[0]}, not text/event-stream" in str(info.value)
    assert says in str(info.value)


# -- what counts as progress -----------------------------------------------------------------------------------


def test_a_gemini_function_call_and_then_empty_chunks_time_out_after_timeout_s(_servers) -> None:
    wire = (FORMATS["gemini"], _servers["gemini"])
    wire[1].reset()
    call = {"functionCall": {"name": "lookup", "args": {}}}
    body = data({"candidates": [{"content": {"role": "model", "parts": [call]}, "index": 0}]})
    scripted(wire, body=body, trickle=data({}) + data({"candidates": []}), trickle_s=0.02)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=r"timeout_s=0\.5s"):
        stream(wire, timeout_s=0.5)
    assert time.monotonic() - started < 15  # timeout_s: empty chunks are not progress, however many come
