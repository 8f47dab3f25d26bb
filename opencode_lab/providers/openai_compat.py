"""Any OpenAI-compatible server: vLLM, Ollama's /v1, llama.cpp's server, custom gateways (TOML ``type = "openai"``).

The HTTP edge is `HTTPProvider`'s and the format is `openai_wire`'s; what is left is the
path and the model list.  Its catalog is closed: a self-hosted server serves what the
configuration declares (the OpenAI API itself, whose catalog is open, is `openai_api`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.types import ChatRequest, Completion, ModelInfo
from . import openai_wire
from .base import Capabilities
from .http import HTTPProvider
from .openai_wire import ChatFold

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings


class OpenAICompatibleProvider(HTTPProvider):
    """Chat completions, SSE streaming and ``/models``; the key is a Bearer token."""

    capabilities = Capabilities(reasoning=frozenset({"reasoning_effort"}), logprobs=True, options=None)

    def chat_path(self, model: str, *, stream: bool) -> str:
        return "/chat/completions"

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return openai_wire.payload(model, request, stream=stream)

    def answer(self, data: dict[str, Any], model: str, request: ChatRequest) -> Completion:
        return openai_wire.completion(data, model)

    def fold(self, model: str, request: ChatRequest) -> ChatFold:
        return ChatFold(model)

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        data = await self.fetch("GET", "/models", None)
        with self.edge(None):
            return [self.model_info(item) for item in openai_wire.listed(data)]

    def model_info(self, item: Mapping[str, Any]) -> ModelInfo:
        """Normalise one ``/models`` entry (a bad value is dropped); OpenRouter overrides this to read pricing."""
        return openai_wire.model_info(item)


def from_config(config: ProviderConfig, settings: Settings) -> OpenAICompatibleProvider:
    """The ``openai`` provider type of a ``[providers.X]`` table: any OpenAI-compatible server."""
    return OpenAICompatibleProvider(
        config.name, config.base_url, api_key=config.api_key, headers=dict(config.headers), timeout_s=settings.timeout_s
    )
