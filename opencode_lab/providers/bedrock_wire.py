"""AWS Bedrock's Converse wire format: the request body out, the ``output.message`` and stream events back.

Turns are ``messages`` of content blocks (``text``, ``image`` with base64 ``bytes``, ``toolUse``,
``toolResult``), the system prompt is a list of ``system`` text blocks, sampling is
``inferenceConfig`` (``maxTokens``, ``temperature``, ``topP``, ``stopSequences``; there is no seed), tools
are ``toolConfig.tools[].toolSpec`` with an ``inputSchema.json``, and ``usage`` counts
``inputTokens`` / ``outputTokens``.  ``schema=`` is a tool the model must call (``toolChoice``), its input
the answer's text, as for Anthropic.  A stream is events named by their ``:event-type`` (``messageStart``,
``contentBlockStart``, ``contentBlockDelta``, ``contentBlockStop``, ``messageStop``, ``metadata``), which
`opencode_lab.providers.eventstream` hands over as ``{"<eventType>": payload}``; it is complete once
``messageStop`` and ``metadata`` (the usage) have come.  Errors are named by type (the
``x-amzn-ErrorType`` header, a body's ``__type`` or an exception event's ``:exception-type``), each
read as the HTTP status the rest of the lab understands (`status_of`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..core.content import Image
from ..core.errors import InvalidRequestError
from ..core.structured import Schema
from ..core.tools import ToolCall
from ..core.types import ChatRequest, Completion, Message, Usage
from .wire import Reported, WireError, loads, obj, text
from .wire import usage as _usage

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
#: Bedrock's error types, as the status whose meaning they have here (the router retries 429 and 5xx)
_ERROR_STATUS = {
    "ThrottlingException": 429,
    "ModelNotReadyException": 503,  # AWS answers it 429 too, but it is the model warming up: retried alike
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelStreamErrorException": 500,
    "ModelErrorException": 502,  # the model failed on this request (AWS says 424)
    "ModelTimeoutException": 408,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "ExpiredTokenException": 403,
    "MissingAuthenticationTokenException": 403,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 400,
}
#: the image formats Converse takes, by MIME type
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def path(model: str, *, stream: bool) -> str:
    """``/model/{modelId}/converse(-stream)``: the id is quoted whole (``:`` and ``/`` of ARNs included), as
    AWS's SDKs send it and sign it."""
    return f"/model/{quote(model, safe='')}/{'converse-stream' if stream else 'converse'}"


def payload(model: str, request: ChatRequest) -> dict[str, Any]:
    """The JSON body of one Converse call (the model and streaming are in the path)."""
    p = request.params
    body: dict[str, Any] = {"messages": _turns(request.messages, model)}
    system = [{"text": m.content} for m in request.messages if m.role == "system" and m.content]
    if system:
        body["system"] = system
    config: dict[str, Any] = {"maxTokens": p.max_tokens, "temperature": p.temperature, "topP": p.top_p}
    config["stopSequences"] = list(p.stop) or None
    if config := {k: v for k, v in config.items() if v is not None}:
        body["inferenceConfig"] = config
    if request.tools:
        body["toolConfig"] = {"tools": [_spec(t.name, t.description, t.parameters) for t in request.tools]}
    if p.schema is not None:  # structured output: the schema is the input of a tool the model must call
        if request.tools:
            raise InvalidRequestError(f"schema= and tools= cannot be combined for Bedrock's {model!r}")
        body["toolConfig"] = {"tools": [_answer_tool(p.schema, model)], "toolChoice": {"tool": {"name": p.schema.name}}}
    return body


def completion(data: Mapping[str, Any], asked: str, answer: str | None = None) -> Completion:
    """The answer of a whole Converse response; the input of the *answer* tool is its text."""
    message = obj(obj(data.get("output"), "output").get("message"), "output.message")
    blocks = message.get("content")
    if not isinstance(blocks, list):
        raise WireError("output.message.content is not a list of blocks")
    texts, calls = [], []
    for i, raw in enumerate(blocks):
        block = obj(raw, f"content[{i}]")
        if "text" in block:
            texts.append(text(block["text"], f"content[{i}].text"))
        elif "toolUse" in block:
            use = obj(block["toolUse"], f"content[{i}].toolUse")
            name, arguments = use.get("name"), use.get("input")
            if not isinstance(name, str) or not isinstance(arguments, dict | None):
                raise WireError(f"content[{i}].toolUse has no name or no input object")
            if answer and name == answer:
                texts.append(json.dumps(arguments or {}, ensure_ascii=False))
            else:
                calls.append(ToolCall.parse(str(use.get("toolUseId") or f"call_{i}"), name, arguments))
    stop = data.get("stopReason")
    stop = "end_turn" if answer and stop == "tool_use" and not calls else stop
    return Completion("".join(texts), asked, _finish(stop), usage(data.get("usage")), tool_calls=tuple(calls))


class ConverseFold:
    """ConverseStream events folded into one answer: text, tool calls, stop reason, usage.

    ``messageStop`` gives the stop reason (the answer is finished); ``metadata`` the usage, and ends it."""

    incomplete = "stream ended without messageStop"

    def __init__(self, model: str, answer: str | None = None) -> None:
        self.done = False
        self._model = model
        self._answer = answer
        self._answer_block: int | None = None
        self._stop: str | None = None
        self._usage = Usage()
        self._tools: dict[int, list[str]] = {}  # block index -> [id, name, input JSON so far]

    @property
    def finished(self) -> bool:
        return self.done or self._stop is not None

    def feed(self, data: str) -> tuple[str, bool]:
        event = loads(data, "stream event")
        if len(event) != 1:
            raise WireError(f"a stream event names one event type, not {sorted(event)}")
        kind, raw = next(iter(event.items()))
        body = obj(raw, kind)
        if kind == "contentBlockStart":
            use = obj(obj(body.get("start") or {}, "contentBlockStart.start").get("toolUse") or {}, "start.toolUse")
            if use and self._answer and use.get("name") == self._answer:
                self._answer_block = _index(body)
            elif use:
                self._tools[_index(body)] = [str(use.get("toolUseId") or ""), str(use.get("name") or ""), ""]
        elif kind == "contentBlockDelta":
            return self._delta(body)
        elif kind == "messageStop":
            stop = body.get("stopReason")
            if not isinstance(stop, str):
                raise WireError("messageStop.stopReason is not text")
            self._stop = stop
        elif kind == "metadata":
            self._usage = usage(body.get("usage"))
            self.done = self._stop is not None
        return "", False

    def completion(self, text: str, ttft: float | None) -> Completion:
        calls = tuple(ToolCall.parse(i, n, raw) for _, (i, n, raw) in sorted(self._tools.items()))
        stop = "end_turn" if self._answer_block is not None and self._stop == "tool_use" else self._stop
        return Completion(text, self._model, _finish(stop), self._usage, ttft, calls)

    def _delta(self, body: Mapping[str, Any]) -> tuple[str, bool]:
        delta = obj(body.get("delta"), "contentBlockDelta.delta")
        if "text" in delta:
            return text(delta["text"], "contentBlockDelta.delta.text"), True
        if "toolUse" in delta:
            piece = text(obj(delta["toolUse"], "delta.toolUse").get("input"), "delta.toolUse.input")
            if _index(body) == self._answer_block:
                return piece, True
            if _index(body) in self._tools:
                self._tools[_index(body)][2] += piece
                return "", True
        return "", False


def usage(raw: object) -> Usage:
    """``inputTokens`` / ``outputTokens``, read strictly."""
    return _usage(raw, "usage", "inputTokens", "outputTokens")


def status_of(kind: str, status: int | None = None) -> int | None:
    """The status Bedrock error type *kind* has here, else *status*: its namespace and ``:http://...`` suffix
    are ignored, and a stream's exception events spell it from a lower-case letter (``throttlingException``)."""
    name = kind.partition(":")[0].rpartition("#")[2]
    return _ERROR_STATUS.get(name[:1].upper() + name[1:], status)


def exception(kind: str, payload: bytes) -> Reported:
    """A stream's exception event: before any text, the error its type names; after, a cut."""
    try:
        message = str(loads(payload, "exception event").get("message") or kind)
    except WireError:
        message = kind
    return Reported(f"{kind} in the stream: {message}", status_of(kind, 500))


def _turns(messages: tuple[Message, ...], model: str) -> list[dict[str, Any]]:
    """The ``messages`` array: system turns leave it, tool results become ``toolResult`` blocks of a user turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            result = {"toolResult": {"toolUseId": m.tool_call_id, "content": [{"text": m.content}]}}
            previous = out[-1]["content"] if out and out[-1]["role"] == "user" else None
            if previous and all("toolResult" in b for b in previous):
                previous.append(result)  # results of one turn's calls travel together
            else:
                out.append({"role": "user", "content": [result]})
            continue
        blocks: list[dict[str, Any]]
        if m.parts:
            blocks = [_part(p, model) for p in m.parts if p]
        else:
            blocks = [{"text": m.content}] if m.content or not m.tool_calls else []
        blocks += [
            {"toolUse": {"toolUseId": c.id, "name": c.name, "input": dict(c.arguments or {})}} for c in m.tool_calls
        ]
        out.append({"role": m.role, "content": blocks})
    return out


def _part(part: str | Image, model: str) -> dict[str, Any]:
    if isinstance(part, str):
        return {"text": part}
    if part.url or part.mime_type not in _FORMATS:
        what = "an image URL" if part.url else f"a {part.mime_type} image"
        raise InvalidRequestError(f"Bedrock's {model!r} takes PNG, JPEG, GIF or WebP bytes, not {what}")
    return {"image": {"format": _FORMATS[part.mime_type], "source": {"bytes": part.base64()}}}


def _spec(name: str, description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": dict(schema)}}
    if description:  # Bedrock refuses an empty description
        spec["description"] = description
    return {"toolSpec": spec}


def _answer_tool(schema: Schema, model: str) -> dict[str, Any]:
    if not isinstance(schema.document, dict) or schema.document.get("type") != "object":
        raise InvalidRequestError(
            f"schema= for Bedrock's {model!r} must describe a JSON object (type 'object'): it is sent as the "
            "input schema of a tool the model must call"
        )
    return _spec(schema.name, "Give the answer in this structure.", schema.document)


def _finish(stop: object) -> str | None:
    return _FINISH.get(stop, stop) if isinstance(stop, str) and stop else None


def _index(event: Mapping[str, Any]) -> int:
    index = event.get("contentBlockIndex", 0)
    if not isinstance(index, int):
        raise WireError("a content block event has no contentBlockIndex")
    return index
