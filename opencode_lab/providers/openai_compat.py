"""Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama's /v1, llama.cpp's server, custom gateways.

Vendor failures are translated into our errors here and only here
(`_map_transport_errors`, `_raise_for_status`), always ``raise ... from`` the
original, so nothing above a provider ever sees an httpx exception.
"""

from __future__ import annotations

import contextlib
import json
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
from ..core.secrets import Secret
from ..core.types import ChatRequest, Completion, ModelInfo, StreamChunk, Usage
from .base import Provider
from .retry_after import parse_ratelimit_reset, parse_retry_after

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

class OpenAICompatibleProvider(Provider):
    """Chat completions, SSE streaming and ``/models`` over one pooled ``httpx.AsyncClient``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: Secret | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._headers = dict(headers or {})
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
            headers = {"Accept": "application/json", **self._headers}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=self._timeout,
                limits=self._limits,
                transport=self._transport,
            )
        return self._client

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for one chat completion; subclasses add vendor fields."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [m.to_dict() for m in request.messages],
            **request.params.payload(),
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        with self._map_transport_errors(model):
            response = await self.client.post("/chat/completions", json=self.payload(model, request, stream=False))
            content = response.content
        data = self._decode(response.status_code, content, response.headers, model)
        completion = self._completion(data, model)
        return Completion(
            completion.text,
            completion.model,
            completion.finish_reason,
            completion.usage,
            ttft_s=time.perf_counter() - started,
        )

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        started = time.perf_counter()
        parts: list[str] = []
        ttft: float | None = None
        finish: str | None = None
        usage = Usage()
        served = model
        with self._map_transport_errors(model, parts):
            body = self.payload(model, request, stream=True)
            async with self.client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 300:
                    self._decode(response.status_code, await response.aread(), response.headers, model)
                done = False
                async for line in _sse_lines(response, self.name, model):
                    if line == "[DONE]":
                        done = True
                        break
                    event = _json(line, self.name, model, "stream chunk")
                    _raise_embedded_error(event, self.name, model, partial="".join(parts))
                    served = event.get("model") or served
                    usage = _usage(event.get("usage")) if event.get("usage") else usage
                    for choice in event.get("choices") or ():
                        delta = (choice.get("delta") or {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if delta:
                            ttft = ttft if ttft is not None else time.perf_counter() - started
                            parts.append(delta)
                            yield StreamChunk(delta)
                if not done and finish is None:
                    raise _cut(self.name, model, parts, "stream ended without [DONE]")
        completion = Completion("".join(parts), served, finish, usage, ttft)
        yield StreamChunk("", completion)

    async def list_models(self) -> list[ModelInfo]:
        with self._map_transport_errors(None):
            response = await self.client.get("/models")
            content = response.content
        data = self._decode(response.status_code, content, response.headers, None)
        return [self.model_info(item) for item in data.get("data") or () if isinstance(item, dict) and "id" in item]

    def model_info(self, item: Mapping[str, Any]) -> ModelInfo:
        """Normalise one ``/models`` entry; OpenRouter overrides this to read pricing."""
        ctx = item.get("context_length") or (item.get("meta") or {}).get("n_ctx_train")
        return ModelInfo(id=str(item["id"]), context_length=int(ctx) if ctx else None)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @contextlib.contextmanager
    def _map_transport_errors(self, model: str | None, parts: list[str] | None = None) -> Iterator[None]:
        """Translate httpx's transport exceptions into ours, once, at the edge."""
        try:
            yield
        except httpx.TimeoutException as exc:
            if parts:
                raise _cut(self.name, model, parts, f"timed out mid-stream ({type(exc).__name__})") from exc
            raise ProviderTimeout(
                f"no answer within the timeout ({type(exc).__name__})", provider=self.name, model=model
            ) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            if parts:
                raise _cut(self.name, model, parts, f"connection lost mid-stream ({type(exc).__name__})") from exc
            raise ProviderConnectionError(
                f"connection failed: {type(exc).__name__}: {exc}", provider=self.name, model=model
            ) from exc

    def _decode(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> dict[str, Any]:
        if status >= 300:
            raise self._status_error(status, content, headers, model)
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"response is not JSON: {content[:80]!r}", provider=self.name, model=model, status_code=status
            ) from exc
        if not isinstance(data, dict):
            raise MalformedResponseError("response JSON is not an object", provider=self.name, model=model)
        _raise_embedded_error(data, self.name, model)
        return data

    def _completion(self, data: Mapping[str, Any], model: str) -> Completion:
        choices = data.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise MalformedResponseError("response has no choices", provider=self.name, model=model)
        message = choices[0].get("message") or {}
        text = message.get("content")
        if text is None and not message.get("tool_calls"):
            raise MalformedResponseError("response choice has no message content", provider=self.name, model=model)
        return Completion(
            text=text or "",
            model=str(data.get("model") or model),
            finish_reason=choices[0].get("finish_reason"),
            usage=_usage(data.get("usage")),
        )

    def _status_error(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> ProviderError:
        message = _error_message(content) or httpx.codes.get_reason_phrase(status) or "error"
        if 300 <= status < 400 and headers.get("location"):
            message = f"{message}: redirected to {headers['location']} (point the base URL there)"
        wait = None
        if status == 429:
            wait = parse_retry_after(headers.get("retry-after"))
            wait = wait if wait is not None else parse_ratelimit_reset(headers)
        return error_for_status(status, message, retry_after=wait, provider=self.name, model=model)


async def _sse_lines(response: httpx.Response, provider: str, model: str) -> AsyncIterator[str]:
    """The ``data:`` payloads of an SSE stream, decoded strictly as UTF-8 (a bad byte is an error, not U+FFFD)."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = _decode_line(raw, provider, model)
            if line.startswith("data:"):
                yield line[5:].strip()
    if buffer.strip():
        line = _decode_line(buffer, provider, model)
        if line.startswith("data:"):
            yield line[5:].strip()


def _decode_line(raw: bytes, provider: str, model: str) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise MalformedResponseError(
            f"stream contains invalid UTF-8: {raw[:40]!r}", provider=provider, model=model
        ) from exc


def _json(text: str, provider: str, model: str | None, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedResponseError(f"{what} is not JSON: {text[:80]!r}", provider=provider, model=model) from exc
    if not isinstance(data, dict):
        raise MalformedResponseError(f"{what} is not a JSON object", provider=provider, model=model)
    return data


def _raise_embedded_error(data: Mapping[str, Any], provider: str, model: str | None, partial: str = "") -> None:
    """A 200 carrying an ``error`` object (OpenRouter does this) is an error, never an empty answer."""
    error = data.get("error")
    if not error:
        return
    message = error.get("message") if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and not isinstance(code, bool) else None
    text = f"provider returned an error in a 200 response: {message}"
    if partial:
        raise StreamInterruptedError(text, partial_text=partial, provider=provider, model=model, status_code=status)
    raise error_for_status(status, text, provider=provider, model=model)


def _error_message(content: bytes) -> str:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return content[:200].decode("utf-8", "replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or data.get("message") or data.get("detail") or "") if isinstance(data, dict) else ""


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    cost = raw.get("cost")
    return Usage(
        input_tokens=_int_or_none(raw.get("prompt_tokens")),
        output_tokens=_int_or_none(raw.get("completion_tokens")),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cut(provider: str, model: str | None, parts: list[str], why: str) -> ProviderError:
    """A stream that breaks after text arrived is `StreamInterruptedError` (no failover); before, it is retryable."""
    if parts:
        return StreamInterruptedError(why, partial_text="".join(parts), provider=provider, model=model)
    return ProviderConnectionError(why, provider=provider, model=model)


def from_config(config: ProviderConfig, settings: Settings) -> OpenAICompatibleProvider:
    """The ``openai`` provider type: any OpenAI-compatible endpoint."""
    return OpenAICompatibleProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
