"""Strict JSON readers shared by every wire format, and the two ways a body can go wrong.

A body that breaks its format is a `WireError` naming the field; a well-formed error report
(an ``error`` object inside a 200, an ``error`` event, a blocked prompt) is `Reported`.  Codecs
raise both; the HTTP edge (`opencode_lab.providers.http`) turns them into our errors, once, so a
``TypeError`` or ``RecursionError`` never surfaces three layers up and ``NaN`` never becomes a token count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from ..core.errors import InvalidRequestError, ProviderError
from ..core.logprobs import TokenLogprob, checked
from ..core.types import Usage


class WireError(ValueError):
    """A body that breaks the wire format; the message names the field."""


class Reported(Exception):
    """An error the vendor reported in a well-formed body.

    *status* is the HTTP status it stands for (None: unknown, a server-side failure); *error*, when
    given, is the class it always means, whatever text came before it.
    """

    def __init__(self, message: str, status: int | None = None, *, error: type[ProviderError] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def pass_options(body: dict[str, Any], options: Mapping[str, Any], reserved: frozenset[str], where: str) -> None:
    """Add the caller's provider-specific *options* to *body* (or a part of it, named *where* in errors).

    An option never overrides what the request itself set or a field the codec owns (*reserved*): such a
    clash is refused naming it, so a cached answer's key always says what was sent."""
    for key, value in options.items():
        if key in body or key in reserved:
            raise InvalidRequestError(
                f"option {key!r} would override the {where} field the request itself sets; use the matching "
                "parameter (temperature=, max_tokens=, reasoning_effort=, ...) instead"
            )
        body[key] = value


def loads(content: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object, or `WireError` (bad JSON, bad UTF-8, nesting deeper than Python's recursion limit)."""
    try:
        data = json.loads(content)
    except RecursionError:
        raise WireError(f"{what} is JSON nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        raise WireError(f"{what} is not JSON: {content[:80]!r}") from None
    if not isinstance(data, dict):
        raise WireError(f"{what} is not a JSON object but {kind(data)}")
    return data


def obj(value: object, where: str) -> dict[str, Any]:
    """*value* when it is a JSON object."""
    if not isinstance(value, dict):
        raise WireError(f"{where} is not an object")
    return value


def text(value: object, where: str) -> str:
    """*value* when it is a JSON string."""
    if not isinstance(value, str):
        raise WireError(f"{where} is not text")
    return value


def usage(raw: object, where: str, input_key: str, output_key: str, cost_key: str | None = None) -> Usage:
    """Token counts (and the cost, when the format has one) of a usage object named *where*;
    missing or null values are unknown (None), never 0."""
    if raw is None:
        return Usage()
    if not isinstance(raw, dict):
        raise WireError(f"{where} is {kind(raw)}, not an object")
    return Usage(
        input_tokens=count(raw.get(input_key), f"{where}.{input_key}"),
        output_tokens=count(raw.get(output_key), f"{where}.{output_key}"),
        cost_usd=None if cost_key is None else amount(raw.get(cost_key), f"{where}.{cost_key}"),
    )


def nested_count(raw: Mapping[str, Any], where: str, outer: str, inner: str) -> int | None:
    """The count at ``raw[outer][inner]`` (OpenAI's ``*_tokens_details``); None when either is absent."""
    details = raw.get(outer)
    if details is None:
        return None
    return count(obj(details, f"{where}.{outer}").get(inner), f"{where}.{outer}.{inner}")


def part_of(total: int | None, part: int | None, where: str, of: str) -> int | None:
    """*part*, checked to be no more than the *total* it is a part of (cached of input, reasoning of output)."""
    if part is not None and total is not None and part > total:
        raise WireError(f"{where} is {part}, more than the {total} {of} it is part of")
    return part


def token_logprob(token: object, logprob: object, top: list[tuple[object, object]], where: str) -> TokenLogprob:
    """One token's log-probability entry, or a `WireError` naming *where* (a probability above 1, text that is
    not text)."""
    try:
        return checked(token, logprob, top)
    except ValueError as exc:
        raise WireError(f"{where}: {exc}") from None


def count(value: object, where: str) -> int | None:
    """A token count: a whole number of at least 0, or None when absent."""
    if value is None:
        return None
    if not finite(value) or value < 0 or value != int(value):
        raise WireError(f"{where} is {value!r}, not a token count")
    return int(value)


def amount(value: object, where: str) -> float | None:
    """An amount of money: a finite number of at least 0, or None when absent."""
    if value is None:
        return None
    if not finite(value) or value < 0:
        raise WireError(f"{where} is {value!r}, not an amount")
    return float(value)


def served_model(data: Mapping[str, Any], asked: str) -> str:
    """The model that answered, as the server names it; the one asked for when it does not say."""
    model = data.get("model")
    return model if isinstance(model, str) and model else asked


def served_upstream(data: Mapping[str, Any]) -> str | None:
    """The upstream provider that served a routed call (OpenRouter's ``provider`` field); None when absent."""
    upstream = data.get("provider")
    return upstream if isinstance(upstream, str) and upstream.strip() and upstream.isprintable() else None


def embedded_error(data: Mapping[str, Any]) -> Reported | None:
    """An ``error`` object inside a 200 (OpenRouter and Gemini send these), else None.

    Its status is the object's ``code`` when that is an HTTP-like number (``400`` or ``"400"``).
    """
    error = data.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    status = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else None
    return Reported(f"provider returned an error in a 200 response: {message or error}", status)


def error_message(content: bytes) -> str:
    """What an error body says, as briefly as it says it (JSON ``error.message`` or the text itself)."""
    try:
        data = loads(content, "error body")
    except WireError:
        return content[:200].decode("utf-8", "replace").strip()
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or data.get("message") or data.get("detail") or "")


def context_length(raw: object) -> int | None:
    """A catalog's context length: a positive whole number, else dropped (None)."""
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    return int(raw) if finite(raw) and raw > 0 and raw == int(raw) else None


def finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def kind(value: object) -> str:
    """``null``, ``a str``, ``an int``: what a message says a value was."""
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
