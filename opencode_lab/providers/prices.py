"""The bundled price table: what a direct provider's model costs when its own catalog does not say.

OpenAI, Anthropic and Google publish prices on web pages, not in their ``/models``
lists, so a cost column for ``openai/gpt-4o-mini`` needs a table.  Prices change:
the table is dated, each vendor's block names its source page, and a user
overrides any entry in TOML (a ``[models."openai/gpt-4o-mini"]`` table with
``provider``, ``upstream``, ``input_price`` and ``output_price``).  A model not
in the table has an unknown cost (NaN), never 0.

Prices are USD per million tokens for standard (non-batch) text input and
output; ``cached`` is the price of input read from the vendor's prompt cache and
``cache_write`` of input written to it (Anthropic charges a premium; the others
charge writes as input).  Gemini's hourly storage charge for explicit caches is
not per call and is not counted.  ``images`` says whether the model accepts image input, ``reasons`` whether it
takes reasoning controls (a model the table knows not to reason is refused them before a call).
"""

from __future__ import annotations

import re
from typing import NamedTuple, TypedDict


class Pricing(TypedDict):
    """The `Deployment` pricing fields a bundled price fills."""

    input_price_per_mtok: float
    output_price_per_mtok: float
    cached_input_price_per_mtok: float | None
    cache_write_price_per_mtok: float | None

#: the day the table was last checked against the sources below
PRICES_AS_OF = "2025-07-01"


class Price(NamedTuple):
    input_per_mtok: float
    output_per_mtok: float
    cached_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    images: bool = True
    reasons: bool = False
    """Takes reasoning controls (effort or a thinking budget)."""

    def deployment_fields(self) -> Pricing:
        """The `Deployment` pricing fields this price fills."""
        return {
            "input_price_per_mtok": self.input_per_mtok,
            "output_price_per_mtok": self.output_per_mtok,
            "cached_input_price_per_mtok": self.cached_per_mtok,
            "cache_write_price_per_mtok": self.cache_write_per_mtok,
        }


def _anthropic(input_per_mtok: float, output_per_mtok: float, *, reasons: bool = False) -> Price:
    """Anthropic's rule: cache reads cost a tenth of input, (5-minute) cache writes a quarter more."""
    read, write = round(input_per_mtok * 0.1, 6), round(input_per_mtok * 1.25, 6)
    return Price(input_per_mtok, output_per_mtok, read, write, reasons=reasons)


_TABLE: dict[str, dict[str, Price]] = {
    # https://openai.com/api/pricing/ (standard tier; "cached input"; cache writes cost nothing extra)
    "openai": {
        "gpt-4o": Price(2.50, 10.00, 1.25),
        "gpt-4o-mini": Price(0.15, 0.60, 0.075),
        "gpt-4.1": Price(2.00, 8.00, 0.50),
        "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
        "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
        "o3": Price(2.00, 8.00, 0.50, reasons=True),
        "o3-mini": Price(1.10, 4.40, 0.55, images=False, reasons=True),
        "o4-mini": Price(1.10, 4.40, 0.275, reasons=True),
        "gpt-4-turbo": Price(10.00, 30.00),
        "gpt-3.5-turbo": Price(0.50, 1.50, images=False),
    },
    # https://docs.anthropic.com/en/docs/about-claude/pricing (cache reads 0.1x, 5-minute writes 1.25x input)
    "anthropic": {
        "claude-opus-4": _anthropic(15.00, 75.00, reasons=True),
        "claude-opus-4-0": _anthropic(15.00, 75.00, reasons=True),
        "claude-sonnet-4": _anthropic(3.00, 15.00, reasons=True),
        "claude-sonnet-4-0": _anthropic(3.00, 15.00, reasons=True),
        "claude-3-7-sonnet": _anthropic(3.00, 15.00, reasons=True),
        "claude-3-5-sonnet": _anthropic(3.00, 15.00),
        "claude-3-5-haiku": _anthropic(0.80, 4.00),
        "claude-3-opus": _anthropic(15.00, 75.00),
        "claude-3-haiku": _anthropic(0.25, 1.25),
    },
    # https://ai.google.dev/gemini-api/docs/pricing (paid tier, prompts up to 200k / 128k tokens; "context caching")
    "gemini": {
        "gemini-2.5-pro": Price(1.25, 10.00, 0.31, reasons=True),
        "gemini-2.5-flash": Price(0.30, 2.50, 0.075, reasons=True),
        "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025, reasons=True),
        "gemini-2.0-flash": Price(0.10, 0.40, 0.025),
        "gemini-2.0-flash-lite": Price(0.075, 0.30),
        "gemini-1.5-pro": Price(1.25, 5.00, 0.3125),
        "gemini-1.5-flash": Price(0.075, 0.30, 0.01875),
    },
    # https://aws.amazon.com/bedrock/pricing/ (on-demand, US East (N. Virginia)); an inference profile
    # (us., eu., apac., global.) is priced as its model
    "bedrock": {
        "anthropic.claude-sonnet-4-20250514-v1:0": Price(3.00, 15.00),
        "anthropic.claude-3-7-sonnet-20250219-v1:0": Price(3.00, 15.00),
        "anthropic.claude-3-5-sonnet-20241022-v2:0": Price(3.00, 15.00),
        "anthropic.claude-3-5-haiku-20241022-v1:0": Price(0.80, 4.00),
        "anthropic.claude-3-haiku-20240307-v1:0": Price(0.25, 1.25),
        "amazon.nova-pro-v1:0": Price(0.80, 3.20),
        "amazon.nova-lite-v1:0": Price(0.06, 0.24),
        "amazon.nova-micro-v1:0": Price(0.035, 0.14, images=False),
        "meta.llama3-1-8b-instruct-v1:0": Price(0.22, 0.22, images=False),
        "meta.llama3-1-70b-instruct-v1:0": Price(0.72, 0.72, images=False),
    },
}

#: version suffixes that name a snapshot of a listed model: ``-2024-07-18``, ``-20241022``, ``-latest``, ``-001``
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest|\d{3})$")
#: a Bedrock cross-region inference profile's prefix
_PROFILE = re.compile(r"^(?:us|eu|apac|us-gov|global)\.")


def bundled_price(vendor: str, model: str) -> Price | None:
    """The table's price of *model* at *vendor* (a provider's type: a dated snapshot id falls back to its
    model, a Bedrock inference profile to its model, a Vertex model to its maker's price), or None."""
    if vendor == "vertex":  # Google's and Anthropic's models, priced as their makers price them
        vendor, model = ("anthropic", model.partition("@")[0]) if model.startswith("claude") else ("gemini", model)
    table = _TABLE.get(vendor, {})
    model = _PROFILE.sub("", model) if vendor == "bedrock" else model
    while True:
        found = table.get(model)
        if found is not None:
            return found
        shorter = _SNAPSHOT.sub("", model)
        if shorter == model:
            return None
        model = shorter
