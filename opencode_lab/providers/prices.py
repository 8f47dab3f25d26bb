"""The bundled price table: what a direct provider's model costs when its own catalog does not say.

OpenAI, Anthropic and Google publish prices on web pages, not in their ``/models``
lists, so a cost column for ``openai/gpt-4o-mini`` needs a table.  Prices change:
the table is dated, each vendor's block names its source page, and a user
overrides any entry in TOML (a ``[models."openai/gpt-4o-mini"]`` table with
``provider``, ``upstream``, ``input_price`` and ``output_price``).  A model not
in the table has an unknown cost (NaN), never 0.

Prices are USD per million tokens for standard (non-batch, non-cached) text
input and output; ``images`` says whether the model accepts image input.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: the day the table was last checked against the sources below
PRICES_AS_OF = "2025-07-01"


class Price(NamedTuple):
    input_per_mtok: float
    output_per_mtok: float
    images: bool = True


_TABLE: dict[str, dict[str, Price]] = {
    # https://openai.com/api/pricing/ (standard tier)
    "openai": {
        "gpt-4o": Price(2.50, 10.00),
        "gpt-4o-mini": Price(0.15, 0.60),
        "gpt-4.1": Price(2.00, 8.00),
        "gpt-4.1-mini": Price(0.40, 1.60),
        "gpt-4.1-nano": Price(0.10, 0.40),
        "o3": Price(2.00, 8.00),
        "o3-mini": Price(1.10, 4.40, images=False),
        "o4-mini": Price(1.10, 4.40),
        "gpt-4-turbo": Price(10.00, 30.00),
        "gpt-3.5-turbo": Price(0.50, 1.50, images=False),
    },
    # https://docs.anthropic.com/en/docs/about-claude/pricing
    "anthropic": {
        "claude-opus-4": Price(15.00, 75.00),
        "claude-opus-4-0": Price(15.00, 75.00),
        "claude-sonnet-4": Price(3.00, 15.00),
        "claude-sonnet-4-0": Price(3.00, 15.00),
        "claude-3-7-sonnet": Price(3.00, 15.00),
        "claude-3-5-sonnet": Price(3.00, 15.00),
        "claude-3-5-haiku": Price(0.80, 4.00),
        "claude-3-opus": Price(15.00, 75.00),
        "claude-3-haiku": Price(0.25, 1.25),
    },
    # https://ai.google.dev/gemini-api/docs/pricing (paid tier, prompts up to 200k / 128k tokens)
    "gemini": {
        "gemini-2.5-pro": Price(1.25, 10.00),
        "gemini-2.5-flash": Price(0.30, 2.50),
        "gemini-2.5-flash-lite": Price(0.10, 0.40),
        "gemini-2.0-flash": Price(0.10, 0.40),
        "gemini-2.0-flash-lite": Price(0.075, 0.30),
        "gemini-1.5-pro": Price(1.25, 5.00),
        "gemini-1.5-flash": Price(0.075, 0.30),
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
