"""Google's Gemini API (``models/{m}:generateContent`` and ``:streamGenerateContent?alt=sse``), over httpx.

The format is `gemini_wire`'s and the edge `HTTPProvider`'s, with two readings of Gemini's
error bodies added: a 400 whose detail says ``API_KEY_INVALID`` (how Gemini answers a bad
key) is an `AuthenticationError`, and a 429's ``RetryInfo`` delay is its ``retry_after``
when no header gives one.  The key travels in the ``x-goog-api-key`` header, never in the URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from ..core.errors import AuthenticationError, ProviderError, RateLimitError
from ..core.secrets import Secret
from ..core.types import ChatRequest, Completion, ModelInfo
from . import gemini_wire
from .base import Capabilities
from .http import HTTPProvider
from .retry_after import parse_retry_after
from .wire import error_message

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

_MAX_PAGES = 20


class GeminiProvider(HTTPProvider):
    """generateContent, SSE streaming, tools, images and the model list; *base_url* as the SDK takes it."""

    capabilities = Capabilities(
        reasoning=frozenset({"reasoning_budget"}), logprobs=True, options=None, open_catalog=True
    )

    def key_headers(self, key: Secret) -> dict[str, str]:
        return {"x-goog-api-key": key.reveal()}

    def chat_path(self, model: str, *, stream: bool) -> str:
        if stream:
            return gemini_wire.path(model, "streamGenerateContent") + "?alt=sse"
        return gemini_wire.path(model, "generateContent")

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return gemini_wire.payload(request)

    def answer(self, data: dict[str, Any], model: str, request: ChatRequest) -> Completion:
        return gemini_wire.completion(data, model)

    def fold(self, model: str, request: ChatRequest) -> gemini_wire.AnswerFold:
        return gemini_wire.AnswerFold(model)

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every page of ``models`` that can ``generateContent``."""
        out: list[ModelInfo] = []
        query = {"pageSize": "1000"}
        for _ in range(_MAX_PAGES):
            data = await self.fetch("GET", f"/{gemini_wire.API_VERSION}/models?{urlencode(query)}", None)
            with self.edge(None):
                out += gemini_wire.listed(data)
            if not isinstance(data.get("nextPageToken"), str) or not data["nextPageToken"]:
                break
            query["pageToken"] = data["nextPageToken"]
        return out

    def status_error(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> ProviderError:
        error = super().status_error(status, content, headers, model)
        details = gemini_wire.details(content)
        if status == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
            return AuthenticationError(error_message(content), provider=self.name, model=model, status_code=status)
        if isinstance(error, RateLimitError) and error.retry_after is None:
            delays = [d["retryDelay"] for d in details if isinstance(d.get("retryDelay"), str)]
            error.retry_after = parse_retry_after(delays[0].removesuffix("s")) if delays else None  # "27s"
        return error


def from_config(config: ProviderConfig, settings: Settings) -> GeminiProvider:
    """The ``gemini`` vendor and provider type (``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``, or ``type = "gemini"``)."""
    return GeminiProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
