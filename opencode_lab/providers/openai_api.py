"""The OpenAI API itself (``OPENAI_API_KEY``): an OpenAI-compatible server whose catalog is open.

``openai/ANY-ID`` works without a declaration (checked against its ``/models``) and is
priced from the bundled table; a self-hosted OpenAI-compatible server is `openai_compat`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings
    from ..core.types import ChatRequest


class OpenAIProvider(OpenAICompatibleProvider):
    capabilities = replace(OpenAICompatibleProvider.capabilities, open_catalog=True)

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """OpenAI's own name for the output bound: its reasoning models refuse the older ``max_tokens``, and
        every chat model takes ``max_completion_tokens`` (self-hosted compatible servers know the older name)."""
        body = super().payload(model, request, stream=stream)
        if "max_tokens" in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
        return body


def from_config(config: ProviderConfig, settings: Settings) -> OpenAIProvider:
    """The environment's ``openai`` vendor."""
    return OpenAIProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
