"""Strict readers shared by the native (non-OpenAI) wire formats: a wrong shape is a `WireError` naming it."""

from __future__ import annotations

from typing import Any

from .openai_wire import WireError


def obj(value: Any, where: str) -> dict[str, Any]:
    """*value* when it is a JSON object."""
    if not isinstance(value, dict):
        raise WireError(f"{where} is not an object")
    return value


def text(value: Any, where: str) -> str:
    """*value* when it is a JSON string."""
    if not isinstance(value, str):
        raise WireError(f"{where} is not text")
    return value
