"""Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama's /v1, llama.cpp's server, custom gateways.

Vendor failures are translated into our errors here and only here (`_edge`,
`_status_error`, the strict reader of `openai_wire`), always ``raise ... from``
the original, so nothing above a provider ever sees an httpx exception or a
body it cannot trust.  Every exchange is bounded twice: ``timeout_s`` per
attempt (httpx's own read timeout restarts with every byte, so a trickling
server would outlast it) and ``max_body_bytes``, checked while reading.
Answers pass through `redact`, so a key a server echoes is masked here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..core.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    StreamInterruptedError,
    error_for_status,
)
from ..core.secrets import Secret, StreamRedactor, get_logger, redact, register
from ..core.types import ChatRequest, Completion, ModelInfo, StreamChunk, Usage
from . import openai_tools
from . import openai_wire as wire
from .base import Provider
from .retry_after import parse_ratelimit_reset, parse_retry_after

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

#: the largest response body read before it is refused (decoded bytes, so a gzip bomb is stopped too)
MAX_BODY_BYTES = 32 * 1024 * 1024
#: how long a stream whose choice has finished waits for its usage chunk and ``[DONE]``
FINISH_GRACE_S = 1.0

# httpx's INFO line names each request's URL; httpcore's DEBUG trace shows response headers
for _logger in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
    get_logger(_logger)


class OpenAICompatibleProvider(Provider):
    """Chat completions, SSE streaming and ``/models`` over one pooled ``httpx.AsyncClient``."""

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
        """User-info in *base_url* (``https://user:pass@host/v1``) is sent as Basic auth, as httpx would,
        in place of *api_key*; it is kept out of `base_url`, reprs and httpx's log lines."""
        self.name = name
        url, self._basic = _basic_auth(base_url)
        self.base_url = url.rstrip("/")
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._max_body_bytes = max_body_bytes
        self._finish_grace_s = finish_grace_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def client(self) -> httpx.AsyncClient:
        """Created on first use, inside the event loop that will use it."""
        if self._client is None:
            headers = {"Accept": "application/json"}
            headers |= {k: v.reveal() if isinstance(v, Secret) else v for k, v in self._headers.items()}
            if self._basic:
                headers["Authorization"] = f"Basic {self._basic.reveal()}"
            elif self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=self._timeout,
                limits=self._limits,
                transport=self._transport,
            )
        return self._client

    def identity(self, model: str) -> str:
        """The server (`base_url` holds no user-info) and the model id: another server is another model."""
        return f"{self.base_url}|{model}"

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for one chat completion; subclasses add vendor fields."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [m.to_dict() for m in request.messages],
            **request.params.payload(),
            **openai_tools.tools_payload(request),
        }
        if body.pop("schema", None) is not None:  # structured output, validated again on arrival
            body["response_format"] = request.params.schema.response_format()
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        data = await self._fetch("POST", "/chat/completions", model, self.payload(model, request, stream=False))
        with self._edge(model):
            completion = wire.completion(data, model)
            calls = openai_tools.message_tool_calls(data)
        text = redact(completion.text, urls=False)
        return dataclasses.replace(completion, text=text, ttft_s=time.perf_counter() - started, tool_calls=calls)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """SSE deltas; ``timeout_s`` bounds the wait for each piece of progress (a new delta), so a body
        trickling bytes that say nothing times out, while a long answer that keeps coming does not.
        Once a choice has finished, the usage chunk, ``[DONE]`` and the end of the body get
        `FINISH_GRACE_S`: a server that then hangs has still given a complete answer."""
        loop = asyncio.get_running_loop()
        text = _StreamText()
        finish: str | None = None
        usage = Usage()
        served = model
        calls = openai_tools.ToolCallDeltas()
        with self._edge(model, text.parts):
            reader = _Reader(loop.time() + self._timeout_s, self._max_body_bytes)
            response = await self._send("POST", "/chat/completions", reader, self.payload(model, request, stream=True))
            try:
                if response.status_code >= 300:
                    raise self._status_error(response.status_code, await reader.read(response), response.headers, model)
                done = False
                try:
                    async for line in reader.sse_lines(response):
                        if done:  # read to the end of the body (within the grace), so the connection is reused
                            continue
                        if line == "[DONE]":
                            done = True
                            reader.deadline = min(reader.deadline, loop.time() + self._finish_grace_s)
                            continue
                        event = wire.loads(line, "stream chunk")
                        self._raise_embedded(event, model, text.text)
                        served = wire.served_model(event, served)
                        if event.get("usage") is not None:
                            usage = wire.usage(event["usage"])
                        progressed = False
                        for choice in wire.choices(event):
                            finished = wire.finish_reason(choice)
                            if finished and finish is None:
                                reader.deadline = min(reader.deadline, loop.time() + self._finish_grace_s)
                            finish = finished or finish
                            raw = wire.delta_text(choice)
                            progressed = calls.feed(choice) or progressed or bool(raw)
                            delta = text.feed(raw)
                            if delta:
                                yield StreamChunk(delta)
                        if progressed and finish is None:
                            reader.deadline = loop.time() + self._timeout_s
                except TimeoutError:
                    if finish is None and not done:
                        raise
                if not done and finish is None:
                    raise _cut(self.name, model, text.parts, "stream ended without [DONE]")
            finally:
                await response.aclose()
        tail = text.flush()
        if tail:
            yield StreamChunk(tail)
        completion = Completion(text.text, served, finish, usage, text.ttft, calls.calls())
        yield StreamChunk("", completion)

    async def list_models(self) -> list[ModelInfo]:
        data = await self._fetch("GET", "/models", None)
        items = data.get("data")
        if items is None:
            return []
        if not isinstance(items, list):
            raise MalformedResponseError("the model list's data is not a list", provider=self.name)
        return [
            self.model_info(item)
            for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]
        ]

    def model_info(self, item: Mapping[str, Any]) -> ModelInfo:
        """Normalise one ``/models`` entry (a bad value is dropped); OpenRouter overrides this to read pricing."""
        meta = item.get("meta")
        ctx = item.get("context_length") or (meta.get("n_ctx_train") if isinstance(meta, dict) else None)
        return ModelInfo(id=item["id"], context_length=wire.context_length(ctx))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send(
        self, method: str, path: str, reader: _Reader, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Send a request and wait for the response headers, within *reader*'s deadline; the body is not read."""
        request = self.client.build_request(method, path, json=body)
        async with asyncio.timeout_at(reader.deadline):
            return await self.client.send(request, stream=True)

    async def _fetch(self, method: str, path: str, model: str | None, body: dict[str, Any] | None = None) -> Any:
        """One whole non-streamed exchange (connect, headers, body) within ``timeout_s``, decoded."""
        reader = _Reader(asyncio.get_running_loop().time() + self._timeout_s, self._max_body_bytes)
        with self._edge(model):
            response = await self._send(method, path, reader, body)
            try:
                content = await reader.read(response)
            finally:
                await response.aclose()
            return self._decode(response.status_code, content, response.headers, model)

    @contextlib.contextmanager
    def _edge(self, model: str | None, parts: list[str] | None = None) -> Iterator[None]:
        """Translate httpx's exceptions, our own time limit and broken wire formats into our errors, once."""
        try:
            yield
        except wire.WireError as exc:
            raise MalformedResponseError(str(exc), provider=self.name, model=model) from exc
        except httpx.DecodingError as exc:  # e.g. "Content-Encoding: gzip" on a body that is not gzip
            raise MalformedResponseError(
                f"response body could not be decoded ({exc})", provider=self.name, model=model
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            why = f"timed out (timeout_s={self._timeout_s:g}s; {type(exc).__name__})"
            if parts:
                raise _cut(self.name, model, parts, f"stream stalled: {why}") from exc
            raise ProviderTimeout(why, provider=self.name, model=model) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            if parts:
                raise _cut(self.name, model, parts, f"connection lost mid-stream ({type(exc).__name__})") from exc
            what = "connection refused" if isinstance(exc, httpx.ConnectError) else "connection failed"
            raise ProviderConnectionError(
                f"{what} at {self.base_url}: {type(exc).__name__}: {exc}", provider=self.name, model=model
            ) from exc

    def _decode(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> dict[str, Any]:
        if status >= 300:
            raise self._status_error(status, content, headers, model)
        data = wire.loads(content, "response")
        self._raise_embedded(data, model)
        return data

    def _raise_embedded(self, data: Mapping[str, Any], model: str | None, partial: str = "") -> None:
        """A 200 carrying an ``error`` object (OpenRouter does this) is an error, never an empty answer."""
        found = wire.embedded_error(data)
        if found is None:
            return
        status, message = found
        text = f"provider returned an error in a 200 response: {message}"
        if partial:
            raise StreamInterruptedError(
                text, partial_text=partial, provider=self.name, model=model, status_code=status
            )
        raise error_for_status(status, text, provider=self.name, model=model)

    def _status_error(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> ProviderError:
        message = wire.error_message(content) or httpx.codes.get_reason_phrase(status) or "error"
        if 300 <= status < 400 and headers.get("location"):
            message = f"{message}: redirected to {headers['location']} (point the base URL there)"
        wait = None
        if status == 429:
            wait = parse_retry_after(headers.get("retry-after"))
            wait = wait if wait is not None else parse_ratelimit_reset(headers)
        return error_for_status(status, message, retry_after=wait, provider=self.name, model=model)


class _StreamText:
    """An answer as it streams, shared by every HTTP provider: keys masked across deltas, the time to the
    first token, and the text so far (which an interrupted stream hands to its error)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.ttft: float | None = None
        self._started = time.perf_counter()
        self._redactor = StreamRedactor()

    def feed(self, raw: str) -> str:
        """What of *raw* may be shown now (a possible key's start is held back)."""
        delta = self._redactor.feed(raw)
        if delta:
            self.ttft = self.ttft if self.ttft is not None else time.perf_counter() - self._started
            self.parts.append(delta)
        return delta

    def flush(self) -> str:
        """What was held back, once the stream has ended."""
        tail = self._redactor.flush()
        if tail:
            self.parts.append(tail)
        return tail

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _Reader:
    """Reads one response body under a byte cap and a deadline (loop time) the caller may move on progress."""

    def __init__(self, deadline: float, cap: int) -> None:
        self.deadline = deadline
        self.cap = cap
        self.size = 0

    async def chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """Decoded body bytes; refused as soon as the declared or the received size passes the cap."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.cap:
            raise wire.WireError(f"response body of {declared} bytes is over the {self.cap}-byte cap (max_body_bytes)")
        pieces = response.aiter_bytes()
        while True:
            async with asyncio.timeout_at(self.deadline):
                chunk = await anext(pieces, None)
            if chunk is None:
                return
            self.size += len(chunk)
            if self.size > self.cap:
                raise wire.WireError(f"response body is over the {self.cap}-byte cap (max_body_bytes)")
            yield chunk

    async def read(self, response: httpx.Response) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(response)])

    async def sse_lines(self, response: httpx.Response) -> AsyncIterator[str]:
        """The ``data:`` payloads of an SSE stream, decoded strictly as UTF-8 (a bad byte is an error, not U+FFFD)."""
        pending: list[bytes] = []  # the unfinished line, in pieces: joined once, not copied per chunk
        async for chunk in self.chunks(response):
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            first, *lines, rest = chunk.split(b"\n")
            for raw in (b"".join([*pending, first]), *lines):
                line = _decode_line(raw)
                if line.startswith("data:"):
                    yield line[5:].strip()
            pending = [rest]
        line = _decode_line(b"".join(pending))
        if line.startswith("data:"):
            yield line[5:].strip()


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise wire.WireError(f"stream contains invalid UTF-8: {raw[:40]!r}") from None


def _cut(provider: str, model: str | None, parts: list[str], why: str) -> ProviderError:
    """A stream that breaks after text arrived is `StreamInterruptedError` (no failover); before, it is retryable."""
    if parts:
        return StreamInterruptedError(why, partial_text="".join(parts), provider=provider, model=model)
    return ProviderConnectionError(why, provider=provider, model=model)


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


def from_config(config: ProviderConfig, settings: Settings) -> OpenAICompatibleProvider:
    """The ``openai`` provider type: any OpenAI-compatible endpoint."""
    return OpenAICompatibleProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
