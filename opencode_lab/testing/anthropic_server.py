"""A loopback server speaking Anthropic's Messages API, with fault injection, for tests and notebooks.

It is a `FaultServer` (same control: ``[[fault:NAME]]`` directives, ``queue``, seeded
``mix``, ``retry_after``, ``latency_s``, ``chunk_delay_s``, ``log``, ``count``) with
Anthropic's wire format, checked against the official ``anthropic`` SDK by the test suite:

* ``POST /v1/messages``: a ``message`` object, or with ``"stream": true`` the typed SSE
  events (``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``
  with ``text_delta`` / ``input_json_delta``, ``content_block_stop``, ``message_delta``
  with ``stop_reason`` and usage, ``message_stop``);
* ``GET /v1/models``: pages of models (``limit``, ``after_id``, ``has_more``, ``last_id``);
* errors as ``{"type": "error", "error": {"type", "message"}}`` with a ``request-id``
  header; a missing key (``x-api-key`` or a Bearer token) is a 401, a missing ``anthropic-version`` or
  ``max_tokens`` a 400, as the real API answers.

Answers and tool calls follow the shared script (`opencode_lab.testing.scripted`). Outcomes:
``ok``, ``rate_limit`` (429 + ``retry-after``), ``overloaded`` (529), ``server_error`` (500),
``unauthorized`` (401), ``bad_request``, ``not_found_model``, ``context_length``,
``error_event`` (an ``error`` event after the first text delta; 529 when not streaming),
``hang``, ``reset``, ``malformed``, ``cut_stream``. ``base_url`` has the SDK's form (no ``/v1``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opencode_lab.testing import scripted
from opencode_lab.testing.fault_server import FaultServer

__all__ = ["OUTCOMES", "AnthropicServer"]

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
OUTCOMES: frozenset[str] = frozenset({"ok", "hang", "reset", "malformed", "cut_stream", *_ERRORS})
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


def _problem(req: Any, headers: dict[str, str]) -> str | None:
    """What the real API would refuse with a 400, or None."""
    if "anthropic-version" not in headers:
        return "anthropic-version: header is required"
    if not isinstance(req, dict):
        return "body must be a JSON object"
    if not isinstance(req.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    roles = {m.get("role") for m in messages if isinstance(m, dict)}
    if not roles <= {"user", "assistant"}:
        return f'messages: Unexpected role "{sorted(roles - {"user", "assistant"})[0]}"'
    return None


class AnthropicServer(FaultServer):
    """In-process Anthropic Messages API on a daemon thread; see the module docstring."""

    outcomes = OUTCOMES

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _route(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        keep: bool,
    ) -> bool:
        # the API takes the key as x-api-key or, as newer SDKs send it, a Bearer token
        entry["auth"] = "x-api-key" in headers or "authorization" in headers
        entry["version"] = headers.get("anthropic-version")
        path = entry["path"]
        if method == "POST" and path == "/v1/messages":
            return await self._messages(reader, writer, entry, headers, body, keep)
        if method == "GET" and path == "/v1/models":
            entry["outcome"] = "ok"
            self._send(writer, entry, 200, self._models(target), keep, headers=self._ids_header())
        else:
            entry["outcome"] = "not_found"
            self._error(writer, entry, 404, "not_found_error", f"no route {method} {path}", keep)
        return keep

    def _models(self, target: str) -> dict[str, Any]:
        query = parse_qs(urlsplit(target).query)
        limit = int(query.get("limit", ["20"])[0])
        ids = [m if isinstance(m, str) else m["id"] for m in self._settings["models"]]
        start = ids.index(query["after_id"][0]) + 1 if query.get("after_id", [""])[0] in ids else 0
        page = ids[start : start + limit]
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-02-19T00:00:00Z"} for m in page]
        first, last = (page[0], page[-1]) if page else (None, None)
        return {"data": data, "has_more": start + limit < len(ids), "first_id": first, "last_id": last}

    async def _messages(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        headers: dict[str, str],
        body: bytes,
        keep: bool,
    ) -> bool:
        try:
            req = json.loads(body)
            problem = _problem(req, headers)
        except ValueError as exc:
            req, problem = {}, f"body is not JSON: {exc}"
        if problem is None:
            messages = req["messages"]
            users = [m for m in messages if m["role"] == "user" and not _is_tool_result(m)]
            prompt = _text(users[-1]["content"]) if users else ""
            sampling = {k: req[k] for k in _SAMPLING if k in req}
            entry.update(model=req.get("model"), prompt=prompt, sampling=sampling, stream=bool(req.get("stream")))
            entry.update(tools=[t["name"] for t in req.get("tools") or []], images=_images(messages))
        if problem is not None:
            entry["outcome"] = "invalid_request"
            self._error(writer, entry, 400, "invalid_request_error", problem, keep)
            return keep
        outcome = entry["outcome"] = self._choose(prompt) if entry["auth"] else "unauthorized"
        await self._delay(outcome)
        if outcome in _ERRORS and not (outcome == "error_event" and entry["stream"]):
            self._send_error(writer, entry, outcome, keep)
        elif outcome == "hang":
            await scripted.hang(reader, self._settings["hang_s"])
            return False
        elif outcome == "reset" or (outcome == "cut_stream" and not entry["stream"]):
            scripted.reset(writer)
            return False
        elif entry["stream"]:
            return await self._stream_events(writer, entry, outcome, req, prompt, keep)
        elif outcome == "malformed":
            self._send(writer, entry, 200, b'{"type": "message", "content": [', keep)
        else:
            self._send(writer, entry, 200, self._message(req, prompt), keep, headers=self._ids_header())
        return keep

    def _reply(self, req: dict[str, Any], prompt: str) -> tuple[str, tuple[str, str] | None, str, dict[str, int]]:
        """(text, tool call, stop reason, usage) of the scripted answer."""
        last = req["messages"][-1]
        call = None
        if not _is_tool_result(last):
            offered = [(t["name"], t.get("input_schema") or {}) for t in req.get("tools") or []]
            call = scripted.tool_call(prompt, offered)
        answered = _text(last["content"]) if _is_tool_result(last) else prompt
        text, cut = scripted.truncate(scripted.echo(answered), req["max_tokens"])
        stop = "tool_use" if call else "max_tokens" if cut else "end_turn"
        used = sum(scripted.words(_text(m["content"])) for m in req["messages"])
        return ("" if call else text), call, stop, {"input_tokens": used, "output_tokens": scripted.words(text)}

    def _message(self, req: dict[str, Any], prompt: str) -> dict[str, Any]:
        text, call, stop, usage = self._reply(req, prompt)
        content = (
            [{"type": "tool_use", "id": self._call_id(), "name": call[0], "input": scripted.arguments_object(call[1])}]
            if call
            else [{"type": "text", "text": text}]
        )
        return {
            "id": f"msg_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": req.get("model"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    async def _stream_events(
        self,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        outcome: str,
        req: dict[str, Any],
        prompt: str,
        keep: bool,
    ) -> bool:
        text, call, stop, usage = self._reply(req, prompt)
        start = {**self._message(req, prompt), "content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
        events = [_event("message_start", {"message": start})]
        if outcome == "malformed":
            events.append(b'event: content_block_start\ndata: {"type": "content_block_start", "index": \n\n')
        elif call:
            block = {"type": "tool_use", "id": self._call_id(), "name": call[0], "input": {}}
            args = call[1]
            events.append(_event("content_block_start", {"index": 0, "content_block": block}))
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
        else:
            events.append(_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
            events.append(_event("ping", {}))
            for i, word in enumerate(text.split(" ")):
                delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
                events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
                if outcome == "error_event":
                    _, kind, message = _ERRORS[outcome]
                    events.append(_event("error", {"error": {"type": kind, "message": message}}))
                    break
        if outcome not in ("error_event", "malformed"):
            events.append(_event("content_block_stop", {"index": 0}))
            ending = {"stop_reason": stop, "stop_sequence": None}
            final = _event("message_delta", {"delta": ending, "usage": {"output_tokens": usage["output_tokens"]}})
            events += [final, _event("message_stop", {})]
        sse = {"Cache-Control": "no-cache", **self._ids_header()}
        self._send(writer, entry, 200, b"", keep, "text/event-stream", sse, chunked=True)
        cut = 3 if outcome == "cut_stream" else None
        sent = await scripted.write_events(writer, events, cut_at=cut, delay_s=self._settings["chunk_delay_s"])
        return keep and sent

    def _send_error(self, writer: asyncio.StreamWriter, entry: dict[str, Any], outcome: str, keep: bool) -> None:
        status, kind, message = _ERRORS[outcome]
        headers = {}
        when = self._settings["retry_after"]
        if when is not None and status in (429, 529):
            headers["retry-after"] = f"{when:g}"
            reset = email.utils.formatdate(time.time() + when, usegmt=True)
            headers["anthropic-ratelimit-requests-remaining"] = "0"
            headers["anthropic-ratelimit-requests-reset"] = reset
        self._error(writer, entry, status, kind, message, keep, headers)

    def _error(
        self,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        status: int,
        kind: str,
        message: str,
        keep: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        self._send(writer, entry, status, body, keep, headers={**self._ids_header(), **(headers or {})})

    def _ids_header(self) -> dict[str, str]:
        return {"request-id": f"req_{next(self._ids):06d}"}

    def _call_id(self) -> str:
        return f"toolu_{next(self._ids):06d}"


def _is_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)
