"""The OpenAI API itself (``OPENAI_API_KEY``): an OpenAI-compatible server whose catalog is open.

``openai/ANY-ID`` works without a declaration (checked against its ``/models``) and is
priced from the bundled table; a self-hosted OpenAI-compatible server is `openai_compat`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings


class OpenAIProvider(OpenAICompatibleProvider):
    capabilities = replace(OpenAICompatibleProvider.capabilities, open_catalog=True)


def from_config(config: ProviderConfig, settings: Settings) -> OpenAIProvider:
    """The environment's ``openai`` vendor."""
    return OpenAIProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
