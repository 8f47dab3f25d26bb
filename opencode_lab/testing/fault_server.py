"""A fault-injecting OpenAI-compatible HTTP/1.1 server for tests, benchmarks and notebooks.

Retry, failover, rate-limit and health logic can only be trusted once it has met real
sockets misbehaving: 429s with ``Retry-After``, 5xx, hangs, resets, malformed JSON and cut
streams. This server speaks just enough of the OpenAI API (chat completions, streaming,
model list) and misbehaves on request, chosen per request in this order:

1. a directive in the last user message: ``[[fault:server_error]]`` always,
   ``[[fault:server_error*2]]`` for the first two requests with that exact content, then ``ok``;
2. a scripted FIFO ``queue`` of outcomes;
3. a seeded random ``mix`` (``{"rate_limit": 0.15, ...}``, the remainder is ``ok``);
4. otherwise ``ok``: ``"echo: <last user message>"`` with word-count usage.

The ``raw`` outcome sends the ``raw`` setting byte for byte, for misbehaviour no named outcome
covers: ``status``, ``headers``, ``body`` (sent ``repeat`` times, in chunked encoding unless the
headers declare a ``Content-Length``); then ``trickle`` (text sent again every ``trickle_s``) or
``hang``, and the body never ends: the connection stays open until ``hang_s`` passes or the
client leaves.

Faults apply to chat completions only; ``GET /v1/models`` always answers (``models`` entries are
ids, or whole entries as dicts, e.g. ``{"id": "m", "context_length": 8192}``). Stdlib only (raw
asyncio streams), so it ships inside the package and a notebook can start it::

    with FaultServer(latency_s=0.01) as srv:
        srv.configure(queue=["rate_limit", "ok"], retry_after=1)
        httpx.post(f"{srv.base_url}/chat/completions", json={"model": "m", "messages": [...]})

``python -m opencode_lab.testing.fault_server --port 0`` runs it as a separate process (it prints
``READY <base_url>``); ``POST /_admin/script`` (``configure`` kwargs as JSON), ``GET /_admin/log`` and
``POST /_admin/reset`` drive it from another process. ``OUTCOMES`` lists every behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import http
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from pathlib import Path
from typing import Any

from opencode_lab.testing import scripted

__all__ = ["OUTCOMES", "FaultServer", "SpawnedFaultServer"]

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
OUTCOMES: frozenset[str] = frozenset(
    {"ok", "hang", "reset", "malformed", "error_in_200", "empty_choices", "cut_stream", "bad_utf8", "raw", *_ERRORS}
)
#: the ``raw`` outcome's response, with these defaults for the keys a script leaves out
_RAW: dict[str, Any] = {
    "status": 200,
    "headers": {},
    "body": "",
    "repeat": 1,
    "trickle": "",
    "trickle_s": 0.05,
    "hang": False,
}
_DEFAULTS: dict[str, Any] = {
    "latency_s": 0.0,  # delay before any /v1 response
    "latency_jitter_s": 0.0,  # plus uniform(0, jitter)
    "outcome_latency_s": {},  # per-outcome override of latency_s, e.g. {"ok": 0.5}
    "chunk_delay_s": 0.0,  # pause between streamed chunks (time-to-first-token experiments)
    "retry_after": None,  # seconds, sent with 429 and 503
    "retry_after_http_date": False,  # send Retry-After as an HTTP-date instead
    "hang_s": 30.0,
    "cost_per_token": None,  # adds usage.cost = completion_tokens * cost_per_token, as OpenRouter does
    "stream_usage": True,  # honour stream_options.include_usage (llama.cpp's server does not: set False)
    "models": ["fault-model"],
    "raw": {},  # the response of the ``raw`` outcome (keys of _RAW)
    "queue": [],
    "mix": {},
    "seed": None,
}
_DIRECTIVE = re.compile(r"\[\[fault:(\w+)(?:\*(\d+))?\]\]")
_WORDS = re.compile(r"\s*\S+")
_LOG_LIMIT = 100_000
_DONE = b"data: [DONE]\n\n"
_ERROR_IN_200 = {"error": {"message": "upstream provider error", "code": 502}}


#: the request fields a log entry keeps as ``sampling`` (what a client sent besides model and messages)
_SAMPLING = ("temperature", "max_tokens", "seed", "top_p", "stop")


def _check_settings(settings: dict[str, Any], outcomes: frozenset[str] = OUTCOMES) -> None:
    if unknown := set(settings) - set(_DEFAULTS):
        raise TypeError(f"unknown fault-server settings: {sorted(unknown)}")
    named = [*settings.get("queue", ()), *settings.get("mix", {}), *settings.get("outcome_latency_s", {})]
    if bad := [o for o in named if o not in outcomes]:
        raise ValueError(f"unknown outcomes {bad}; known: {sorted(outcomes)}")
    if unknown := set(settings.get("raw", {})) - set(_RAW):
        raise TypeError(f"unknown raw response keys: {sorted(unknown)}; known: {sorted(_RAW)}")
    if sum(settings.get("mix", {}).values()) > 1.0 + 1e-9:
        raise ValueError("mix probabilities sum to more than 1")


def _text(content: Any) -> str:
    """Message content as text; OpenAI also allows a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:  # a scripted status HTTP does not define
        return "Unknown"


def _count(log: list[dict[str, Any]], outcome: str | None, since: float | None) -> int:
    return sum(1 for e in log if (outcome is None or e["outcome"] == outcome) and (since is None or e["t"] >= since))


class FaultServer:
    """In-process server on a daemon thread with its own event loop; ``configure`` is thread-safe.

    Settings passed to the constructor become this server's defaults: ``reset()`` returns to them.
    Servers of other wire formats (`opencode_lab.testing.anthropic_server`, ``gemini_server``)
    subclass it: they declare their ``outcomes`` and serve their routes in `_route`.
    """

    outcomes: frozenset[str] = OUTCOMES

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
        _check_settings(settings, self.outcomes)
        self.host, self._port = host, port
        self._base = {**_DEFAULTS, **settings}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.reset()

    # -- control ---------------------------------------------------------------------------------
    def configure(self, **settings: Any) -> None:
        """Merge settings; ``queue`` and ``mix`` replace the old ones, ``mix``/``seed`` reseed the draw."""
        _check_settings(settings, self.outcomes)
        with self._lock:
            # copy-on-write: the loop thread reads self._settings without taking the lock
            self._settings = {**self._settings, **settings}
            if "queue" in settings:
                self._queue = deque(settings["queue"])
            if "mix" in settings or "seed" in settings:
                self._rng = random.Random(self._settings["seed"])

    def reset(self) -> None:
        """Back to the constructor's settings; clears the log, queue and directive counters."""
        with self._lock:
            self._settings = dict(self._base)
            self._queue: deque[str] = deque(self._base["queue"])
            self._rng = random.Random(self._base["seed"])
            self._hits: Counter[str] = Counter()
            self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)

    @property
    def log(self) -> list[dict[str, Any]]:
        """A copy of the request log (never holds header values beyond ``X-Request-Id``)."""
        with self._lock:
            return [dict(e) for e in self._log]

    def count(self, outcome: str | None = None, since: float | None = None) -> int:
        """Logged requests, optionally only one outcome and only those received at ``time.monotonic() >= since``."""
        return _count(self.log, outcome, since)

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}/v1"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FaultServer:
        """Listen on a daemon thread; returns once the socket is bound (so ``port`` is real)."""
        if self._thread is not None:
            return self
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fault-server", daemon=True)
        self._thread.start()
        listen = asyncio.start_server(self._handle, self.host, self._port, backlog=1024)
        try:
            self._server = asyncio.run_coroutine_threadsafe(listen, loop).result(timeout=10)
        except BaseException:  # e.g. port in use: leave nothing running
            self._halt()
            raise
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (hanging ones included), then end the thread."""
        if self._thread is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._halt()

    def _halt(self) -> None:
        assert self._thread is not None and self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = self._loop = self._server = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let transports run connection_lost before the loop closes

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def spawn(**settings: Any) -> SpawnedFaultServer:
        """The same server in a subprocess, for benchmarks where the client must own the CPU."""
        return SpawnedFaultServer(**settings)

    # -- HTTP/1.1 ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # client went away or spoke garbage: drop the connection
        except asyncio.CancelledError:
            pass  # stop(): end quietly (3.11's stream callback calls task.exception() on cancelled tasks)
        finally:
            self._conns.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False closes the connection."""
        head = await reader.readuntil(b"\r\n\r\n")
        t, wall = time.monotonic(), time.time()
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:  # chunked request bodies: not needed by any OpenAI client
            self._send(writer, None, 411, {"error": {"message": "send Content-Length"}}, keep=False)
            return False
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        path = target.split("?", 1)[0]
        if path.startswith("/_admin/"):
            status, payload = self._admin(method, path, body)
            self._send(writer, None, status, payload, keep)
        else:
            entry = {
                "t": t,
                "wall": wall,
                "path": path,
                "model": None,
                "prompt": None,
                "sampling": None,
                "stream": False,
                "outcome": None,
                "status": None,
                "request_id": headers.get("x-request-id"),
                "auth": "authorization" in headers,
            }  # presence only: the key itself is never stored
            with self._lock:
                self._log.append(entry)
            keep = await self._route(method, target, headers, body, reader, writer, entry, keep)
        await writer.drain()
        return keep

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
        """Serve one logged API request (*headers* have lower-case names); returns whether to keep the connection."""
        path = entry["path"]
        if method == "POST" and path == "/v1/chat/completions":
            keep = await self._chat(reader, writer, entry, body, keep)
        elif method == "GET" and path == "/v1/models":
            entry["outcome"] = "ok"
            await self._delay("ok")
            models = [
                {"object": "model", "owned_by": "fault-server", **(m if isinstance(m, dict) else {"id": m})}
                for m in self._settings["models"]
            ]
            self._send(writer, entry, 200, {"object": "list", "data": models}, keep)
        else:
            entry["outcome"] = "not_found"
            self._send(writer, entry, 404, {"error": {"message": f"no route {method} {path}", "code": 404}}, keep)
        return keep

    def _send(
        self,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any] | None,
        status: int,
        payload: Any,
        keep: bool,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> None:
        """Write status line, headers and (unless chunked) the body; logs the status before the bytes leave."""
        if entry is not None:
            entry["status"] = status
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Content-Type: {content_type}",
            "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}",
            "Connection: keep-alive" if keep else "Connection: close",
        ]
        if entry is not None and entry["request_id"]:
            lines.append(f"X-Request-Id: {entry['request_id']}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (b"" if chunked else body))

    def _admin(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == "/_admin/log":
            return 200, self.log
        if method == "POST" and path == "/_admin/reset":
            self.reset()
            return 200, {"ok": True}
        if method == "POST" and path == "/_admin/script":
            try:
                settings = json.loads(body or b"{}")
                if not isinstance(settings, dict):
                    raise TypeError("script body must be a JSON object")
                self.configure(**settings)
            except (ValueError, TypeError) as exc:
                return 400, {"error": {"message": str(exc), "code": 400}}
            return 200, {"ok": True}
        return 404, {"error": {"message": f"no admin route {method} {path}", "code": 404}}

    # -- chat completions ------------------------------------------------------------------------
    def _choose(self, prompt: str) -> str:
        directive = _DIRECTIVE.search(prompt)
        with self._lock:
            if directive:
                outcome, limit = directive.group(1), directive.group(2)
                if outcome not in self.outcomes:
                    raise ValueError(f"unknown fault directive {outcome!r}")
                if limit is None:
                    return outcome
                self._hits[prompt] += 1
                return outcome if self._hits[prompt] <= int(limit) else "ok"
            if self._queue:
                return self._queue.popleft()
            draw = self._rng.random() if self._settings["mix"] else 1.0
            for outcome, p in self._settings["mix"].items():
                if draw < p:
                    return outcome
                draw -= p
            return "ok"

    async def _delay(self, outcome: str) -> None:
        s = self._settings
        delay = s["outcome_latency_s"].get(outcome, s["latency_s"])
        if s["latency_jitter_s"]:
            delay += random.uniform(0, s["latency_jitter_s"])
        if delay > 0:
            await asyncio.sleep(delay)

    async def _chat(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, entry: dict[str, Any], body: bytes, keep: bool
    ) -> bool:
        try:
            req = json.loads(body)
            users = [m for m in req.get("messages") or [] if m.get("role") == "user"]
            prompt = _text(users[-1].get("content")) if users else ""
            sampling = {k: req[k] for k in _SAMPLING if k in req}
            entry.update(model=req.get("model"), prompt=prompt, sampling=sampling, stream=bool(req.get("stream")))
            entry.update(tools=[t["function"]["name"] for t in req.get("tools") or []], images=_images(req))
            outcome = entry["outcome"] = self._choose(prompt)
        except (ValueError, TypeError, AttributeError) as exc:
            entry["outcome"] = "invalid_request"
            self._send(writer, entry, 400, {"error": {"message": f"invalid request: {exc}", "code": 400}}, keep)
            return keep
        await self._delay(outcome)
        if outcome in _ERRORS:
            self._send_error(writer, entry, outcome, keep)
        elif outcome == "raw":
            return await self._raw(reader, writer, entry, keep)
        elif outcome == "hang":
            with contextlib.suppress(TimeoutError):  # ends early when the client gives up and closes
                await asyncio.wait_for(reader.read(1), self._settings["hang_s"])
            return False
        elif outcome == "reset" or (outcome == "cut_stream" and not entry["stream"]):
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):  # linger 0: the kernel sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        elif entry["stream"]:
            return await self._stream(writer, entry, outcome, req, keep)
        else:
            self._send(writer, entry, 200, self._plain(outcome, req, prompt), keep)
        return keep

    async def _raw(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, entry: dict[str, Any], keep: bool
    ) -> bool:
        """The scripted ``raw`` response (see the module docstring); a declared length closes afterwards."""
        raw = {**_RAW, **self._settings["raw"]}
        headers = {str(k): str(v) for k, v in raw["headers"].items()}
        declared = any(k.lower() == "content-length" for k in headers)
        entry["status"] = raw["status"]
        head = [f"HTTP/1.1 {raw['status']} {_phrase(raw['status'])}"]
        head += [] if declared else ["Transfer-Encoding: chunked"]
        head += ["Connection: keep-alive" if keep else "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n")

        def frame(piece: bytes) -> bytes:
            return piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece)

        for piece in filter(None, [raw["body"].encode()] * raw["repeat"]):  # an empty chunk would end the body
            writer.write(frame(piece))
            await writer.drain()
        if not (raw["trickle"] or raw["hang"]):
            if not declared:
                writer.write(b"0\r\n\r\n")
            return keep and not declared
        end = time.monotonic() + self._settings["hang_s"]
        while (left := end - time.monotonic()) > 0:
            if raw["trickle"]:
                writer.write(frame(raw["trickle"].encode()))
                await writer.drain()
            try:  # a read returns at once when the client gives up and closes
                await asyncio.wait_for(reader.read(1), min(left, raw["trickle_s"]) if raw["trickle"] else left)
                break
            except TimeoutError:
                pass
        return False

    def _send_error(self, writer: asyncio.StreamWriter, entry: dict[str, Any], outcome: str, keep: bool) -> None:
        status, message, code = _ERRORS[outcome]
        s, headers = self._settings, {}
        if s["retry_after"] is not None and status in (429, 503):
            when = s["retry_after"]
            headers["Retry-After"] = (
                email.utils.formatdate(time.time() + when, usegmt=True) if s["retry_after_http_date"] else f"{when:g}"
            )
            headers["retry-after-ms"] = str(round(when * 1000))  # OpenAI's finer-grained twin
        self._send(writer, entry, status, {"error": {"message": message, "code": code}}, keep, headers=headers)

    def _answer(self, req: dict[str, Any], prompt: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """The shared parts of an answer: (id/created/model, text, usage with word counts as tokens)."""
        last = (req.get("messages") or [{}])[-1]
        text = scripted.echo(_text(last.get("content")) if last.get("role") == "tool" else prompt)
        if (req.get("temperature") or 0) > 0 and req.get("seed") is None:
            text += f" #{os.urandom(3).hex()}"  # sampling without a seed: repeated samples must differ
        p, c = sum(len(_text(m.get("content")).split()) for m in req.get("messages") or []), len(text.split())
        usage: dict[str, Any] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if self._settings["cost_per_token"] is not None:
            usage["cost"] = c * self._settings["cost_per_token"]
        base = {"id": f"chatcmpl-fault-{next(self._ids)}", "created": int(time.time()), "model": req.get("model")}
        return base, text, usage

    def _plain(self, outcome: str, req: dict[str, Any], prompt: str) -> Any:
        base, text, usage = self._answer(req, prompt)
        answer = {
            **base,
            "object": "chat.completion",
            "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
        call = self._tool_call(req, prompt)
        if call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            answer["choices"] = [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
        if outcome == "malformed":
            return b'{"choices": ['
        if outcome == "error_in_200":
            return _ERROR_IN_200
        if outcome == "empty_choices":
            return {**answer, "choices": []}
        if outcome == "bad_utf8":
            return json.dumps(answer).encode().replace(b"echo:", b"echo\xff:", 1)
        return answer

    async def _stream(
        self, writer: asyncio.StreamWriter, entry: dict[str, Any], outcome: str, req: dict[str, Any], keep: bool
    ) -> bool:
        """SSE over chunked encoding, one event per chunk, flushed one by one."""
        base, text, usage = self._answer(req, entry["prompt"])
        chunk = {**base, "object": "chat.completion.chunk"}

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        if outcome == "malformed":
            events = [b'data: {"choices": [\n\n', _DONE]
        elif outcome == "error_in_200":  # OpenRouter reports mid-stream failures as an error event
            events = [_sse({**chunk, **_ERROR_IN_200}), _DONE]
        elif outcome == "empty_choices":
            events = [_sse({**chunk, "choices": []}), _DONE]
        elif call := self._tool_call(req, entry["prompt"]):  # arguments in two pieces, as OpenAI streams them
            head = {"index": 0, **call, "function": {"name": call["function"]["name"], "arguments": ""}}
            args = call["function"]["arguments"]
            halves = (args[: len(args) // 2], args[len(args) // 2 :])
            events = [event({"role": "assistant", "content": None, "tool_calls": [head]})]
            events += [event({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in halves]
            events += [event({}, "tool_calls"), _DONE]
        else:
            words = _WORDS.findall(text)
            events = [event({"role": "assistant", "content": words[0]}), *(event({"content": w}) for w in words[1:])]
            events.append(event({}, "stop"))
            if self._settings["stream_usage"] and (req.get("stream_options") or {}).get("include_usage"):
                events.append(_sse({**chunk, "choices": [], "usage": usage}))
            events.append(_DONE)
            if outcome == "bad_utf8":
                events.insert(1, event({"content": "<ff>"}).replace(b"<ff>", b"\xff"))
        self._send(writer, entry, 200, b"", keep, "text/event-stream", {"Cache-Control": "no-cache"}, chunked=True)
        for i, data in enumerate(events):
            if outcome == "cut_stream" and i == 2:
                await writer.drain()
                return False  # closing now leaves the chunked body unterminated and [DONE] unsent
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()
            if self._settings["chunk_delay_s"]:
                await asyncio.sleep(self._settings["chunk_delay_s"])
        writer.write(b"0\r\n\r\n")
        return keep


    def _tool_call(self, req: dict[str, Any], prompt: str) -> dict[str, Any] | None:
        """The ``tool_calls`` entry the shared script (`scripted`) makes for *req*, or None for a text answer."""
        messages = req.get("messages") or []
        if not messages or messages[-1].get("role") == "tool":
            return None
        offered = [(t["function"]["name"], t["function"].get("parameters") or {}) for t in req.get("tools") or []]
        call = scripted.tool_call(prompt, offered)
        if call is None:
            return None
        function = {"name": call[0], "arguments": call[1]}
        return {"id": scripted.call_id(next(self._ids)), "type": "function", "function": function}


def _images(req: dict[str, Any]) -> list[str]:
    """The content hash of every ``image_url`` data URL in *req* (http URLs as they are)."""
    out = []
    for message in req.get("messages") or []:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            url = (part.get("image_url") or {}).get("url", "") if part.get("type") == "image_url" else ""
            if url:
                out.append(scripted.image_digest(url.partition(",")[2]) if url.startswith("data:") else url)
    return out


class SpawnedFaultServer:
    """A ``FaultServer`` in a child process, driven through the ``/_admin`` endpoints."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 20.0, **settings: Any
    ) -> None:
        _check_settings(settings)
        env = dict(os.environ)  # make the package importable even when it is not installed
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")])
        )
        cmd = [
            sys.executable,
            "-m",
            "opencode_lab.testing.fault_server",
            "--host",
            host,
            "--port",
            str(port),
            "--settings",
            json.dumps(settings),
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], startup_timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"fault server did not start (first line: {line!r})")
        self.base_url = line.split()[1]
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])
        self._root = self.base_url.removesuffix("/v1")

    def _admin(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload if payload is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(
            self._root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with self._opener.open(request, timeout=10) as response:
            return json.loads(response.read())

    def configure(self, **settings: Any) -> None:
        _check_settings(settings)
        self._admin("POST", "/_admin/script", settings)

    def reset(self) -> None:
        self._admin("POST", "/_admin/reset")

    @property
    def log(self) -> list[dict[str, Any]]:
        return self._admin("GET", "/_admin/log")

    def count(self, outcome: str | None = None, since: float | None = None) -> int:
        return _count(self.log, outcome, since)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> SpawnedFaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """CLI: print ``READY <base_url>`` once listening, serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m opencode_lab.testing.fault_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, help="latency_s before every response")
    parser.add_argument("--mix", type=json.loads, help="outcome probabilities, e.g. '{\"server_error\": 0.1}'")
    parser.add_argument("--seed", type=int, help="seed for the mix draw")
    parser.add_argument("--settings", type=json.loads, default={}, help="any configure() settings as JSON")
    args = parser.parse_args(argv)
    settings = dict(args.settings)
    for key, value in (("latency_s", args.latency), ("mix", args.mix), ("seed", args.seed)):
        if value is not None:
            settings[key] = value
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before start(): the server thread inherits the mask
    with FaultServer(args.host, args.port, **settings) as server:
        print(f"READY {server.base_url}", flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
