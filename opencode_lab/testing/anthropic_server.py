"""Anthropic's Messages API wire format, and `AnthropicServer`, the loopback server that speaks it.

The same control as every test server (`opencode_lab.testing.server`: ``[[fault:NAME]]``
directives, ``queue``, seeded ``mix``, ``retry_after``, ``latency_s``, ``reply``, ``log``) with
Anthropic's wire format, checked against the official ``anthropic`` SDK by the test suite:

* ``POST /v1/messages``: a ``message`` object, or with ``"stream": true`` the typed SSE
  events (``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``
  with ``text_delta`` / ``input_json_delta``, ``content_block_stop``, ``message_delta``
  with ``stop_reason`` and usage, ``message_stop``);
* ``GET /v1/models``: pages of models (``limit``, ``after_id``, ``has_more``, ``last_id``);
* errors as ``{"type": "error", "error": {"type", "message"}}`` with a ``request-id``
  header; a missing key (``x-api-key`` or a Bearer token) is a 401, a missing ``anthropic-version`` or
  ``max_tokens`` a 400, as the real API answers.

Answers and tool calls follow the shared script (`opencode_lab.testing.scripted`); ``max_tokens``
cuts any answer (``stop_reason: max_tokens``). Outcomes beyond `opencode_lab.testing.faults.GENERIC`:
``rate_limit`` (429 + ``retry-after``), ``overloaded`` (529), ``server_error`` (500),
``unauthorized`` (401), ``bad_request``, ``not_found_model``, ``context_length``,
``error_event`` (an ``error`` event after the first text delta; 529 when not streaming).
``base_url`` has the SDK's form (no ``/v1``).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from opencode_lab.testing import scripted
from opencode_lab.testing.faults import GENERIC, RetryAfter
from opencode_lab.testing.server import VendorServer
from opencode_lab.testing.transport import Request, Response, Stream
from opencode_lab.testing.wire import Call, Route, Wire, model_ids

__all__ = ["OUTCOMES", "AnthropicServer", "AnthropicWire"]

# outcome -> (HTTP status, error type, message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "error_event": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "unauthorized": (401, "authentication_error", "invalid x-api-key"),
    "bad_request": (400, "invalid_request_error", "bad request"),
    "not_found_model": (404, "not_found_error", "model: not found"),
    "context_length": (400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
}
OUTCOMES: frozenset[str] = GENERIC | set(_ERRORS)
#: the error type of each status, for refusals no outcome names
_KINDS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 500: "api_error"}
#: the request fields a log entry keeps as ``sampling``
_SAMPLING = ("max_tokens", "temperature", "top_p", "stop_sequences", "system")


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _text(content: Any) -> str:
    """A message's text: a string, or its ``text`` blocks (a ``tool_result``'s content included)."""
    if isinstance(content, str):
        return content
    out = []
    for block in content if isinstance(content, list) else ():
        if block.get("type") == "text":
            out.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            out.append(_text(block.get("content", "")))
    return " ".join(out)


def _is_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def _prompt(body: dict[str, Any]) -> str:
    """The last user turn's text (a turn carrying tool results is no prompt)."""
    users = [m for m in body["messages"] if m["role"] == "user" and not _is_tool_result(m)]
    return _text(users[-1]["content"]) if users else ""


def _images(messages: list[dict[str, Any]]) -> list[str]:
    """Each ``image`` block's content hash (a URL source as its URL)."""
    out = []
    for message in messages:
        for block in message["content"] if isinstance(message.get("content"), list) else ():
            source = (block.get("source") or {}) if block.get("type") == "image" else {}
            if source.get("type") == "base64":
                out.append(scripted.image_digest(source["data"]))
            elif source.get("type") == "url":
                out.append(source["url"])
    return out


def _problem(body: Any, headers: Mapping[str, str]) -> str | None:
    """What the real API would refuse with a 400, or None."""
    if "anthropic-version" not in headers:
        return "anthropic-version: header is required"
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    roles = {str(m.get("role")) for m in messages if isinstance(m, dict)}
    if not roles <= {"user", "assistant"}:
        return f'messages: Unexpected role "{sorted(roles - {"user", "assistant"})[0]}"'
    return None


class AnthropicWire(Wire):
    """The Messages API: every response carries a ``request-id`` header, as Anthropic's do."""

    outcomes = OUTCOMES
    keyless = "unauthorized"

    def credential(self, request: Request) -> str | None:
        # the API takes the key as x-api-key or, as newer SDKs send it, a Bearer token
        header = request.headers.get("x-api-key") or request.headers.get("authorization")
        return None if header is None else header.removeprefix("Bearer ")

    def notes(self, request: Request) -> dict[str, Any]:
        return {"version": request.headers.get("anthropic-version")}

    def route(self, request: Request) -> Route | None:
        if request.method == "POST" and request.path == "/v1/messages":
            return "generate"
        if request.method == "GET" and request.path == "/v1/models":
            return "models"
        return None

    def read(self, request: Request) -> Call | Response:
        try:
            body = json.loads(request.body)
            problem = _problem(body, request.headers)
        except ValueError as exc:
            problem = f"body is not JSON: {exc}"
        if problem is not None:
            return self.refusal(400, problem)
        return Call(
            body=body,
            model=body.get("model"),
            prompt=_prompt(body),
            stream=bool(body.get("stream")),
            sampling={k: body[k] for k in _SAMPLING if k in body},
            tools=[t["name"] for t in body.get("tools") or []],
            images=_images(body["messages"]),
        )

    def echo(self, body: dict[str, Any]) -> str:
        last = body["messages"][-1]
        return scripted.echo(_text(last["content"]) if _is_tool_result(last) else _prompt(body))

    def answer(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Response:
        if outcome == "malformed":
            return Response(200, b'{"type": "message", "content": [', self._ids_header())
        return Response(200, self._message(call, text, settings), self._ids_header())

    def stream(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Stream:
        said, tool_call, stop, usage = self._reply(call, text, settings)
        start = {**self._message(call, text, settings), "content": [], "stop_reason": None}
        start["usage"] = {**usage, "output_tokens": 1}
        events = [_event("message_start", {"message": start})]
        at = 0  # the answer's block index: 1 after a thinking block
        if _thinks(call.body) and outcome != "malformed":
            start_block = {"type": "thinking", "thinking": "", "signature": ""}
            events.append(_event("content_block_start", {"index": 0, "content_block": start_block}))
            thought = ({"type": "thinking_delta", "thinking": THOUGHT}, {"type": "signature_delta", "signature": "sig"})
            for delta in thought:
                events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
            events.append(_event("content_block_stop", {"index": 0}))
            at = 1
        if outcome == "malformed":
            events.append(b'event: content_block_start\ndata: {"type": "content_block_start", "index": \n\n')
        elif tool_call:
            block = {"type": "tool_use", "id": self._call_id(), "name": tool_call[0], "input": {}}
            args = tool_call[1]
            events.append(_event("content_block_start", {"index": at, "content_block": block}))
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(_event("content_block_delta", {"index": at, "delta": delta}))
        else:
            events.append(_event("content_block_start", {"index": at, "content_block": {"type": "text", "text": ""}}))
            events.append(_event("ping", {}))
            for piece in scripted.pieces(said):
                delta = {"type": "text_delta", "text": piece}
                events.append(_event("content_block_delta", {"index": at, "delta": delta}))
                if outcome == "error_event":
                    _, kind, message = _ERRORS[outcome]
                    events.append(_event("error", {"error": {"type": kind, "message": message}}))
                    break
        ended = outcome not in ("error_event", "malformed")
        if ended:
            events.append(_event("content_block_stop", {"index": at}))
            ending = {"stop_reason": stop, "stop_sequence": None}
            final = _event("message_delta", {"delta": ending, "usage": {"output_tokens": usage["output_tokens"]}})
            events += [final, _event("message_stop", {})]
        return Stream(events, cut_at=3, headers=self._ids_header(), end=int(ended))  # message_stop

    def failure(self, outcome: str, stream: bool, retry_after: RetryAfter | None) -> Response | None:
        if outcome not in _ERRORS or (outcome == "error_event" and stream):
            return None
        status, kind, message = _ERRORS[outcome]
        headers = {}
        if retry_after is not None and status in (429, 529):
            headers["retry-after"] = retry_after.header
            headers["anthropic-ratelimit-requests-remaining"] = "0"
            reset = email.utils.formatdate(time.time() + retry_after.seconds, usegmt=True)
            headers["anthropic-ratelimit-requests-reset"] = reset
        return self._error(status, kind, message, headers)

    def refusal(self, status: int, message: str) -> Response:
        return self._error(status, _KINDS.get(status, "api_error"), message)

    def models(self, request: Request, models: list[str | dict[str, Any]]) -> Response:
        query = request.query
        limit = int(query.get("limit", ["20"])[0])
        ids = model_ids(models)
        start = ids.index(query["after_id"][0]) + 1 if query.get("after_id", [""])[0] in ids else 0
        page = ids[start : start + limit]
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-02-19T00:00:00Z"} for m in page]
        first, last = (page[0], page[-1]) if page else (None, None)
        body = {"data": data, "has_more": start + limit < len(ids), "first_id": first, "last_id": last}
        return Response(200, body, self._ids_header())

    def _reply(
        self, call: Call, text: str, settings: Mapping[str, Any]
    ) -> tuple[str, tuple[str, str] | None, str, dict[str, int]]:
        """(text cut to max_tokens, tool call, stop reason, usage with the ``usage`` setting merged) of the answer."""
        body = call.body
        tool_call = None
        if not _is_tool_result(body["messages"][-1]):
            offered = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or []]
            tool_call = scripted.tool_call(call.prompt, offered)
        said, cut = scripted.truncate(text, body["max_tokens"])
        stop = "tool_use" if tool_call else "max_tokens" if cut else "end_turn"
        used = sum(scripted.words(_text(m["content"])) for m in body["messages"])
        usage = {"input_tokens": used, "output_tokens": scripted.words(said), **settings["usage"]}
        return ("" if tool_call else said), tool_call, stop, usage

    def _message(self, call: Call, text: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        said, tool_call, stop, usage = self._reply(call, text, settings)
        content: list[dict[str, Any]] = [{"type": "text", "text": said}]
        if tool_call:
            use = {"type": "tool_use", "id": self._call_id(), "name": tool_call[0]}
            content = [{**use, "input": scripted.arguments_object(tool_call[1])}]
        if _thinks(call.body):
            content = [{"type": "thinking", "thinking": THOUGHT, "signature": "sig"}, *content]
        return {
            "id": f"msg_{self.next_id():06d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def _error(self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return Response(status, body, {**self._ids_header(), **(headers or {})})

    def _ids_header(self) -> dict[str, str]:
        return {"request-id": f"req_{self.next_id():06d}"}

    def _call_id(self) -> str:
        return f"toolu_{self.next_id():06d}"


#: the thinking a request with ``thinking: {type: enabled}`` gets before its answer (never part of the answer)
THOUGHT = "Let me think about this."


def _thinks(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


class AnthropicServer(VendorServer):
    """In-process Anthropic Messages API on a daemon thread; see the module docstring."""

    wire_type = AnthropicWire
