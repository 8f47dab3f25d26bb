"""OpenRouter's provider preferences: the ``provider`` object of its requests, checked before anything is sent.

OpenRouter serves one model id from several upstream providers; the ``provider`` object
says which may serve a request and in what order (``order``, ``only``, ``ignore``,
``allow_fallbacks``, ``sort``), and what they may do with the prompt (``data_collection``,
``zdr``).  Its server ignores or refuses a misspelt key only when the call is made (a
``data_collectoin = "deny"`` that is silently dropped is a data agreement broken), so
every key and value is checked here, against the fields its documentation lists, and an
unknown key is refused naming the closest valid one.  Preferences set at several levels
(provider table, model, call) are merged key by key, the narrower level winning.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequestError

SORTS = ("price", "throughput", "latency")
DATA_COLLECTION = ("allow", "deny")
QUANTIZATIONS = ("int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown")
MAX_PRICE_KEYS = ("prompt", "completion", "request", "image")
#: the most provider slugs one list may hold (OpenRouter has a few dozen upstreams)
MAX_SLUGS = 256


def _flag(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{where} must be true or false, got {value!r}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(where: str, value: object) -> str:
        if value not in options:
            raise InvalidRequestError(f"{where} must be one of {', '.join(map(repr, options))}, got {value!r}")
        return str(value)

    return check


def _words(options: tuple[str, ...] | None) -> Callable[[str, object], tuple[str, ...]]:
    """A list of provider slugs (any non-empty words) or of *options*; one string is a list of one."""

    def check(where: str, value: object) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items or len(items) > MAX_SLUGS:
            raise InvalidRequestError(f"{where} must be a non-empty list of names, got {value!r}")
        for item in items:
            if not isinstance(item, str) or not item.strip() or not item.isprintable():
                raise InvalidRequestError(f"{where} must hold non-empty names, got {item!r}")
            if options is not None and item not in options:
                raise InvalidRequestError(f"{where} has {item!r}{_hint(item, options)}")
        return tuple(items)

    return check


def _prices(where: str, value: object) -> tuple[tuple[str, float], ...]:
    """``max_price``: USD per million tokens (``prompt``, ``completion``) or per request or image."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidRequestError(f"{where} must be a table such as {{prompt = 1, completion = 2}}, got {value!r}")
    out = []
    for key, price in value.items():
        if key not in MAX_PRICE_KEYS:
            raise InvalidRequestError(f"{where} has unknown key {key!r}{_hint(str(key), MAX_PRICE_KEYS)}")
        if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
            raise InvalidRequestError(f"{where}.{key} must be a price of at least 0, got {price!r}")
        out.append((str(key), price))
    return tuple(out)


#: every field of the ``provider`` object, with its check (written once: validation, errors, docs)
FIELDS: dict[str, Callable[[str, object], Any]] = {
    "order": _words(None),
    "only": _words(None),
    "ignore": _words(None),
    "allow_fallbacks": _flag,
    "require_parameters": _flag,
    "data_collection": _choice(DATA_COLLECTION),
    "zdr": _flag,
    "enforce_distillable_text": _flag,
    "quantizations": _words(QUANTIZATIONS),
    "sort": _choice(SORTS),
    "max_price": _prices,
}


@dataclass(frozen=True)
class ProviderRouting:
    """Checked provider preferences; hashable (a cache key holds them) and sent as `body` unchanged."""

    items: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, value: object, name: str = "provider_routing") -> ProviderRouting:
        """From a mapping (a dict, a TOML table) or its JSON text; `InvalidRequestError` names the culprit."""
        if isinstance(value, ProviderRouting):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise InvalidRequestError(f"{name} must be a table or JSON object text, got {value!r}") from None
        if not isinstance(value, Mapping):
            raise InvalidRequestError(f"{name} must be a table such as {{data_collection = 'deny'}}, got {value!r}")
        items = []
        for key, raw in value.items():
            if key not in FIELDS:
                raise InvalidRequestError(f"{name} has unknown key {key!r}{_hint(str(key), tuple(FIELDS))}")
            items.append((str(key), FIELDS[key](f"{name}.{key}", raw)))
        return cls(tuple(items))

    def body(self) -> dict[str, Any]:
        """The ``provider`` object as OpenRouter takes it."""
        return {key: _json(value) for key, value in self.items}

    def over(self, base: ProviderRouting | None) -> ProviderRouting:
        """These preferences on top of *base*'s: a key set here replaces base's, the others stay."""
        if base is None:
            return self
        mine = dict(self.items)
        return ProviderRouting((*((k, v) for k, v in base.items if k not in mine), *self.items))


def merged(*levels: ProviderRouting | None) -> ProviderRouting | None:
    """The preferences of several levels, broadest first (each later one wins key by key); None when none is set."""
    out: ProviderRouting | None = None
    for level in levels:
        if level is not None:
            out = level.over(out)
    return out


def _json(value: Any) -> Any:
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return dict(value)
    return list(value) if isinstance(value, tuple) else value


def _hint(name: str, valid: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(valid)})"
