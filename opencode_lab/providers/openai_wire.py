"""The OpenAI chat-completions wire format, read strictly.

Every field a caller relies on is checked for its type and range here, so a body
that breaks the format becomes a `WireError` naming the field (the provider raises
it as `MalformedResponseError`), never a ``TypeError`` or ``RecursionError`` three
layers up, and never a number such as ``NaN`` tokens in a results frame.
Catalog entries (``/models``) are the exception: a bad value there is dropped,
because one odd entry must not hide the other models.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..core.types import Completion, Usage


class WireError(ValueError):
    """A body that breaks the wire format; the message names the field."""


def loads(content: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object, or `WireError` (bad JSON, bad UTF-8, nesting deeper than Python's recursion limit)."""
    try:
        data = json.loads(content)
    except RecursionError:
        raise WireError(f"{what} is JSON nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        raise WireError(f"{what} is not JSON: {content[:80]!r}") from None
    if not isinstance(data, dict):
        raise WireError(f"{what} is not a JSON object but {_kind(data)}")
    return data


def completion(data: Mapping[str, Any], asked: str) -> Completion:
    """The answer in a non-streamed response: first choice's text and finish reason, served model, usage."""
    found = choices(data)
    if not found:
        raise WireError("response has no choices")
    first = found[0]
    return Completion(
        message_text(first.get("message")), served_model(data, asked), finish_reason(first), usage(data.get("usage"))
    )


def message_text(message: Any) -> str:
    """The text of a ``choices[0].message``; a tool-call answer without text is ``""``."""
    if not isinstance(message, dict):
        raise WireError(f"choices[0].message is {_kind(message)}, not an object")
    content = message.get("content")
    if content is None and message.get("tool_calls"):
        return ""
    if content is None:
        raise WireError("choices[0].message has no content")
    return content_text(content, "choices[0].message.content")


def content_text(content: Any, where: str) -> str:
    """Message or delta content: a string, or a list of text parts (joined); anything else is malformed."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise WireError(f"{where} is {_kind(content)}, not text")
    texts = []
    for part in content:
        if not isinstance(part, dict):
            raise WireError(f"{where} has a part that is {_kind(part)}, not an object")
        if part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
            raise WireError(f"{where} has a part that is not text (type {part.get('type')!r})")
        texts.append(part["text"])
    return "".join(texts)


def choices(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``choices`` as a list of objects (absent or null: none)."""
    raw = data.get("choices")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise WireError(f"choices is {_kind(raw)}, not a list of objects")
    return raw


def finish_reason(choice: Mapping[str, Any]) -> str | None:
    raw = choice.get("finish_reason")
    if raw is not None and not isinstance(raw, str):
        raise WireError(f"finish_reason is {_kind(raw)}, not a string")
    return raw


def delta_text(choice: Mapping[str, Any]) -> str:
    """The text of one streamed ``choices[i].delta`` (no delta, or null content: ``""``)."""
    delta = choice.get("delta")
    if delta is None:
        return ""
    if not isinstance(delta, dict):
        raise WireError(f"a stream delta is {_kind(delta)}, not an object")
    content = delta.get("content")
    return "" if content is None else content_text(content, "delta.content")


def served_model(data: Mapping[str, Any], asked: str) -> str:
    """The model that answered, as the server names it; the one asked for when it does not say."""
    model = data.get("model")
    return model if isinstance(model, str) and model else asked


def usage(raw: Any) -> Usage:
    """Token counts and cost; missing or null values are unknown (None), never 0."""
    if raw is None:
        return Usage()
    if not isinstance(raw, dict):
        raise WireError(f"usage is {_kind(raw)}, not an object")
    return Usage(
        input_tokens=_count(raw, "prompt_tokens"),
        output_tokens=_count(raw, "completion_tokens"),
        cost_usd=_cost(raw),
    )


def _count(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _finite(value) or value < 0 or value != int(value):
        raise WireError(f"usage.{key} is {value!r}, not a token count")
    return int(value)


def _cost(raw: Mapping[str, Any]) -> float | None:
    value = raw.get("cost")
    if value is None:
        return None
    if not _finite(value) or value < 0:
        raise WireError(f"usage.cost is {value!r}, not an amount")
    return float(value)


def embedded_error(data: Mapping[str, Any]) -> tuple[int | None, str] | None:
    """``(status, message)`` of an ``error`` object inside a 200 (OpenRouter sends these), else None.

    The status is the object's ``code`` when it is an HTTP-like number (``400`` or ``"400"``).
    """
    error = data.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    status = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else None
    return status, str(message or error)


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


def context_length(raw: Any) -> int | None:
    """A catalog's context length: a positive whole number, else dropped (None)."""
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    return int(raw) if _finite(raw) and raw > 0 and raw == int(raw) else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    """``null``, ``a str``, ``an int``: what a message says a value was."""
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
