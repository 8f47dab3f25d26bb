"""The OpenAI chat-completions wire format, and `FaultServer`, the loopback server that speaks it.

Checked against the official ``openai`` SDK by the test suite:

* ``POST /v1/chat/completions``: a ``chat.completion`` (``tool_calls`` when tools are offered), or
  with ``"stream": true`` one ``chat.completion.chunk`` per word, the finish, the usage chunk when
  ``stream_options.include_usage`` asks for it, and ``data: [DONE]``;
* ``GET /v1/models``: the ``models`` setting (``{"object": "list", "data": [...]}``);
* errors as ``{"error": {"message", "code"}}``; keys are optional, as on an OpenAI-compatible
  server of one's own, unless the ``api_key`` setting names one.

The default answer is ``"echo: <last user message>"`` with word counts as usage; sampling with a
temperature and no seed adds a random tag, so repeated samples differ. Outcomes beyond
`opencode_lab.testing.faults.GENERIC`: ``rate_limit`` (429 + ``Retry-After`` and
``retry-after-ms``), ``server_error``, ``bad_gateway``, ``unavailable`` (503 + ``Retry-After``),
``unauthorized``, ``payment_required``, ``bad_request``, ``not_found_model``, ``context_length``,
``error_in_200`` (an error object in a 200, a mid-stream error event when streaming, as OpenRouter
sends them), ``empty_choices``, ``bad_utf8`` (a raw 0xFF byte in the answer). ::

    with FaultServer(latency_s=0.01) as srv:
        srv.configure(queue=["rate_limit", "ok"], retry_after=1)
        httpx.post(f"{srv.base_url}/chat/completions", json={"model": "m", "messages": [...]})
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from opencode_lab.testing import scripted
from opencode_lab.testing.faults import GENERIC, RetryAfter
from opencode_lab.testing.server import VendorServer
from opencode_lab.testing.transport import Request, Response, Stream
from opencode_lab.testing.wire import Call, Route, Wire

__all__ = ["OUTCOMES", "FaultServer", "OpenAIWire"]

# outcome -> (HTTP status, error message, error code)
_ERRORS: dict[str, tuple[int, str, int | str]] = {
    "rate_limit": (429, "rate limited", 429),
    "server_error": (500, "internal server error", 500),
    "bad_gateway": (502, "bad gateway", 502),
    "unavailable": (503, "service unavailable", 503),
    "unauthorized": (401, "invalid api key", 401),
    "payment_required": (402, "insufficient credits", 402),
    "bad_request": (400, "bad request", 400),
    "not_found_model": (404, "model not found", 404),
    "context_length": (400, "This model's maximum context length is 2048 tokens", "context_length_exceeded"),
}
OUTCOMES: frozenset[str] = GENERIC | {"error_in_200", "empty_choices", "bad_utf8", *_ERRORS}
#: the request fields a log entry keeps as ``sampling`` (what a client sent besides model and messages)
_SAMPLING = ("temperature", "max_tokens", "seed", "top_p", "stop")
_DONE = b"data: [DONE]\n\n"
_ERROR_IN_200 = {"error": {"message": "upstream provider error", "code": 502}}


def _text(content: Any) -> str:
    """Message content as text; OpenAI also allows a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def _prompt(body: dict[str, Any]) -> str:
    """The last user message's text."""
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


def _images(body: dict[str, Any]) -> list[str]:
    """The content hash of every ``image_url`` data URL in *body* (http URLs as they are)."""
    out = []
    for message in body.get("messages") or []:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            url = (part.get("image_url") or {}).get("url", "") if part.get("type") == "image_url" else ""
            if url:
                out.append(scripted.image_digest(url.partition(",")[2]) if url.startswith("data:") else url)
    return out


def _logprobs_asked(body: dict[str, Any]) -> int | None:
    """How many alternatives per token the request asked for, or None when it asked for no log-probabilities."""
    return int(body.get("top_logprobs") or 0) if body.get("logprobs") else None


def _logprobs(text: str, top: int) -> dict[str, Any]:
    """``choices[i].logprobs`` for *text*, as the scripted distribution gives it."""
    return {
        "content": [
            {"token": token, "logprob": logprob, "bytes": list(token.encode()),
             "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives]}
            for token, logprob, alternatives in scripted.logprobs(text, top)
        ],
        "refusal": None,
    }  # fmt: skip


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class OpenAIWire(Wire):
    """Chat completions as OpenAI (and OpenRouter, llama.cpp's server, ...) speak them."""

    outcomes = OUTCOMES
    prefix = "/v1"

    def credential(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        return None if header is None else header.removeprefix("Bearer ")

    def route(self, request: Request) -> Route | None:
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return "generate"
        if request.method == "GET" and request.path == "/v1/models":
            return "models"
        return None

    def read(self, request: Request) -> Call | Response:
        try:
            body = json.loads(request.body)
            return Call(
                body=body,
                model=body.get("model"),
                prompt=_prompt(body),
                stream=bool(body.get("stream")),
                sampling={k: body[k] for k in _SAMPLING if k in body},
                tools=[t["function"]["name"] for t in body.get("tools") or []],
                images=_images(body),
            )
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            return self.refusal(400, f"invalid request: {exc!r}")

    def echo(self, body: dict[str, Any]) -> str:
        last = (body.get("messages") or [{}])[-1]
        text = scripted.echo(_text(last.get("content")) if last.get("role") == "tool" else _prompt(body))
        if (body.get("temperature") or 0) > 0 and body.get("seed") is None:
            text += f" #{os.urandom(3).hex()}"  # sampling without a seed: repeated samples must differ
        return text

    def answer(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Response:
        base, usage = self._base(call, text, settings)
        answer = {
            **base,
            "object": "chat.completion",
            "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
        if (wanted := _logprobs_asked(call.body)) is not None:
            answer["choices"][0]["logprobs"] = _logprobs(text, wanted)
        if tool_call := self._tool_call(call):
            message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
            answer["choices"] = [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
        if outcome == "malformed":
            return Response(200, b'{"choices": [')
        if outcome == "error_in_200":
            return Response(200, _ERROR_IN_200)
        if outcome == "empty_choices":
            return Response(200, {**answer, "choices": []})
        if outcome == "bad_utf8":
            return Response(200, json.dumps(answer).encode().replace(b"echo:", b"echo\xff:", 1))
        return Response(200, answer)

    def stream(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Stream:
        """One event per word, flushed one by one; tool-call arguments in two pieces, as OpenAI streams them."""
        base, usage = self._base(call, text, settings)
        chunk = {**base, "object": "chat.completion.chunk"}

        wanted = _logprobs_asked(call.body)

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            if wanted is not None and delta.get("content"):
                choice["logprobs"] = _logprobs(delta["content"], wanted)
            return _sse({**chunk, "choices": [choice]})

        if outcome == "malformed":
            events = [b'data: {"choices": [\n\n', _DONE]
        elif outcome == "error_in_200":  # OpenRouter reports mid-stream failures as an error event
            events = [_sse({**chunk, **_ERROR_IN_200}), _DONE]
        elif outcome == "empty_choices":
            events = [_sse({**chunk, "choices": []}), _DONE]
        elif tool_call := self._tool_call(call):
            head = {"index": 0, **tool_call, "function": {"name": tool_call["function"]["name"], "arguments": ""}}
            args = tool_call["function"]["arguments"]
            halves = (args[: len(args) // 2], args[len(args) // 2 :])
            events = [event({"role": "assistant", "content": None, "tool_calls": [head]})]
            events += [event({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in halves]
            events += [event({}, "tool_calls"), _DONE]
        else:
            first, *rest = scripted.pieces(text)
            events = [event({"role": "assistant", "content": first}), *(event({"content": w}) for w in rest)]
            events.append(event({}, "stop"))
            if settings["stream_usage"] and (call.body.get("stream_options") or {}).get("include_usage"):
                events.append(_sse({**chunk, "choices": [], "usage": usage}))
            events.append(_DONE)
            if outcome == "bad_utf8":
                events.insert(1, event({"content": "<ff>"}).replace(b"<ff>", b"\xff"))
        return Stream(events, cut_at=2, end=1)  # [DONE]

    def failure(self, outcome: str, stream: bool, retry_after: RetryAfter | None) -> Response | None:
        if outcome not in _ERRORS:
            return None
        status, message, code = _ERRORS[outcome]
        headers = {}
        if retry_after is not None and status in (429, 503):
            headers["Retry-After"] = retry_after.header
            headers["retry-after-ms"] = str(round(retry_after.seconds * 1000))  # OpenAI's finer-grained twin
        return Response(status, {"error": {"message": message, "code": code}}, headers)

    def refusal(self, status: int, message: str) -> Response:
        return Response(status, {"error": {"message": message, "code": status}})

    def models(self, request: Request, models: list[str | dict[str, Any]]) -> Response:
        data = [
            {"object": "model", "owned_by": "fault-server", **(m if isinstance(m, dict) else {"id": m})} for m in models
        ]
        return Response(200, {"object": "list", "data": data})

    def _base(self, call: Call, text: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fields every answer and chunk share (id, created, model; OpenRouter's provider when the
        ``upstream_provider`` setting names one), and the usage: words as tokens."""
        p = sum(scripted.words(_text(m.get("content"))) for m in call.body.get("messages") or [])
        c = scripted.words(text)
        usage: dict[str, Any] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if settings["cost_per_token"] is not None:
            usage["cost"] = c * settings["cost_per_token"]
        usage |= settings["usage"]
        base = {"id": f"chatcmpl-fault-{self.next_id()}", "created": int(time.time()), "model": call.model}
        if settings["upstream_provider"] is not None:  # OpenRouter names the upstream in every answer and chunk
            base["provider"] = settings["upstream_provider"]
        return base, usage

    def _tool_call(self, call: Call) -> dict[str, Any] | None:
        """The ``tool_calls`` entry the shared script makes for *call*, or None for a text answer."""
        messages = call.body.get("messages") or []
        if not messages or messages[-1].get("role") == "tool":
            return None
        offered = [(t["function"]["name"], t["function"].get("parameters") or {}) for t in call.body.get("tools") or []]
        chosen = scripted.tool_call(call.prompt, offered)
        if chosen is None:
            return None
        function = {"name": chosen[0], "arguments": chosen[1]}
        return {"id": scripted.call_id(self.next_id()), "type": "function", "function": function}


class FaultServer(VendorServer):
    """The OpenAI-compatible loopback server (the first of the test servers, hence its general name)."""

    wire_type = OpenAIWire
