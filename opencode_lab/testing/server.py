"""A loopback server that speaks one vendor's wire format and misbehaves on request.

`VendorServer` joins the three parts: the transport (`LoopbackServer`), the faults (`Faults`) and a
wire format (a `Wire`, one module per vendor). Every generation request takes the same steps:

1. the wire reads it; a request the real API would refuse gets that API's 400 (logged ``invalid_request``);
2. the outcome: a request without a key where the vendor needs one meets the wire's ``keyless``
   outcome, a key other than the ``api_key`` setting meets ``unauthorized``, any other request the
   fault the `Faults` choose;
3. after the configured latency, the outcome plays: a stall (``hang``), a TCP reset (``reset``, or
   ``cut_stream`` on a plain request), scripted bytes (``raw``), the wire's error status, or the
   answer, whole or streamed, spoiled as the outcome says (``malformed``, ``cut_stream``, ...).
   A stream meeting ``cut_before_end`` or ``hang_before_end`` gives its whole answer, finish reason
   and usage included, but not its end marker (``[DONE]``, ``message_stop``; Gemini has none), and then
   drops the connection or stays open for ``hang_s``; on a plain request they are ``reset`` and ``hang``.

The answer's text is ``reply(request body)``: by default the shared script (``"echo: <prompt>"``, see
`opencode_lab.testing.scripted`); a test that needs other words gives its own function, as
``VendorServer(reply=...)`` or by setting ``server.reply``. Tool calls still follow the shared script.
A reply function that raises is answered with a 500 naming the exception (logged ``reply_failed``).

The model list always answers. ``POST /_admin/script`` (`configure` keywords as JSON),
``GET /_admin/log``, ``GET /_admin/connections`` (accepted so far) and ``POST /_admin/reset`` drive a
server in another process (`spawn`).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from opencode_lab.testing.faults import Faults, UnknownOutcome, count
from opencode_lab.testing.scripted import Reply
from opencode_lab.testing.spawned import SpawnedFaultServer
from opencode_lab.testing.transport import Exchange, LoopbackServer, Request, Response
from opencode_lab.testing.wire import Call, Wire

__all__ = ["VendorServer"]

#: outcomes that drop the connection mid-answer: on a plain request, a reset
_CUTS = frozenset({"cut_stream", "cut_before_end"})


class VendorServer(LoopbackServer):
    """In-process server on a daemon thread; ``configure``, ``reset`` and ``reply`` are safe from any thread.

    Settings (`opencode_lab.testing.faults.SETTINGS`) passed to the constructor become this server's
    defaults, and *reply* its default reply: ``reset()`` returns to both.
    """

    wire_type: ClassVar[type[Wire]]

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, reply: Reply | None = None, **settings: Any) -> None:
        super().__init__(host, port)
        self.wire = self.wire_type()
        self._faults = Faults(self.wire_type.outcomes, settings)
        self._default_reply: Reply = reply or self.wire.echo
        self.reply: Reply = self._default_reply

    # -- control ---------------------------------------------------------------------------------
    @property
    def outcomes(self) -> frozenset[str]:
        return self.wire_type.outcomes

    @property
    def base_url(self) -> str:
        """The URL the vendor's SDK (and our provider) takes as its base."""
        return self.root_url + self.wire.prefix

    def configure(self, **settings: Any) -> None:
        """Merge settings; ``queue`` and ``mix`` replace the old ones, ``mix``/``seed`` reseed the draw."""
        self._faults.configure(**settings)

    def reset(self) -> None:
        """Back to the constructor's settings and reply; clears the log, requests, queue and directive counters."""
        self._faults.reset()
        self.reply = self._default_reply

    @property
    def log(self) -> list[dict[str, Any]]:
        """One entry per request: what was asked and what happened (``auth`` says a key came, never which)."""
        return self._faults.log

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The parsed body of every generation request, in order."""
        return self._faults.requests

    def count(self, outcome: str | None = None, since: float | None = None) -> int:
        """Logged requests, optionally only one outcome and only those received at ``time.monotonic() >= since``."""
        return count(self.log, outcome, since)

    @classmethod
    def spawn(cls, **settings: Any) -> SpawnedFaultServer:
        """The same server in a subprocess, for benchmarks where the client must own the CPU."""
        return SpawnedFaultServer(f"{cls.__module__}:{cls.__qualname__}", cls.wire_type.outcomes, **settings)

    # -- serving ---------------------------------------------------------------------------------
    async def serve(self, request: Request, exchange: Exchange) -> None:
        if request.path.startswith("/_admin/"):
            exchange.send(self._admin(request))
            return
        key = self.wire.credential(request)
        entry = self._faults.record(request, auth=key is not None)
        entry.update(self.wire.notes(request))
        route = self.wire.route(request)
        if route == "generate":
            await self._generate(exchange, entry, key)
        elif route == "models":
            entry["outcome"] = "ok"
            await self._faults.delay("ok")
            self._send(exchange, entry, self.wire.models(request, self._faults.settings["models"]))
        else:
            entry["outcome"] = "not_found"
            self._send(exchange, entry, self.wire.refusal(404, f"no route {request.method} {request.path}"))

    async def _generate(self, exchange: Exchange, entry: dict[str, Any], key: str | None) -> None:
        call = self.wire.read(exchange.request)
        if isinstance(call, Response):
            entry["outcome"] = "invalid_request"
            self._send(exchange, entry, call)
            return
        entry.update(call.logged())
        self._faults.keep(call.body)
        try:
            outcome = entry["outcome"] = self._outcome(key, call.prompt)
        except UnknownOutcome as exc:
            entry["outcome"] = "invalid_request"
            self._send(exchange, entry, self.wire.refusal(400, f"invalid request: {exc}"))
            return
        await self._faults.delay(outcome)
        await self._play(exchange, entry, call, outcome)

    def _outcome(self, key: str | None, prompt: str) -> str:
        expected = self._faults.settings["api_key"]
        if key is None and self.wire.keyless is not None:
            return self.wire.keyless
        if expected is not None and key != expected:
            return "unauthorized"
        return self._faults.choose(prompt)

    async def _play(self, exchange: Exchange, entry: dict[str, Any], call: Call, outcome: str) -> None:
        settings = self._faults.settings
        if outcome == "hang" or (outcome == "hang_before_end" and not call.stream):
            await exchange.stall(settings["hang_s"])
        elif outcome == "reset" or (outcome in _CUTS and not call.stream):
            exchange.reset()
        elif outcome == "raw":
            raw = self._faults.raw()
            entry["status"] = raw.status
            await exchange.raw(raw, settings["hang_s"])
        elif (failure := self.wire.failure(outcome, call.stream, self._faults.retry_after())) is not None:
            self._send(exchange, entry, failure)
        else:
            try:
                text = self.reply(call.body)
            except Exception as exc:
                entry["outcome"] = "reply_failed"
                self._send(exchange, entry, self.wire.refusal(500, f"the reply function raised {exc!r}"))
                return
            if call.stream:
                entry["status"] = 200
                stream = self.wire.stream(call, outcome, text, settings)
                stops = {
                    "cut_stream": stream.cut_at,
                    "cut_before_end": stream.finished,
                    "hang_before_end": stream.finished,
                }
                stop = stops.get(outcome)
                stall = settings["hang_s"] if outcome == "hang_before_end" else 0.0
                await exchange.stream(stream, stop=stop, stall_s=stall, delay_s=settings["chunk_delay_s"])
            else:
                self._send(exchange, entry, self.wire.answer(call, outcome, text, settings))

    @staticmethod
    def _send(exchange: Exchange, entry: dict[str, Any], response: Response) -> None:
        """Send *response*, its status logged before the bytes leave."""
        entry["status"] = response.status
        exchange.send(response)

    def _admin(self, request: Request) -> Response:
        """The remote control of `SpawnedFaultServer`; its errors are plain ``{"error": {"message", "code"}}``."""
        method, path = request.method, request.path
        if method == "GET" and path == "/_admin/log":
            return Response(200, self.log)
        if method == "GET" and path == "/_admin/connections":
            return Response(200, self.connections)
        if method == "POST" and path == "/_admin/reset":
            self.reset()
            return Response(200, {"ok": True})
        if method == "POST" and path == "/_admin/script":
            try:
                settings = json.loads(request.body or b"{}")
                if not isinstance(settings, dict):
                    raise TypeError("script body must be a JSON object")
                self.configure(**settings)
            except (ValueError, TypeError) as exc:
                return Response(400, {"error": {"message": str(exc), "code": 400}})
            return Response(200, {"ok": True})
        return Response(404, {"error": {"message": f"no admin route {method} {path}", "code": 404}})
