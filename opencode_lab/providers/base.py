"""The provider interface: one request in, one normalised completion (or typed error) out.

Providers are our transports.  They know one vendor's wire format and nothing
about routing, caching or retries; everything past them sees only `Completion`,
`StreamChunk`, `ModelInfo` and the errors of `opencode_lab.core.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from ..core.types import ChatRequest, Completion, ModelInfo, StreamChunk


class Provider(ABC):
    """A source of completions.  Subclasses are thin adapters (~100-200 lines)."""

    #: short name used in deployment ids (``openrouter``, ``local``, a TOML provider name)
    name: str
    #: cost of the provider's answers is reported by it (OpenRouter) rather than computed
    reports_cost: bool = False

    @abstractmethod
    async def complete(self, model: str, request: ChatRequest) -> Completion:
        """Answer *request* with upstream model *model*; raise a `ProviderError` subclass on failure."""

    @abstractmethod
    def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas; the last chunk carries the full `Completion`."""

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]:
        """The models this provider serves, with whatever pricing and context it knows."""

    def identity(self, model: str) -> str:
        """Who answers for upstream *model*, as the cache key names it.

        A cached answer is reused only for the same identity: pointing a model name at
        another provider, server or weights file must change it.
        """
        return f"{self.name}/{model}"

    async def prepare(self, model: str) -> None:  # noqa: B027 - optional hook
        """Do one-off work (loading weights) before the timed call, so it does not count as latency."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release pooled connections or loaded weights."""
