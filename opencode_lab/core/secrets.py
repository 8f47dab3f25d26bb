"""Keep API keys out of everything a user can see.

Every key the configuration loads is registered here; `redact()` replaces any
registered key in a string with a fixed mask.  Error messages, log records and
reprs pass through it, so a key pasted into an exception by a vendor (some echo
the ``Authorization`` header back) still never reaches a notebook cell.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_lock = threading.Lock()
_known: set[str] = set()


class Secret:
    """A string that will not print itself.

    ``repr``/``str`` show a mask; ``reveal()`` is the one way to the value, used
    only where the key is put into an HTTP header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def register(value: str) -> None:
    """Remember *value* as a secret; very short strings are ignored (they would mask ordinary text)."""
    if value and len(value) >= 8:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return *text* with every registered secret replaced by the mask."""
    if not _known or not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that renders the message and masks secrets in it, arguments included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def get_logger(name: str) -> logging.Logger:
    """A module logger whose records are redacted before any handler sees them.

    Logger filters do not apply to records propagated from child loggers, so
    every module asks for its own logger here instead of sharing one filter.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
