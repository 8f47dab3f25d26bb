"""Anthropic's Messages wire format: the request body out, content blocks and stream events back, read strictly.

The system prompt is a top-level field, ``max_tokens`` is required, content comes as typed
blocks (``text``, ``tool_use``, ``image``), a stream is typed events (``message_start``,
``content_block_*``, ``message_delta`` with the usage, ``message_stop``, ``ping``, ``error``),
and ``stop_reason`` is mapped onto the OpenAI finish reasons the rest of the lab reads.
Structured output (``schema=``) is a tool the model must call whose input schema is the
schema; that input is the answer's text.  There is no ``seed``: it is left out (it still keys the cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..core.content import Image
from ..core.errors import InvalidRequestError
from ..core.structured import Schema
from ..core.tools import ToolCall
from ..core.types import ChatRequest, Completion, Message, Usage
from .wire import Reported, WireError, count, loads, obj, pass_options, served_model, text
from .wire import usage as _usage

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


#: body fields the codec owns: an option naming one is refused
RESERVED = frozenset(
    {"model", "max_tokens", "system", "messages", "temperature", "top_p", "stop_sequences", "tools", "tool_choice",
     "thinking", "stream"}
)  # fmt: skip
#: content blocks of extended thinking: not the answer, but a stream that sends them is making progress
_THINKING = ("thinking", "redacted_thinking")
#: the smallest thinking budget the Messages API takes
MIN_THINKING_BUDGET = 1024


def payload(model: str, request: ChatRequest, *, stream: bool, max_tokens: int) -> dict[str, Any]:
    """The JSON body of one message; *max_tokens* is sent when the request sets none (on top of a thinking
    budget, which counts against ``max_tokens``)."""
    p = request.params
    if p.temperature is not None and p.temperature > 1:
        raise InvalidRequestError(f"temperature must be at most 1 for Anthropic's {model!r}, got {p.temperature}")
    thinking = thinking_object(request, model)
    budget = thinking.get("budget_tokens", 0)
    body: dict[str, Any] = {"model": model, "max_tokens": p.max_tokens or budget + max_tokens}
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["system"] = system
    body["messages"] = _turns(request.messages)
    optional = {"temperature": p.temperature, "top_p": p.top_p, "stop_sequences": list(p.stop) or None}
    body |= {k: v for k, v in optional.items() if v is not None}
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)} for t in request.tools
        ]
    if p.schema is not None:  # structured output: the schema is the input of a tool the model must call
        if request.tools:
            raise InvalidRequestError(f"schema= and tools= cannot be combined for Anthropic's {model!r}")
        body["tools"] = [_answer_tool(p.schema, model)]
        body["tool_choice"] = {"type": "tool", "name": p.schema.name}
    if thinking:
        body["thinking"] = thinking
    if stream:
        body["stream"] = True
    pass_options(body, p.options, RESERVED, "request")
    return body


def thinking_object(request: ChatRequest, model: str) -> dict[str, Any]:
    """Extended thinking from ``reasoning_budget``: ``{"type": "enabled", "budget_tokens": N}`` (at least
    1024 tokens, below ``max_tokens``), ``{"type": "disabled"}`` for 0, nothing when not asked.  Thinking
    takes no temperature other than 1, and the Messages API returns no log-probabilities."""
    p = request.params
    if p.reasoning_effort is not None:
        raise InvalidRequestError(f"Anthropic's {model!r} takes a thinking budget: use reasoning_budget=, not effort")
    if p.logprobs:
        raise InvalidRequestError(f"Anthropic's {model!r} returns no log-probabilities; drop logprobs=")
    budget = p.reasoning_budget
    if budget is None:
        return {}
    if budget == 0:
        return {"type": "disabled"}
    if budget < MIN_THINKING_BUDGET:
        raise InvalidRequestError(
            f"reasoning_budget must be 0 (no thinking) or at least {MIN_THINKING_BUDGET} for Anthropic, got {budget}"
        )
    if p.max_tokens is not None and p.max_tokens <= budget:
        raise InvalidRequestError(
            f"max_tokens ({p.max_tokens}) must be more than reasoning_budget ({budget}): thinking counts against it"
        )
    if p.temperature is not None and p.temperature != 1:
        raise InvalidRequestError(f"Anthropic's extended thinking takes no temperature but 1, got {p.temperature}")
    if p.schema is not None:  # the schema is a tool the model is forced to call, which thinking does not allow
        raise InvalidRequestError(f"schema= and a reasoning_budget cannot be combined for Anthropic's {model!r}")
    return {"type": "enabled", "budget_tokens": budget}


def answer_name(request: ChatRequest) -> str | None:
    """The tool whose input is the answer (structured output), if the request has a schema."""
    return request.params.schema.name if request.params.schema is not None else None


def completion(data: Mapping[str, Any], asked: str, answer: str | None = None) -> Completion:
    """The answer of a whole response; the input of the *answer* tool (structured output) is its text."""
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise WireError("response content is not a list of blocks")
    texts, calls = [], []
    for i, raw in enumerate(blocks):
        block = obj(raw, f"content[{i}]")
        if block.get("type") == "text":
            texts.append(text(block.get("text"), f"content[{i}].text"))
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            if not isinstance(block.get("name"), str) or not isinstance(arguments, dict | None):
                raise WireError(f"content[{i}] is a tool_use block without a name or an input object")
            if answer and block["name"] == answer:
                texts.append(json.dumps(arguments or {}, ensure_ascii=False))
            else:
                calls.append(ToolCall.parse(str(block.get("id") or f"call_{i}"), block["name"], arguments))
    stop = data.get("stop_reason")
    if answer and stop == "tool_use" and not calls:
        stop = "end_turn"
    return Completion(
        "".join(texts),
        served_model(data, asked),
        _finish(stop if isinstance(stop, str) else None),
        usage(data.get("usage")),
        tool_calls=tuple(calls),
    )


class MessagesFold:
    """Stream events folded into one answer: text, tool calls, stop reason, usage.

    The input of the *answer* tool (structured output) is the answer's text, streamed as it comes;
    ``ping`` events are not progress, and after ``message_delta`` gives the stop reason the answer is finished."""

    incomplete = "stream ended without message_stop"

    def __init__(self, model: str, answer: str | None = None) -> None:
        self.done = False
        self._model = model
        self._stop: str | None = None
        self._answer = answer
        self._answer_block: int | None = None
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, list[str]] = {}  # block index -> [id, name, input JSON so far]

    @property
    def finished(self) -> bool:
        return self.done or self._stop is not None

    def feed(self, data: str) -> tuple[str, bool]:
        event = loads(data, "stream event")
        kind = event.get("type")
        if kind == "error":
            raise _event_error(event)
        if kind == "message_start":
            message = obj(event.get("message"), "message_start.message")
            self._model = served_model(message, self._model)
            self._usage |= obj(message.get("usage") or {}, "message_start.message.usage")
        elif kind == "content_block_start":
            return self._block_start(event)
        elif kind == "content_block_delta":
            return self._block_delta(event)
        elif kind == "message_delta":
            delta = obj(event.get("delta") or {}, "message_delta.delta")
            stop = delta.get("stop_reason")
            if stop is not None and not isinstance(stop, str):
                raise WireError("message_delta.delta.stop_reason is not text")
            self._stop = stop or self._stop
            self._usage |= obj(event.get("usage") or {}, "message_delta.usage")
        elif kind == "message_stop":
            self.done = True
        return "", False

    def completion(self, text: str, ttft: float | None) -> Completion:
        calls = tuple(ToolCall.parse(i, n, raw) for _, (i, n, raw) in sorted(self._tools.items()))
        stop = "end_turn" if self._answer_block is not None and self._stop == "tool_use" else self._stop
        return Completion(text, self._model, _finish(stop), usage(self._usage), ttft, calls)

    def _block_start(self, event: Mapping[str, Any]) -> tuple[str, bool]:
        block = obj(event.get("content_block"), "content_block_start.content_block")
        if block.get("type") == "tool_use" and self._answer and block.get("name") == self._answer:
            self._answer_block = _index(event)
        elif block.get("type") == "tool_use":
            self._tools[_index(event)] = [str(block.get("id") or ""), str(block.get("name") or ""), ""]
        elif block.get("type") == "text":
            return text(block.get("text", ""), "content_block_start.content_block.text"), True
        return "", block.get("type") in _THINKING

    def _block_delta(self, event: Mapping[str, Any]) -> tuple[str, bool]:
        delta = obj(event.get("delta"), "content_block_delta.delta")
        if delta.get("type") == "text_delta":
            return text(delta.get("text"), "content_block_delta.delta.text"), True
        if delta.get("type") == "input_json_delta" and _index(event) == self._answer_block:
            return text(delta.get("partial_json"), "delta.partial_json"), True
        if delta.get("type") == "input_json_delta" and _index(event) in self._tools:
            self._tools[_index(event)][2] += text(delta.get("partial_json"), "delta.partial_json")
            return "", True
        return "", delta.get("type") in ("thinking_delta", "signature_delta")  # thinking: not text, but alive


def listed(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of one ``/v1/models`` page that have an id."""
    items = data.get("data") or []
    if not isinstance(items, list):
        raise WireError("the model list's data is not a list")
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]]


def usage(raw: object) -> Usage:
    """``output_tokens`` (thinking included, not reported apart) and the whole prompt as ``input_tokens``:
    Anthropic's ``input_tokens`` leaves out ``cache_read_input_tokens`` and ``cache_creation_input_tokens``,
    which are kept as the cached and cache-written parts of it."""
    counted = _usage(raw, "usage", "input_tokens", "output_tokens")
    if not isinstance(raw, dict):
        return counted
    reads = count(raw.get("cache_read_input_tokens"), "usage.cache_read_input_tokens")
    writes = count(raw.get("cache_creation_input_tokens"), "usage.cache_creation_input_tokens")
    if counted.input_tokens is None or (reads is None and writes is None):
        return replace(counted, cached_input_tokens=reads, cache_write_tokens=writes)
    total = counted.input_tokens + (reads or 0) + (writes or 0)
    return replace(counted, input_tokens=total, cached_input_tokens=reads, cache_write_tokens=writes)


def _event_error(event: Mapping[str, Any]) -> Reported:
    """An ``error`` event: before any text, the error its type names (overloaded: retryable); after, a cut."""
    raw = event.get("error")
    error: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    kind = str(error.get("type") or "api_error")
    return Reported(f"error event in the stream: {error.get('message') or kind} ({kind})", _ERROR_STATUS.get(kind, 500))


def _turns(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The ``messages`` array: system turns leave it, tool results become ``tool_result`` blocks of a user turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            previous = out[-1]["content"] if out and out[-1]["role"] == "user" else None
            if isinstance(previous, list) and all(b["type"] == "tool_result" for b in previous):
                previous.append(block)  # results of one turn's calls travel together
            else:
                out.append({"role": "user", "content": [block]})
        elif m.parts:
            out.append({"role": m.role, "content": [_part(p) for p in m.parts if p]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
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


def _finish(stop: str | None) -> str | None:
    return _FINISH.get(stop, stop) if stop else None


def _index(event: Mapping[str, Any]) -> int:
    index = event.get("index", 0)
    if not isinstance(index, int):
        raise WireError("a content block event has no index")
    return index
