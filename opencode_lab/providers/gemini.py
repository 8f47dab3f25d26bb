"""Google's Gemini API (``models/{m}:generateContent`` and ``:streamGenerateContent?alt=sse``), over httpx.

What differs from the OpenAI wire is translated here: turns are ``contents`` of
``parts`` with roles ``user`` / ``model``, the system prompt is
``systemInstruction``, sampling goes in ``generationConfig`` (``temperature``,
``topP``, ``maxOutputTokens``, ``stopSequences``, ``seed``; ``responseMimeType`` and
``responseJsonSchema`` for ``schema=``, whose answer is checked on arrival), tools are
``functionDeclarations`` (with ``parametersJsonSchema``, so a declaration written for
OpenAI needs no rewriting) answered by ``functionCall`` / ``functionResponse``
parts, images are ``inlineData``, and ``usageMetadata`` holds the token counts.
A prompt the safety filter blocks is a `BadRequestError` naming the reason (no
retry, no failover: another deployment would block it too); an answer stopped
by it has ``finish_reason="content_filter"``.  A 400 whose detail says
``API_KEY_INVALID`` (how Gemini answers a bad key) is an `AuthenticationError`,
and a 429's ``RetryInfo`` delay is its ``retry_after`` when no header gives one.
The key travels in the ``x-goog-api-key`` header, never in the URL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

from ..core.content import Image
from ..core.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    ProviderError,
    RateLimitError,
)
from ..core.secrets import Secret, redact
from ..core.tools import ToolCall
from ..core.types import ChatRequest, Completion, Message, ModelInfo, StreamChunk, Usage
from . import openai_wire as wire
from .openai_compat import OpenAICompatibleProvider, _cut, _Reader, _StreamText
from .retry_after import parse_retry_after
from .vendor_wire import obj as _object

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

API_VERSION = "v1beta"
_MAX_PAGES = 20
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


class GeminiProvider(OpenAICompatibleProvider):
    """generateContent, SSE streaming, tools, images and the model list; *base_url* as the SDK takes it."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: Secret | None,
        headers: Mapping[str, str | Secret] | None = None,
        **kw: Any,
    ) -> None:
        sent: dict[str, str | Secret] = dict(headers or {})
        if api_key:
            sent["x-goog-api-key"] = api_key
        super().__init__(name, base_url, headers=sent, **kw)

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {"contents": _contents(request.messages)}
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config = {
            "temperature": p.temperature,
            "topP": p.top_p,
            "maxOutputTokens": p.max_tokens,
            "stopSequences": list(p.stop) or None,
            "seed": p.seed,
        }
        if p.schema is not None:  # structured output, checked again on arrival
            config |= {"responseMimeType": "application/json", "responseJsonSchema": p.schema.document}
        if config := {k: v for k, v in config.items() if v is not None}:
            body["generationConfig"] = config
        if request.tools:  # parametersJsonSchema takes JSON Schema as OpenAI-style declarations write it
            declarations = [
                {"name": t.name, "description": t.description, "parametersJsonSchema": dict(t.parameters)}
                for t in request.tools
            ]
            body["tools"] = [{"functionDeclarations": declarations}]
        return body

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        body = self.payload(model, request, stream=False)
        data = await self._fetch("POST", _path(model, "generateContent"), model, body)
        with self._edge(model):
            answer = _Answer(model)
            text = answer.feed(data)
        self._raise_blocked(answer, model)
        completion = answer.completion(redact(text, urls=False), time.perf_counter() - started)
        return completion

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Text as each SSE chunk brings it; the stream is complete when a chunk has given a finish reason
        and the body ends (Gemini sends no ``[DONE]``).  ``timeout_s`` bounds the wait for progress."""
        loop = asyncio.get_running_loop()
        text = _StreamText()
        answer = _Answer(model)
        path = _path(model, "streamGenerateContent") + "?alt=sse"
        with self._edge(model, text.parts):
            reader = _Reader(loop.time() + self._timeout_s, self._max_body_bytes)
            response = await self._send("POST", path, reader, self.payload(model, request, stream=True))
            try:
                if response.status_code >= 300:
                    raise self._status_error(response.status_code, await reader.read(response), response.headers, model)
                async for line in reader.sse_lines(response):
                    event = wire.loads(line, "stream chunk")
                    self._raise_embedded(event, model, text.text)
                    raw = answer.feed(event)
                    self._raise_blocked(answer, model)
                    if raw or answer.calls:
                        reader.deadline = loop.time() + self._timeout_s
                    delta = text.feed(raw)
                    if delta:
                        yield StreamChunk(delta)
                if answer.finish is None:
                    raise _cut(self.name, model, text.parts, "stream ended without a finish reason")
            finally:
                await response.aclose()
        tail = text.flush()
        if tail:
            yield StreamChunk(tail)
        completion = answer.completion(text.text, text.ttft)
        yield StreamChunk("", completion)

    async def list_models(self) -> list[ModelInfo]:
        """Every page of ``models`` that can ``generateContent`` (ids without the ``models/`` prefix)."""
        out: list[ModelInfo] = []
        query = {"pageSize": "1000"}
        for _ in range(_MAX_PAGES):
            data = await self._fetch("GET", f"/{API_VERSION}/models?{urlencode(query)}", None)
            items = data.get("models") or []
            if not isinstance(items, list):
                raise MalformedResponseError("the model list's models is not a list", provider=self.name)
            out += [_model_info(item) for item in items if _generates(item)]
            if not isinstance(data.get("nextPageToken"), str) or not data["nextPageToken"]:
                break
            query["pageToken"] = data["nextPageToken"]
        return out

    def _status_error(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> ProviderError:
        error = super()._status_error(status, content, headers, model)
        details = _details(content)
        if status == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
            message = wire.error_message(content)
            return AuthenticationError(message, provider=self.name, model=model, status_code=status)
        if isinstance(error, RateLimitError) and error.retry_after is None:
            delays = [d["retryDelay"] for d in details if isinstance(d.get("retryDelay"), str)]
            error.retry_after = parse_retry_after(delays[0].removesuffix("s")) if delays else None  # "27s"
        return error

    def _raise_blocked(self, answer: _Answer, model: str) -> None:
        if answer.blocked:
            raise BadRequestError(
                f"the prompt was blocked by Gemini's safety filter ({answer.blocked})", provider=self.name, model=model
            )


class _Answer:
    """``GenerateContentResponse`` objects (one, or one per stream chunk) folded into one answer."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.finish: str | None = None
        self.blocked = ""
        self.calls: list[ToolCall] = []
        self.usage = Usage()

    def feed(self, data: Mapping[str, Any]) -> str:
        """Take one response object; return its text (thought summaries left out)."""
        self.model = str(data.get("modelVersion") or self.model)
        if data.get("usageMetadata") is not None:  # thinking tokens are output, billed as such
            meta = _object(data["usageMetadata"], "usageMetadata")
            usage = wire.usage(
                {"prompt_tokens": meta.get("promptTokenCount"), "completion_tokens": meta.get("candidatesTokenCount")}
            )
            thoughts = wire.usage({"completion_tokens": meta.get("thoughtsTokenCount")}).output_tokens or 0
            output = None if usage.output_tokens is None else usage.output_tokens + thoughts
            self.usage = Usage(usage.input_tokens, output)
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.blocked = str(feedback["blockReason"])
        candidates = data.get("candidates") or []
        if not isinstance(candidates, list):
            raise wire.WireError("candidates is not a list")
        if not candidates:
            return ""
        first = _object(candidates[0], "candidates[0]")
        if isinstance(first.get("finishReason"), str):
            self.finish = first["finishReason"]
        content = first.get("content") or {}
        texts = []
        for i, part in enumerate(_object(content, "candidates[0].content").get("parts") or []):
            part = _object(part, f"candidates[0].content.parts[{i}]")
            if "text" in part and not part.get("thought"):
                if not isinstance(part["text"], str):
                    raise wire.WireError(f"candidates[0].content.parts[{i}].text is not text")
                texts.append(part["text"])
            elif "functionCall" in part:
                call = _object(part["functionCall"], f"candidates[0].content.parts[{i}].functionCall")
                if not isinstance(call.get("name"), str) or not isinstance(call.get("args"), dict | None):
                    raise wire.WireError(f"candidates[0].content.parts[{i}].functionCall has no name or args object")
                call_id = str(call.get("id") or f"call_{uuid.uuid4().hex[:16]}")  # Gemini's ids are optional
                self.calls.append(ToolCall.parse(call_id, call["name"], call.get("args")))
        return "".join(texts)

    def completion(self, text: str, ttft: float | None) -> Completion:
        finish = _FINISH.get(self.finish, self.finish.lower()) if self.finish else None
        if self.calls and finish == "stop":
            finish = "tool_calls"
        return Completion(text, self.model, finish, self.usage, ttft, tuple(self.calls))


def _contents(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The ``contents`` array: system turns leave it, tool results become ``functionResponse`` parts."""
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            response = {"id": m.tool_call_id, "name": names[m.tool_call_id], "response": _result(m.content)}
            part = {"functionResponse": response}
            if out and out[-1]["role"] == "user" and all("functionResponse" in p for p in out[-1]["parts"]):
                out[-1]["parts"].append(part)  # the results of one turn's calls travel together
            else:
                out.append({"role": "user", "parts": [part]})
            continue
        role = "model" if m.role == "assistant" else "user"
        if m.parts:
            parts = [_part(p) for p in m.parts if p]
        else:
            parts = [{"text": m.content}] if m.content or not m.tool_calls else []
        for call in m.tool_calls:
            parts.append({"functionCall": {"id": call.id, "name": call.name, "args": dict(call.arguments or {})}})
        out.append({"role": role, "parts": parts})
    return out


def _part(part: str | Image) -> dict[str, Any]:
    if isinstance(part, str):
        return {"text": part}
    if part.url:
        return {"fileData": {"mimeType": part.mime_type, "fileUri": part.url}}
    return {"inlineData": {"mimeType": part.mime_type, "data": part.base64()}}


def _result(content: str) -> dict[str, Any]:
    """A tool's result as the object ``functionResponse.response`` must be (text is wrapped)."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return {"result": content}
    return parsed if isinstance(parsed, dict) else {"result": parsed}


def _path(model: str, method: str) -> str:
    return f"/{API_VERSION}/models/{quote(model.removeprefix('models/'), safe='-._~')}:{method}"


def _generates(item: Any) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return False
    methods = item.get("supportedGenerationMethods")
    return not isinstance(methods, list) or "generateContent" in methods


def _model_info(item: Mapping[str, Any]) -> ModelInfo:
    return ModelInfo(
        id=item["name"].removeprefix("models/"),
        context_length=wire.context_length(item.get("inputTokenLimit")),
        description=str(item.get("displayName") or ""),
    )


def _details(content: bytes) -> list[dict[str, Any]]:
    """The ``error.details`` objects of an error body (``RetryInfo``, ``ErrorInfo``...), or none."""
    try:
        error = wire.loads(content, "error body").get("error")
    except wire.WireError:
        return []
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def from_config(config: ProviderConfig, settings: Settings) -> GeminiProvider:
    """The ``gemini`` provider type (``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``, or ``type = "gemini"`` in TOML)."""
    return GeminiProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
