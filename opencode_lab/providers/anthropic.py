"""Anthropic's Messages API (``POST /v1/messages``), spoken with httpx like every other provider.

The format is `anthropic_wire`'s; the edge (transport, time limits, body caps, HTTP statuses:
429 + ``retry-after``, 529 overloaded as a retryable `ServerError`) is `HTTPProvider`'s, so a
failure means the same thing whoever answered.  The key travels in ``x-api-key``;
``max_tokens`` is ``OC_ANTHROPIC_MAX_TOKENS`` when the request sets none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..core.secrets import Secret
from ..core.types import ChatRequest, Completion, ModelInfo
from . import anthropic_wire
from .base import Capabilities
from .http import HTTPProvider
from .vendors import option

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

NAME = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
MESSAGES = "/v1/messages"
_MAX_PAGES = 20


class AnthropicProvider(HTTPProvider):
    """Messages, streaming, tools, images and ``/v1/models``; *base_url* as the SDK takes it (no ``/v1``)."""

    # the Messages API has no seed and no log-probabilities; thinking is a token budget
    capabilities = Capabilities(seeds=False, reasoning=frozenset({"reasoning_budget"}), options=None, open_catalog=True)

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: Secret | None,
        max_tokens: int = 1024,
        headers: Mapping[str, str | Secret] | None = None,
        **kw: Any,
    ) -> None:
        sent: dict[str, str | Secret] = {**(headers or {}), "anthropic-version": ANTHROPIC_VERSION}
        super().__init__(name, base_url, api_key=api_key, headers=sent, **kw)
        self.max_tokens = max_tokens

    def key_headers(self, key: Secret) -> dict[str, str]:
        return {"x-api-key": key.reveal()}

    def chat_path(self, model: str, *, stream: bool) -> str:
        return MESSAGES

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return anthropic_wire.payload(model, request, stream=stream, max_tokens=self.max_tokens)

    def answer(self, data: dict[str, Any], model: str, request: ChatRequest) -> Completion:
        return anthropic_wire.completion(data, model, anthropic_wire.answer_name(request))

    def fold(self, model: str, request: ChatRequest) -> anthropic_wire.MessagesFold:
        return anthropic_wire.MessagesFold(model, anthropic_wire.answer_name(request))

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every page of ``/v1/models`` (ids and display names; Anthropic lists no prices)."""
        out: list[ModelInfo] = []
        query: dict[str, str] = {"limit": "1000"}
        for _ in range(_MAX_PAGES):
            data = await self.fetch("GET", f"/v1/models?{urlencode(query)}", None)
            with self.edge(None):
                items = anthropic_wire.listed(data)
            out += [ModelInfo(id=item["id"], description=str(item.get("display_name") or "")) for item in items]
            if not data.get("has_more") or not isinstance(data.get("last_id"), str):
                break
            query["after_id"] = data["last_id"]
        return out


def from_config(config: ProviderConfig, settings: Settings) -> AnthropicProvider:
    """The ``anthropic`` vendor and provider type (``ANTHROPIC_API_KEY``, or ``type = "anthropic"`` in TOML)."""
    return AnthropicProvider(
        config.name,
        config.base_url,
        api_key=config.api_key,
        max_tokens=option(settings, NAME, "max_tokens", int, config),
        headers=dict(config.headers),
        timeout_s=settings.timeout_s,
    )
