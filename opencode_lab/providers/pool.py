"""The connection pool under every provider's client: keep-alive connections reused last in, first out.

httpx's default transport pools connections in httpcore's ``AsyncConnectionPool``, which looks at every
connection (and asks each idle one's socket whether the server closed it) several times per request, and at
every queued request besides: on a fast server that is most of a request's CPU time, and it grows with the
number of connections, which itself grows whenever the client is slow to read (issue 22 measured 1.2-1.3 ms
per request at 14 connections and 3 ms at 50).  `KeepAlivePool` is an httpx transport (``transport=``, the
extension point httpx offers) over httpcore's own HTTP/1.1 connections that costs the same whatever its size:

- per origin, a stack of idle connections: a request takes the most recently used one (the one most likely
  still open and warm), checks that one only, and gives it back when its response is closed;
- at most ``max_connections`` open at once (a request waits, within its pool timeout, for one to come back),
  at most ``max_keepalive_connections`` kept idle, and an idle one older than ``keepalive_expiry`` is closed;
- a connection that is not cleanly idle when its response closes (cancelled mid-read, a broken exchange, a
  server that said ``Connection: close``) is closed, never reused.

Errors are httpx's (httpcore's are translated here, as httpx's own transport does), so the provider edge
(`opencode_lab.providers.http`) maps them once, whatever the transport.  Proxies from the environment are
still the client's own mounts; HTTP/2 is not offered (nor was it before).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator

import httpcore
import httpx

_Origin = tuple[bytes, bytes, int]

#: httpcore's errors as httpx's, most specific first (an httpcore error class is looked up along its MRO)
_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


@contextlib.contextmanager
def _as_httpx() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = next((_ERRORS[kind] for kind in type(exc).__mro__ if kind in _ERRORS), None)
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class KeepAlivePool(httpx.AsyncBaseTransport):
    """HTTP/1.1 connections to any origin, within *limits*; belongs to the event loop that first uses it."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._max_open = math.inf if limits.max_connections is None else limits.max_connections
        self._max_idle = math.inf if limits.max_keepalive_connections is None else limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._ssl_context: ssl.SSLContext | None = None  # made on first use: it reads the certificate store
        self._idle: dict[_Origin, deque[tuple[httpcore.AsyncHTTPConnection, float]]] = {}
        self._idle_count = 0
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections open now, in use or idle."""
        return self._open

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        connection = await self._take(origin, request.extensions.get("timeout", {}).get("pool"))
        core = httpcore.Request(
            request.method,
            httpcore.URL(scheme=origin[0], host=origin[1], port=origin[2], target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            with _as_httpx():
                response = await connection.handle_async_request(core)
        except BaseException:
            await self._give_back(origin, connection)
            raise
        assert isinstance(response.stream, AsyncIterable)  # an async connection's body
        body = _Body(response.stream, lambda: self._give_back(origin, connection))
        return httpx.Response(response.status, headers=response.headers, stream=body, extensions=response.extensions)

    async def aclose(self) -> None:
        """Close the idle connections now and every other one when its response closes."""
        self._closed = True
        idle = [connection for stack in self._idle.values() for connection, _ in stack]
        self._idle.clear()
        self._idle_count = 0
        for connection in idle:
            await self._close(connection)

    async def _take(self, origin: _Origin, timeout: float | None) -> httpcore.AsyncHTTPConnection:
        """The newest idle connection to *origin* the server has not closed, else a new one, else wait."""
        while True:
            stack = self._idle.get(origin)
            while stack:
                connection, _ = stack.pop()
                self._idle_count -= 1
                if not connection.has_expired():
                    return connection
                await self._close(connection)
            if self._open < self._max_open:
                self._open += 1
                return httpcore.AsyncHTTPConnection(
                    httpcore.Origin(*origin),
                    ssl_context=self._ssl(origin),
                    keepalive_expiry=self._expiry,
                )
            if self._idle_count:  # the limit is reached with idle connections to other origins: close the oldest
                other = max(self._idle.values(), key=len)
                await self._close(other.popleft()[0])
                self._idle_count -= 1
                continue
            await self._wait(timeout)

    async def _wait(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken as it gave up: the turn goes to the next waiter
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout(f"no connection came free within {timeout}s") from None
            raise

    async def _give_back(self, origin: _Origin, connection: httpcore.AsyncHTTPConnection) -> None:
        """Keep *connection* for the next request if it is cleanly idle, else close it; either way one waiter
        may go on, and idle connections past ``keepalive_expiry`` are closed."""
        now = time.monotonic()
        if connection.is_available() and not self._closed and self._idle_count < self._max_idle:
            stack = self._idle.setdefault(origin, deque())
            stack.append((connection, now))
            self._idle_count += 1
            while self._expiry is not None and stack and now - stack[0][1] > self._expiry:
                self._idle_count -= 1
                await self._close(stack.popleft()[0])
        else:
            await self._close(connection)
        self._wake()

    def _wake(self) -> None:
        """Let the longest waiting request look again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _close(self, connection: httpcore.AsyncHTTPConnection) -> None:
        self._open -= 1
        with contextlib.suppress(Exception):
            await connection.aclose()

    def _ssl(self, origin: _Origin) -> ssl.SSLContext | None:
        if origin[0] != b"https":
            return None
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()  # as httpx's own transport makes it
        return self._ssl_context


class _Body(httpx.AsyncByteStream):
    """A response body that hands its connection back to the pool when it is closed."""

    def __init__(self, stream: AsyncIterable[bytes], give_back: Callable[[], Awaitable[None]]) -> None:
        self._stream = stream
        self._give_back: Callable[[], Awaitable[None]] | None = give_back

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        give_back, self._give_back = self._give_back, None
        if give_back is None:
            return
        try:
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                with _as_httpx():
                    await aclose()
        finally:
            await give_back()
