"""The provider interface: one request in, one normalised completion (or typed error) out.

Providers are our transports.  They know one vendor's wire format and nothing
about routing, caching or retries; everything past them sees only `Completion`,
`StreamChunk`, `ModelInfo`, the errors of `opencode_lab.core.errors` and the
`Capabilities` a provider class declares, so no layer above needs to know a
provider by its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..core.types import ChatRequest, Completion, ModelInfo, StreamChunk

#: the ``cost_source`` of a free provider's answers (the word results files have always used)
FREE_COST_SOURCE = "local"


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, declared as data on its class (as ``llm`` models declare theirs).

    The catalog refuses, before anything is sent, what a candidate cannot take (``tools``, ``images``,
    ``schema``, ``reasoning``, ``logprobs``, ``options``); the records read ``reports_cost`` and ``free``;
    the session builds open and refreshable catalogs from ``open_catalog`` and ``refreshable_catalog``.
    The defaults are what a plain `Provider` subclass has always been taken to do; a plug-in overrides what differs,
    e.g. ``capabilities = Capabilities(tools=False)``.
    """

    streams: bool = True
    """`Provider.stream` yields deltas; without it, ``stream`` raises `ModelUnavailableError` (the router
    fails over)."""
    tools: bool = True
    """Takes ``tools=`` and answers with tool calls."""
    images: bool = True
    """Takes image parts in user messages."""
    schema: bool = True
    """Takes ``schema=`` (structured output); the router checks every answer against it either way."""
    seeds: bool = True
    """Sends a request's ``seed`` and reports it as the answer's `Completion.seed` (whether the server then
    samples deterministically is its own promise).  A provider without seeds reports none, so no row claims
    a seed that did not make its answer."""
    reasoning: frozenset[str] = frozenset()
    """The reasoning controls it maps into its own request (``reasoning_effort``, ``reasoning_budget``); a
    request with another is refused before anything is sent, never sent without it."""
    logprobs: bool = False
    """Returns token log-probabilities (``logprobs=``, ``top_logprobs=``) as `Completion.logprobs`."""
    options: frozenset[str] | None = frozenset()
    """The provider-specific ``options=`` it passes on: these names, or any (None: its server judges them)."""
    reports_cost: bool = False
    """Each answer's ``usage.cost_usd`` is the provider's own bill, preferred over catalog prices."""
    free: bool = False
    """Answers cost nothing: computed on hardware the user runs (cost 0.0, ``cost_source`` `FREE_COST_SOURCE`)."""
    open_catalog: bool = False
    """``NAME/ANY-ID`` names one of its models without a declaration (checked against `Provider.list_models`)."""
    refreshable_catalog: bool = False
    """Its model list (prices, context sizes) is loaded whole into the catalog once per session and kept
    between sessions; ``list_models(refresh=True)`` fetches it anew."""
    upstream_routing: bool = False
    """Routes each call among upstream providers of its own and takes preferences for it (OpenRouter's
    ``provider`` object, ``provider_routing=``); a request with preferences and no such candidate is refused."""
    region: str | None = None
    """Where prompts are processed, for data-residency questions (``"in-process"``: they never leave this
    Python process); None when the provider does not say."""


class Provider(ABC):
    """A source of completions.  Subclasses are thin adapters (~100-200 lines)."""

    #: short name used in deployment ids (``openrouter``, a TOML provider name)
    name: str
    #: what this kind of provider can do; a subclass replaces it whole
    capabilities: Capabilities = Capabilities()

    @abstractmethod
    async def complete(self, model: str, request: ChatRequest) -> Completion:
        """Answer *request* with upstream model *model*; raise a `ProviderError` subclass on failure."""

    @abstractmethod
    def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas; the last chunk carries the full `Completion`."""

    @abstractmethod
    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """The models this provider serves, with whatever pricing and context it knows.

        *refresh* matters only to a provider with a `Capabilities.refreshable_catalog`: it fetches the
        list anew instead of reading a kept copy.  It is passed only to such providers, so a plug-in
        written as ``list_models(self)`` keeps working.
        """

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
