"""The deployment: the unit the catalog lists, the router picks and the configuration declares."""

from __future__ import annotations

from dataclasses import dataclass

from .provider_routing import ProviderRouting


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

    @property
    def blended_price_per_mtok(self) -> float | None:
        """Input plus output price: one number to rank deployments by cost."""
        if self.input_price_per_mtok is None or self.output_price_per_mtok is None:
            return None
        return self.input_price_per_mtok + self.output_price_per_mtok

    def cost_usd(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """Catalog-priced cost of a call, or None when price or token counts are unknown."""
        if self.input_price_per_mtok is None or self.output_price_per_mtok is None:
            return None
        if input_tokens is None or output_tokens is None:
            return None
        return (input_tokens * self.input_price_per_mtok + output_tokens * self.output_price_per_mtok) / 1e6


@dataclass(frozen=True)
class ModelRules:
    """What a ``[models.NAME]`` table says about every request for that name, whichever deployment serves it.

    ``regions`` is a residency rule (glob patterns) that holds for the whole request, fallback list included;
    ``provider_routing`` is the OpenRouter provider preferences its OpenRouter deployments are sent.
    """

    regions: tuple[str, ...] = ()
    provider_routing: ProviderRouting | None = None
