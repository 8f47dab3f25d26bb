"""The deployment: the unit the catalog lists, the router picks and the configuration declares."""

from __future__ import annotations

from dataclasses import dataclass

from .provider_routing import ProviderRouting
from .types import Usage


@dataclass(frozen=True)
class Deployment:
    """One way to reach a model: a provider, the provider's own model id, pricing, context and limits.

    Declared once: TOML ``[models]`` entries are parsed straight into it, and the
    catalog, router and cost accounting read it.
    """

    id: str
    provider: str
    upstream: str
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    context_length: int | None = None
    weight: float = 1.0
    rpm: float | None = None
    tpm: float | None = None
    max_in_flight: int | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    path: str | None = None
    """A local GGUF file (``provider = "local"`` only)."""
    region: str | None = None
    """Where it runs (``us-east-1``, ``europe-west4``): its own ``region``, else its provider's (the catalog
    fills it in), else None when nobody says."""
    cached_input_price_per_mtok: float | None = None
    """Input tokens read from the provider's prompt cache (None: not declared, so such a call's cost is unknown)."""
    cache_write_price_per_mtok: float | None = None
    """Input tokens written to the provider's prompt cache (Anthropic bills them above the input price)."""
    request_fee_usd: float | None = None
    """A fixed charge per call on top of the tokens (None: none declared, none counted)."""

    @property
    def blended_price_per_mtok(self) -> float | None:
        """Input plus output price: one number to rank deployments by cost."""
        if self.input_price_per_mtok is None or self.output_price_per_mtok is None:
            return None
        return self.input_price_per_mtok + self.output_price_per_mtok

    def cost_usd(self, usage: Usage) -> float | None:
        """Catalog-priced cost of a call: uncached input, cache reads and writes each at their own price,
        output (reasoning included) at the output price, plus the request fee.  None when a price the call
        needs or a token count is unknown: never a guess."""
        priced = self._priced(usage)
        if priced is None:
            return None
        return sum(tokens * price for tokens, price in priced) / 1e6 + (self.request_fee_usd or 0.0)

    def cache_discount_usd(self, usage: Usage) -> float | None:
        """What the prompt cache took off `cost_usd`: cache reads at the input price minus at the cached price,
        less the premium on cache writes (so negative for a call that only wrote the cache).  None when the
        provider reported no cache counts or the prices are unknown."""
        if usage.cached_input_tokens is None and usage.cache_write_tokens is None:
            return None
        if self._priced(usage) is None:
            return None
        full = self.input_price_per_mtok or 0.0
        reads, writes = usage.cached_input_tokens or 0, usage.cache_write_tokens or 0
        read_price = self.cached_input_price_per_mtok if reads else full
        write_price = self.cache_write_price_per_mtok if writes else full
        return (reads * (full - (read_price or 0.0)) + writes * (full - (write_price or 0.0))) / 1e6

    def _priced(self, usage: Usage) -> list[tuple[int, float]] | None:
        """(tokens, price per million) for each kind of token the call used, or None when one is unknown."""
        if usage.input_tokens is None or usage.output_tokens is None:
            return None
        reads, writes = usage.cached_input_tokens or 0, usage.cache_write_tokens or 0
        pairs = [
            (usage.input_tokens - reads - writes, self.input_price_per_mtok),
            (usage.output_tokens, self.output_price_per_mtok),
            (reads, self.cached_input_price_per_mtok if reads else 0.0),
            (writes, self.cache_write_price_per_mtok if writes else 0.0),
        ]
        if any(price is None for _, price in pairs):
            return None
        return [(tokens, price) for tokens, price in pairs if price is not None]


@dataclass(frozen=True)
class ModelRules:
    """What a ``[models.NAME]`` table says about every request for that name, whichever deployment serves it.

    ``regions`` is a residency rule (glob patterns) that holds for the whole request, fallback list included;
    ``provider_routing`` is the OpenRouter provider preferences its OpenRouter deployments are sent.
    """

    regions: tuple[str, ...] = ()
    provider_routing: ProviderRouting | None = None
