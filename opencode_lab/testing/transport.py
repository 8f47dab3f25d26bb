"""The loopback HTTP/1.1 server under every test server: sockets, parsing, responses, streams, lifecycle.

It knows nothing of vendors or faults. A subclass answers each parsed `Request` through its
`Exchange`, which can send a whole `Response`, a chunked `Stream` of server-sent events (cut
short or stalled on request), scripted bytes (`RawResponse`), a stall or a TCP reset: the ways a real
server answers, and the ways it misbehaves at the transport level.

Stdlib only (raw asyncio streams on a daemon thread with its own event loop), so it ships inside
the package and a notebook can start one. Keep-alive, ``Connection: close`` and HTTP/1.0 are
honoured; chunked *request* bodies are refused (no client under test sends them).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import socket
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["Exchange", "LoopbackServer", "RawResponse", "Request", "Response", "Stream"]


@dataclass(frozen=True)
class Request:
    """One parsed request: header names are lower-case; *received* is ``time.monotonic()`` at its arrival."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    received: float
    wall: float

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


@dataclass(frozen=True)
class Response:
    """A whole response; a *body* that is not bytes is sent as JSON."""

    status: int
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class Stream:
    """A 200 with streamed *events*, one per chunk; a stream cut mid-answer stops before event *cut_at*.

    The last *end* events are the format's end marker (``[DONE]``, ``message_stop``; Gemini has none): a
    stream stopped at `finished` has given its whole answer, finish reason included, but never ended.
    """

    events: Sequence[bytes]
    cut_at: int
    headers: Mapping[str, str] = field(default_factory=dict)
    end: int = 0
    content_type: str = "text/event-stream"
    """Server-sent events, or another framing (AWS's binary event stream)."""

    @property
    def finished(self) -> int:
        """The index of the first end-marker event (the number of events before it)."""
        return len(self.events) - self.end


@dataclass(frozen=True)
class RawResponse:
    """Bytes exactly as scripted, for misbehaviour nothing else covers.

    The *body* is sent *repeat* times, in chunked encoding unless *headers* declare a
    ``Content-Length``; then *trickle* is sent again every *trickle_s*, or with *hang* nothing
    more, and the body never ends: the connection stays open until the stall ends or the client leaves.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    repeat: int = 1
    trickle: str = ""
    trickle_s: float = 0.05
    hang: bool = False


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:  # a scripted status HTTP does not define
        return "Unknown"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Exchange:
    """The answer channel of one request; ``keep`` says whether the connection serves another afterwards."""

    def __init__(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep: bool
    ) -> None:
        self.request, self.keep = request, keep
        self._reader, self._writer = reader, writer

    def send(self, response: Response) -> None:
        body = response.body if isinstance(response.body, bytes) else json.dumps(response.body).encode()
        self._head(response.status, response.content_type, response.headers, f"Content-Length: {len(body)}")
        self._writer.write(body)

    async def stream(
        self, stream: Stream, *, stop: int | None = None, stall_s: float = 0.0, delay_s: float = 0.0
    ) -> None:
        """Send the events flushed one by one.  With *stop*, only those before event *stop*, and the body is
        left unterminated: the connection closes at once, or after saying nothing for *stall_s*."""
        headers = {"Cache-Control": "no-cache", **stream.headers}
        self._head(200, stream.content_type, headers, "Transfer-Encoding: chunked")
        for data in stream.events[:stop]:
            self._writer.write(_chunk(data))
            await self._writer.drain()
            if delay_s:
                await asyncio.sleep(delay_s)
        if stop is None:
            self._writer.write(b"0\r\n\r\n")
        elif stall_s:
            await self.stall(stall_s)
        else:
            self.keep = False

    async def stall(self, seconds: float) -> None:
        """Say nothing for *seconds*, or until the client gives up and closes; then close."""
        self.keep = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader.read(1), seconds)

    def reset(self) -> None:
        """Drop the connection with a TCP RST (linger 0), as a crashed server would."""
        self.keep = False
        sock = self._writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()

    async def raw(self, raw: RawResponse, stall_s: float) -> None:
        """Send *raw* byte for byte; a declared length closes afterwards, a trickle or hang lasts *stall_s*."""
        headers = {str(k): str(v) for k, v in raw.headers.items()}
        declared = any(k.lower() == "content-length" for k in headers)
        lines = [f"HTTP/1.1 {raw.status} {_phrase(raw.status)}"]
        lines += [] if declared else ["Transfer-Encoding: chunked"]
        lines += [self._connection(), *(f"{k}: {v}" for k, v in headers.items())]
        self._writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n")

        def frame(piece: bytes) -> bytes:
            return piece if declared else _chunk(piece)

        for piece in filter(None, [raw.body.encode()] * raw.repeat):  # an empty chunk would end the body
            self._writer.write(frame(piece))
            await self._writer.drain()
        if not (raw.trickle or raw.hang):
            if not declared:
                self._writer.write(b"0\r\n\r\n")
            self.keep = self.keep and not declared
            return
        self.keep = False
        end = time.monotonic() + stall_s
        while (left := end - time.monotonic()) > 0:
            if raw.trickle:
                self._writer.write(frame(raw.trickle.encode()))
                await self._writer.drain()
            try:  # a read returns at once when the client gives up and closes
                await asyncio.wait_for(self._reader.read(1), min(left, raw.trickle_s) if raw.trickle else left)
                return
            except TimeoutError:
                pass

    def _connection(self) -> str:
        return "Connection: keep-alive" if self.keep else "Connection: close"

    def _head(self, status: int, content_type: str, headers: Mapping[str, str], framing: str) -> None:
        lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"Content-Type: {content_type}", framing, self._connection()]
        if request_id := self.request.headers.get("x-request-id"):
            lines.append(f"X-Request-Id: {request_id}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n")


class LoopbackServer(ABC):
    """An HTTP/1.1 server with its own event loop on a daemon thread; subclasses answer in `serve`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.connections = 0
        """Connections accepted since the start: how many a client's pool opened (benchmarks report it)."""

    @abstractmethod
    async def serve(self, request: Request, exchange: Exchange) -> None:
        """Answer *request* (runs on the server's loop; may await, e.g. to stall)."""

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        """Listen on a daemon thread; returns once the socket is bound (so ``port`` is real)."""
        if self._thread is not None:
            return self
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name=type(self).__name__, daemon=True)
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
        """Close the listener and every open connection (stalled ones included), then end the thread."""
        if self._thread is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._halt()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    # -- HTTP/1.1 --------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections += 1
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
        received, wall = time.monotonic(), time.time()
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        chunked = "transfer-encoding" in headers  # chunked request bodies: no client under test sends them
        body = b"" if chunked else await reader.readexactly(int(headers.get("content-length") or 0))
        request = Request(method, target, headers, body, received, wall)
        exchange = Exchange(request, reader, writer, keep and not chunked)
        if chunked:
            exchange.send(Response(411, {"error": {"message": "send Content-Length"}}))
        else:
            await self.serve(request, exchange)
        await writer.drain()
        return exchange.keep
