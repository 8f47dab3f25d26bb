"""Anthropic's Messages API (``POST /v1/messages``), spoken with httpx like every other provider.

What differs from the OpenAI wire is translated here and nowhere else: the system
prompt is a top-level field, ``max_tokens`` is required (``OC_ANTHROPIC_MAX_TOKENS``
when the request sets none), content comes as typed blocks (``text``, ``tool_use``,
``image``), a stream is typed SSE events (``message_start``, ``content_block_*``,
``message_delta`` with the usage, ``message_stop``, ``ping``, ``error``), and
``stop_reason`` is mapped onto the OpenAI finish reasons the rest of the lab reads.
Transport, time limits, body caps and HTTP statuses (429 + ``retry-after``, 529
overloaded: a retryable `ServerError`) go through the same edge as the
OpenAI-compatible provider, so a failure means the same thing whoever answered.
Anthropic has no ``seed``: it is left out of the request (it still keys the cache).
Structured output (``schema=``) is a tool the model must call whose input schema is
the schema; that input is the answer's text, checked against the schema on arrival.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..core.content import Image
from ..core.errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderError,
    StreamInterruptedError,
    error_for_status,
)
from ..core.secrets import Secret, redact
from ..core.structured import Schema
from ..core.tools import ToolCall
from ..core.types import ChatRequest, Completion, Message, ModelInfo, StreamChunk, Usage
from . import openai_wire as wire
from .openai_compat import OpenAICompatibleProvider, _cut, _Reader, _StreamText
from .vendor_wire import obj as _object
from .vendor_wire import text as _text

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES = "/v1/messages"
_MAX_PAGES = 20
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: the ``error.type`` of an error event or body, as the HTTP status Anthropic gives it
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicProvider(OpenAICompatibleProvider):
    """Messages, streaming, tools, images and ``/v1/models``; *base_url* as the SDK takes it (no ``/v1``)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: Secret | None,
        max_tokens: int = 1024,
        headers: Mapping[str, str | Secret] | None = None,
        **kw: Any,
    ) -> None:
        sent: dict[str, str | Secret] = {**(headers or {}), "anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            sent["x-api-key"] = api_key
        super().__init__(name, base_url, headers=sent, **kw)
        self.max_tokens = max_tokens

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        p = request.params
        if p.temperature is not None and p.temperature > 1:
            raise InvalidRequestError(f"temperature must be at most 1 for Anthropic's {model!r}, got {p.temperature}")
        body: dict[str, Any] = {"model": model, "max_tokens": p.max_tokens or self.max_tokens}
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        if system:
            body["system"] = system
        body["messages"] = _turns(request.messages)
        optional = {"temperature": p.temperature, "top_p": p.top_p, "stop_sequences": list(p.stop) or None}
        body |= {k: v for k, v in optional.items() if v is not None}
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in request.tools
            ]
        if p.schema is not None:  # structured output: the schema is the input of a tool the model must call
            if request.tools:
                raise InvalidRequestError(f"schema= and tools= cannot be combined for Anthropic's {model!r}")
            body["tools"] = [_answer_tool(p.schema, model)]
            body["tool_choice"] = {"type": "tool", "name": p.schema.name}
        if stream:
            body["stream"] = True
        return body

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        data = await self._fetch("POST", MESSAGES, model, self.payload(model, request, stream=False))
        with self._edge(model):
            completion = _completion(data, model, _answer_name(request))
        text = redact(completion.text, urls=False)
        return dataclasses.replace(completion, text=text, ttft_s=time.perf_counter() - started)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Text deltas as ``content_block_delta`` events bring them; ``timeout_s`` bounds the wait for each
        piece of progress (``ping`` events are not progress), and after ``message_delta`` gives the stop
        reason the rest of the stream gets `FINISH_GRACE_S`, as on the OpenAI wire."""
        loop = asyncio.get_running_loop()
        text = _StreamText()
        events = _Events(model, _answer_name(request))
        with self._edge(model, text.parts):
            reader = _Reader(loop.time() + self._timeout_s, self._max_body_bytes)
            response = await self._send("POST", MESSAGES, reader, self.payload(model, request, stream=True))
            try:
                if response.status_code >= 300:
                    raise self._status_error(response.status_code, await reader.read(response), response.headers, model)
                try:
                    async for line in reader.sse_lines(response):
                        event = wire.loads(line, "stream event")
                        if event.get("type") == "error":
                            raise self._event_error(event, model, text.text)
                        raw, progressed = events.feed(event)
                        if events.done:
                            break
                        if events.stop is not None:
                            reader.deadline = min(reader.deadline, loop.time() + self._finish_grace_s)
                        elif progressed:
                            reader.deadline = loop.time() + self._timeout_s
                        delta = text.feed(raw)
                        if delta:
                            yield StreamChunk(delta)
                except TimeoutError:
                    if events.stop is None:
                        raise
                if not events.done and events.stop is None:
                    raise _cut(self.name, model, text.parts, "stream ended without message_stop")
            finally:
                await response.aclose()
        tail = text.flush()
        if tail:
            yield StreamChunk(tail)
        completion = events.completion(text.text, text.ttft)
        yield StreamChunk("", completion)

    async def list_models(self) -> list[ModelInfo]:
        """Every page of ``/v1/models`` (ids and display names; Anthropic lists no prices)."""
        out: list[ModelInfo] = []
        query: dict[str, str] = {"limit": "1000"}
        for _ in range(_MAX_PAGES):
            data = await self._fetch("GET", f"/v1/models?{urlencode(query)}", None)
            items = data.get("data") or []
            if not isinstance(items, list):
                raise MalformedResponseError("the model list's data is not a list", provider=self.name)
            out += [
                ModelInfo(id=item["id"], description=str(item.get("display_name") or ""))
                for item in items
                if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]
            ]
            if not data.get("has_more") or not isinstance(data.get("last_id"), str):
                break
            query["after_id"] = data["last_id"]
        return out

    def _event_error(self, event: Mapping[str, Any], model: str, partial: str) -> ProviderError:
        """An ``error`` event: before any text, the error its type names (overloaded: retryable); after, a cut."""
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        kind = str(error.get("type") or "api_error")
        text = f"error event in the stream: {error.get('message') or kind} ({kind})"
        status = _ERROR_STATUS.get(kind, 500)
        if partial:
            return StreamInterruptedError(
                text, partial_text=partial, provider=self.name, model=model, status_code=status
            )
        return error_for_status(status, text, provider=self.name, model=model)


class _Events:
    """Anthropic's stream events folded into one answer: text, tool calls, stop reason, usage.

    The input of the *answer* tool (structured output) is the answer's text, streamed as it comes."""

    def __init__(self, model: str, answer: str | None = None) -> None:
        self.model = model
        self.stop: str | None = None
        self.done = False
        self._answer = answer
        self._answer_block: int | None = None
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, list[str]] = {}  # block index -> [id, name, input JSON so far]

    def feed(self, event: Mapping[str, Any]) -> tuple[str, bool]:
        """Take one event; return its text and whether it was progress (text or tool input)."""
        kind = event.get("type")
        if kind == "message_start":
            message = _object(event.get("message"), "message_start.message")
            self.model = wire.served_model(message, self.model)
            self._usage |= _object(message.get("usage") or {}, "message_start.message.usage")
        elif kind == "content_block_start":
            block = _object(event.get("content_block"), "content_block_start.content_block")
            if block.get("type") == "tool_use" and self._answer and block.get("name") == self._answer:
                self._answer_block = _index(event)
            elif block.get("type") == "tool_use":
                self._tools[_index(event)] = [str(block.get("id") or ""), str(block.get("name") or ""), ""]
            elif block.get("type") == "text":
                return _text(block.get("text", ""), "content_block_start.content_block.text"), True
        elif kind == "content_block_delta":
            delta = _object(event.get("delta"), "content_block_delta.delta")
            if delta.get("type") == "text_delta":
                return _text(delta.get("text"), "content_block_delta.delta.text"), True
            if delta.get("type") == "input_json_delta" and _index(event) == self._answer_block:
                return _text(delta.get("partial_json"), "delta.partial_json"), True
            if delta.get("type") == "input_json_delta" and _index(event) in self._tools:
                self._tools[_index(event)][2] += _text(delta.get("partial_json"), "delta.partial_json")
                return "", True
        elif kind == "message_delta":
            delta = _object(event.get("delta") or {}, "message_delta.delta")
            self.stop = delta.get("stop_reason") or self.stop
            self._usage |= _object(event.get("usage") or {}, "message_delta.usage")
        elif kind == "message_stop":
            self.done = True
        return "", False

    def completion(self, text: str, ttft: float | None) -> Completion:
        calls = tuple(ToolCall.parse(i, n, raw) for _, (i, n, raw) in sorted(self._tools.items()))
        stop = "end_turn" if self._answer_block is not None and self.stop == "tool_use" else self.stop
        return Completion(text, self.model, _finish(stop), _usage(self._usage), ttft, calls)


def _turns(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The ``messages`` array: system turns leave it, tool results become ``tool_result`` blocks of a user turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            previous = out[-1]["content"] if out and out[-1]["role"] == "user" else None
            if isinstance(previous, list) and all(b["type"] == "tool_result" for b in previous):
                previous.append(block)  # results of one turn's calls travel together
            else:
                out.append({"role": "user", "content": [block]})
        elif m.parts:
            out.append({"role": m.role, "content": [_part(p) for p in m.parts if p]})
        elif m.tool_calls:
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments or {})} for c in m.tool_calls
            ]
            out.append({"role": m.role, "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _part(part: str | Image) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": part.mime_type, "data": part.base64()}}


def _answer_tool(schema: Schema, model: str) -> dict[str, Any]:
    if not isinstance(schema.document, dict) or schema.document.get("type") != "object":
        raise InvalidRequestError(
            f"schema= for Anthropic's {model!r} must describe a JSON object (type 'object'): it is sent as the "
            "input schema of a tool the model must call"
        )
    return {"name": schema.name, "description": "Give the answer in this structure.", "input_schema": schema.document}


def _answer_name(request: ChatRequest) -> str | None:
    return request.params.schema.name if request.params.schema is not None else None


def _completion(data: Mapping[str, Any], asked: str, answer: str | None = None) -> Completion:
    """The answer of a whole response; the input of the *answer* tool (structured output) is its text."""
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise wire.WireError("response content is not a list of blocks")
    texts, calls = [], []
    for i, block in enumerate(blocks):
        block = _object(block, f"content[{i}]")
        if block.get("type") == "text":
            texts.append(_text(block.get("text"), f"content[{i}].text"))
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            if not isinstance(block.get("name"), str) or not isinstance(arguments, dict | None):
                raise wire.WireError(f"content[{i}] is a tool_use block without a name or an input object")
            if answer and block["name"] == answer:
                texts.append(json.dumps(arguments or {}, ensure_ascii=False))
            else:
                calls.append(ToolCall.parse(str(block.get("id") or f"call_{i}"), block["name"], arguments))
    stop = data.get("stop_reason")
    if answer and stop == "tool_use" and not calls:
        stop = "end_turn"
    return Completion(
        "".join(texts),
        wire.served_model(data, asked),
        _finish(stop if isinstance(stop, str) else None),
        _usage(data.get("usage")),
        tool_calls=tuple(calls),
    )


def _finish(stop: str | None) -> str | None:
    return _FINISH.get(stop, stop) if stop else None


def _usage(raw: Any) -> Usage:
    """``input_tokens`` / ``output_tokens``, read as strictly as the OpenAI usage (cache reads not counted)."""
    if raw is None:
        return Usage()
    raw = _object(raw, "usage")
    return wire.usage({"prompt_tokens": raw.get("input_tokens"), "completion_tokens": raw.get("output_tokens")})


def _index(event: Mapping[str, Any]) -> int:
    index = event.get("index", 0)
    if not isinstance(index, int):
        raise wire.WireError("a content block event has no index")
    return index


def from_config(config: ProviderConfig, settings: Settings) -> AnthropicProvider:
    """The ``anthropic`` provider type (``ANTHROPIC_API_KEY``, or ``type = "anthropic"`` in TOML)."""
    return AnthropicProvider(
        config.name,
        config.base_url,
        api_key=config.api_key,
        max_tokens=settings.anthropic_max_tokens,
        headers=dict(config.headers),
        timeout_s=settings.timeout_s,
    )
