"""The HTTP edge every vendor's provider stands on: one pooled client, bounded exchanges, errors mapped once.

As in httpx, policy and transport are apart: `HTTPProvider` sends one request and returns one
completion (the router above holds retries and failover), and a subclass adds only its wire
format (paths, payload, a codec) and how its key travels.  The client's transport is
`KeepAlivePool` (`pool.py`), whose cost per request does not grow with its number of
connections, as that of httpx's default pool does.  Vendor failures are translated here
and only here (`HTTPProvider.edge`, `HTTPProvider.status_error`), always ``raise ... from`` the
original, so nothing above a provider ever sees an httpx exception or a body it cannot trust.
Every exchange is bounded twice: ``timeout_s`` per attempt (httpx's own read timeout restarts
with every byte, so a trickling server would outlast it) and ``max_body_bytes``, checked while
reading.  Answers pass through `redact`, so a key a server echoes is masked here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx

from ..core.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    StreamInterruptedError,
    error_for_status,
)
from ..core.secrets import Secret, get_logger, redact, register
from ..core.types import ChatRequest, Completion, StreamChunk
from . import sse
from .base import Provider
from .pool import KeepAlivePool
from .retry_after import parse_ratelimit_reset, parse_retry_after
from .stream import Fold, StreamText, cut
from .wire import Reported, WireError, embedded_error, error_message, loads

#: the largest response body read before it is refused (decoded bytes, so a gzip bomb is stopped too)
MAX_BODY_BYTES = 32 * 1024 * 1024
#: how long a stream whose answer has finished waits for its last events and the end of the body
FINISH_GRACE_S = 1.0
#: request bodies as httpx's ``json=`` encodes them (compact, UTF-8, NaN refused), by one encoder built once
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_JSON_CONTENT = {"Content-Type": "application/json"}
_KEPT_URLS = 256

# httpx's INFO line names each request's URL; httpcore's DEBUG trace shows response headers
for _logger in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
    get_logger(_logger)


class HTTPProvider(Provider):
    """Chat over one pooled ``httpx.AsyncClient``: `complete` and `stream` are written once, here.

    A subclass says where a chat goes (`chat_path`), what it sends (`payload`), how a whole answer
    and a stream of events read (`answer`, `fold`), and lists its models with `fetch`.  A vendor whose
    requests are signed rather than keyed (AWS SigV4, Google OAuth tokens) gives an `auth`; one that does
    not stream server-sent events gives its `stream_media` and `events`.
    """

    #: the media type of a streamed answer (anything else in a stream's 200 is refused)
    stream_media = "text/event-stream"

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: Secret | None = None,
        headers: Mapping[str, str | Secret] | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 100,
        max_body_bytes: int = MAX_BODY_BYTES,
        finish_grace_s: float = FINISH_GRACE_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """User-info in *base_url* (``https://user:pass@host/v1``) is sent as Basic auth, as httpx would;
        it is kept out of `base_url`, reprs and httpx's log lines."""
        self.name = name
        url, self._basic = _basic_auth(base_url)
        self.base_url = url.rstrip("/")
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._max_body_bytes = max_body_bytes
        self._finish_grace_s = finish_grace_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        # every connection may stay for its next request: closing a burst's extra ones as they came back
        # (httpx's default keeps 20) reopened hundreds of connections per 2,000 fast requests at concurrency
        # 50; idle ones close after keepalive_expiry (5 s), and in use, the pool's cost does not depend on
        # how many are open (see `pool.py`)
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    # -- what a subclass declares -----------------------------------------------------------------------

    def key_headers(self, key: Secret) -> dict[str, str]:
        """The headers that carry the API key (a Bearer token unless the vendor says otherwise)."""
        return {"Authorization": f"Bearer {key.reveal()}"}

    @abstractmethod
    def chat_path(self, model: str, *, stream: bool) -> str:
        """The path (below `base_url`) a chat with *model* is posted to."""

    @abstractmethod
    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body of one chat; `InvalidRequestError` for what the vendor cannot take."""

    @abstractmethod
    def answer(self, data: dict[str, Any], model: str, request: ChatRequest) -> Completion:
        """The completion in a whole (non-streamed) response body."""

    @abstractmethod
    def fold(self, model: str, request: ChatRequest) -> Fold:
        """A fresh fold for one streamed answer."""

    def auth(self) -> httpx.Auth | None:
        """What authenticates every request besides `key_headers` (httpx's auth flow: it sees the whole
        request, body included, so it can sign it); None for a vendor whose key alone does."""
        return None

    def events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
        """A streamed body's events, as the `fold` takes them: server-sent events' ``data:`` payloads."""
        return sse.data_lines(chunks)

    def seed(self, model: str, request: ChatRequest) -> int | None:
        """The seed a chat with *model* sent (`Completion.seed`): the caller's, when this vendor takes seeds.
        No seed is drawn for a request without one: the server samples with its own randomness, so its samples
        are independent already, and a seed on every request could be refused by a strict server without seeds."""
        return request.params.seed if self.capabilities.seeds else None

    # -- the exchanges ------------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        """Created on first use, inside the event loop that will use it."""
        if self._client is None:
            headers = {"Accept": "application/json"}
            headers |= {k: v.reveal() if isinstance(v, Secret) else v for k, v in self._headers.items()}
            if self._api_key:
                headers |= self.key_headers(self._api_key)
            if self._basic:
                headers["Authorization"] = f"Basic {self._basic.reveal()}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                auth=self.auth(),
                timeout=self._timeout,
                transport=self._transport or KeepAlivePool(self._limits),
            )
        return self._client

    def identity(self, model: str) -> str:
        """The server (`base_url` holds no user-info) and the model id: another server is another model."""
        return f"{self.base_url}|{model}"

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        body = self.payload(model, request, stream=False)
        data = await self.fetch("POST", self.chat_path(model, stream=False), model, body)
        with self.edge(model):
            completion = self.answer(data, model, request)
        text = redact(completion.text, urls=False)
        elapsed = time.perf_counter() - started
        return dataclasses.replace(completion, text=text, ttft_s=elapsed, seed=self.seed(model, request))

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Deltas from the stream's `events`; ``timeout_s`` bounds the wait for each piece of progress (text or
        tool input), so a body trickling bytes that say nothing times out, while a long answer that keeps
        coming does not.
        Once the answer has finished (a finish reason came), the rest of the body gets `FINISH_GRACE_S`, and
        a server that then hangs or drops the connection before its end marker has still given a complete
        answer.  Whatever breaks after text came, the error carries that text (``partial_text``)."""
        loop = asyncio.get_running_loop()
        fold = self.fold(model, request)
        text = StreamText()
        with self.edge(model, text.parts):
            body = BoundedBody(loop.time() + self._timeout_s, self._max_body_bytes)
            path = self.chat_path(model, stream=True)
            response = await self.send("POST", path, body, self.payload(model, request, stream=True))
            try:
                if response.status_code >= 300:
                    raise self.status_error(response.status_code, await body.read(response), response.headers, model)
                await self._expect_events(response, body, model)
                try:
                    async for data in self.events(body.chunks(response)):
                        if fold.done:  # read to the end of the body (within the grace), so the connection is reused
                            continue
                        raw, progressed = fold.feed(data)
                        if fold.finished:
                            body.deadline = min(body.deadline, loop.time() + self._finish_grace_s)
                        elif progressed:
                            body.deadline = loop.time() + self._timeout_s
                        delta = text.feed(raw)
                        if delta:
                            yield StreamChunk(delta)
                except (TimeoutError, httpx.TransportError):
                    if not fold.finished:  # after the finish, a stall or a dropped connection loses nothing
                        raise
                if not fold.finished:
                    raise cut(self.name, model, text.parts, fold.incomplete)
            finally:
                await response.aclose()
            tail = text.flush()  # the answer is whole: nothing held back can be the start of a key any more
            if tail:
                yield StreamChunk(tail)
            completion = dataclasses.replace(  # inside the edge: its usage may yet be refused
                fold.completion(text.text, text.ttft), seed=self.seed(model, request)
            )
        yield StreamChunk("", completion)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, method: str, path: str, body: BoundedBody, json: Any = None) -> httpx.Response:
        """Send a request and wait for the response headers, within *body*'s deadline; the body is not read."""
        request = self.client.build_request(method, path, json=json)
        async with asyncio.timeout_at(body.deadline):
            return await self.client.send(request, stream=True)

    async def fetch(self, method: str, path: str, model: str | None, json: Any = None) -> dict[str, Any]:
        """One whole non-streamed exchange (connect, headers, body) within ``timeout_s``: a JSON object.

        It is every chat's path, so it is kept lean: the URL is joined once per path, the body encoded by
        one prebuilt encoder, one deadline covers the whole exchange and the body is read under its cap
        without a timer per chunk.  A failure status, and an error object inside a 200, are raised as our
        errors."""
        content_type = _JSON_CONTENT if json is not None else None
        body = None if json is None else _encode_json(json).encode()
        with self.edge(model):
            request = self.client.build_request(method, self._url(path), content=body, headers=content_type)
            async with asyncio.timeout(self._timeout_s):
                response = await self.client.send(request, stream=True)
                try:
                    content = await read_capped(response, self._max_body_bytes)
                finally:
                    await response.aclose()
            if response.status_code >= 300:
                raise self.status_error(response.status_code, content, response.headers, model)
            data = loads(content, "response")
            reported = embedded_error(data)
            if reported is not None:
                raise reported
            return data

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of *path* below `base_url` (or *path* itself when it is absolute: a vendor's other
        endpoint), as the client would join it, parsed once per path (up to a few hundred: a paged model
        list's query strings are not worth keeping)."""
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}")
            if len(self._urls) < _KEPT_URLS:
                self._urls[path] = url
        return url

    # -- the edge: every vendor and transport failure becomes one of our errors, once ------------------

    @contextlib.contextmanager
    def edge(self, model: str | None, parts: list[str] | None = None) -> Iterator[None]:
        """Translate httpx's exceptions, our own time limit, broken bodies and reported errors into our
        errors; *parts* is the text a stream has delivered so far: a break after it is an interruption, and
        every error raised after it carries it as ``partial_text``.  The httpx exception stays the cause,
        with every key masked in the request it holds (`_scrubbed`)."""
        try:
            yield
        except (Reported, WireError, httpx.DecodingError, httpx.TransportError, httpx.StreamError, TimeoutError) as exc:
            error = self._mapped(exc, model, parts)
            if parts and error.partial_text is None:
                error.partial_text = "".join(parts)
            raise error from (None if isinstance(exc, Reported) else _scrubbed(exc))

    async def _expect_events(self, response: httpx.Response, body: BoundedBody, model: str) -> None:
        """Refuse a stream's 200 that says it is not an event stream (a JSON answer, an HTML page): a server
        or a URL that does not stream, not a connection that broke, so an error that is not retried.  A body
        that names no type is read as events."""
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media and media != self.stream_media:
            said = error_message(await body.read(response))
            raise ProviderError(
                f"a stream was asked for but the server answered {media}, not {self.stream_media}"
                + (f": {said}" if said else ""),
                provider=self.name,
                model=model,
            )

    def _mapped(self, exc: Exception, model: str | None, parts: list[str] | None) -> ProviderError:
        """The error of ours *exc* (one `edge` catches) means."""
        if isinstance(exc, Reported):
            return self._reported(exc, model, parts)
        if isinstance(exc, WireError):
            return MalformedResponseError(str(exc), provider=self.name, model=model)
        if isinstance(exc, httpx.DecodingError):  # e.g. "Content-Encoding: gzip" on a body that is not gzip
            return MalformedResponseError(
                f"response body could not be decoded ({exc})", provider=self.name, model=model
            )
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            why = f"timed out (timeout_s={self._timeout_s:g}s; {type(exc).__name__})"
            if parts:
                return cut(self.name, model, parts, f"stream stalled: {why}")
            return ProviderTimeout(why, provider=self.name, model=model)
        if parts:
            return cut(self.name, model, parts, f"connection lost mid-stream ({type(exc).__name__})")
        what = "connection refused" if isinstance(exc, httpx.ConnectError) else "connection failed"
        return ProviderConnectionError(
            f"{what} at {self.base_url}: {type(exc).__name__}: {exc}", provider=self.name, model=model
        )

    def status_error(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> ProviderError:
        """The error a failure status means, with the body's message and, for a 429, the wait it asks for."""
        message = error_message(content) or httpx.codes.get_reason_phrase(status) or "error"
        if 300 <= status < 400 and headers.get("location"):
            message = f"{message}: redirected to {headers['location']} (point the base URL there)"
        wait = None
        if status == 429:
            wait = parse_retry_after(headers.get("retry-after"))
            wait = wait if wait is not None else parse_ratelimit_reset(headers)
        return error_for_status(status, message, retry_after=wait, provider=self.name, model=model)

    def _reported(self, reported: Reported, model: str | None, parts: list[str] | None) -> ProviderError:
        """A reported error: the class it always means, else an interruption after text, else its status's."""
        message = str(reported)
        if reported.error is not None:
            return reported.error(message, provider=self.name, model=model)
        if parts:
            return StreamInterruptedError(
                message, partial_text="".join(parts), provider=self.name, model=model, status_code=reported.status
            )
        return error_for_status(reported.status, message, provider=self.name, model=model)


class BoundedBody:
    """Reads one response body under a byte cap and a deadline (loop time) the caller may move on progress."""

    def __init__(self, deadline: float, cap: int) -> None:
        self.deadline = deadline
        self.cap = cap
        self.size = 0

    async def chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """Decoded body bytes; refused as soon as the declared or the received size passes the cap."""
        _refuse_declared(response, self.cap)
        pieces = response.aiter_bytes()
        while True:
            async with asyncio.timeout_at(self.deadline):
                chunk = await anext(pieces, None)
            if chunk is None:
                return
            self.size += len(chunk)
            if self.size > self.cap:
                raise _over_cap(self.cap)
            yield chunk

    async def read(self, response: httpx.Response) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(response)])


def _scrubbed(exc: BaseException) -> BaseException:
    """*exc*, with every key masked in the headers of each httpx request its chain of causes holds.

    httpx masks ``Authorization`` in a repr only, and ``x-api-key`` (Anthropic) or ``x-goog-api-key``
    (Gemini) not at all: an error we raise must not lead to a key by way of ``__cause__.request.headers``.
    The request has been sent and is never sent again, so masking it in place loses nothing.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        each = pending.pop()
        if each is None or id(each) in seen:
            continue
        seen.add(id(each))
        request = _request_of(each)
        if request is not None:
            for name, value in request.headers.multi_items():
                if (masked := redact(value)) != value:
                    request.headers[name] = masked
        pending += [each.__cause__, each.__context__]
    return exc


def _request_of(exc: BaseException) -> httpx.Request | None:
    if not isinstance(exc, httpx.HTTPError):
        return None
    try:
        return exc.request
    except RuntimeError:  # httpx's way of saying none was set
        return None


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """A whole decoded body, refused as soon as its declared or received size passes *cap*; the caller's
    deadline bounds the time (no timer per chunk, as a stream's `BoundedBody` needs)."""
    _refuse_declared(response, cap)
    pieces, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise _over_cap(cap)
        pieces.append(chunk)
    return b"".join(pieces)


def _refuse_declared(response: httpx.Response, cap: int) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise WireError(f"response body of {declared} bytes is over the {cap}-byte cap (max_body_bytes)")


def _over_cap(cap: int) -> WireError:
    return WireError(f"response body is over the {cap}-byte cap (max_body_bytes)")


def _basic_auth(base_url: str) -> tuple[str, Secret | None]:
    """*base_url* without its user-info, and the Basic credentials that user-info stands for (as httpx would
    send them), registered as secrets so neither the password nor its Base64 form can be shown."""
    if "@" not in base_url:
        return base_url, None
    url = httpx.URL(base_url)
    if not url.userinfo:
        return base_url, None
    register(url.password)
    token = Secret(base64.b64encode(f"{url.username}:{url.password}".encode()).decode())
    return str(url.copy_with(username=None, password=None)), token
