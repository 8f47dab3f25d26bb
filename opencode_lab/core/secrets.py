"""Keep API keys out of everything a user can see.

Every key the configuration loads is registered here; `redact()` replaces any
registered key in a string with a fixed mask.  Error messages, log records and
reprs pass through it, so a key pasted into an exception by a vendor (some echo
the ``Authorization`` header back) still never reaches a notebook cell.  Answers
pass through it too (`StreamRedactor` for streams), so a key a server echoes
inside an answer is masked before it is cached, shown or returned.  Credentials
in a URL (``https://user:pass@host``, ``?key=...``) are masked by their position,
whatever their length, registered or not.  A key shorter than 8 characters
(``EMPTY``, a local server's ``x``) is masked too, but only where it stands as a
word of its own, so that it does not eat ordinary text that happens to contain it.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
#: keys at least this long are masked wherever they appear; shorter ones only as a word of their own
SHORT = 8
_lock = threading.Lock()
_known: set[str] = set()
#: `_known`, longest first (a key that contains another is masked whole), rebuilt when a secret is registered
_longest_first: tuple[str, ...] = ()
_short: set[str] = set()
_short_words: re.Pattern[str] | None = None
_USERINFO = re.compile(r"(?<=://)[^\s/?#]+@")  # greedy: an unescaped "@" inside a password is masked too
#: a URL query parameter that carries a credential (``?key=``, ``&api_key=``, ``access_token``, ``X-Amz-Signature``)
_QUERY_CREDENTIAL = re.compile(
    r"(?i)(?<=[?&])((?:[\w.~-]*[_.-])?(?:key|apikey|token|secret|password|passwd|sig|signature|auth)=)[^&#\s'\"]+"
)


class Secret:
    """A string that will not print itself.

    ``repr``/``str`` show a mask; ``reveal()`` is the one way to the value, used
    only where the key is put into an HTTP header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str, *, mask_short: bool = True) -> None:
        """*mask_short*: mask the value even when it is shorter than `SHORT` (a key is; a header such as
        ``X-Version: v1`` need not be, and masking ``v1`` would garble every URL in a message)."""
        self._value = value
        if mask_short or len(value) >= SHORT:
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
    """Remember *value* as a secret; one shorter than `SHORT` is masked only as a word of its own."""
    global _short_words, _longest_first
    if not value:
        return
    with _lock:
        if len(value) >= SHORT:
            if value not in _known:
                _known.add(value)
                _longest_first = tuple(sorted(_known, key=len, reverse=True))
        elif value not in _short:
            _short.add(value)
            alternatives = "|".join(re.escape(v) for v in sorted(_short, key=len, reverse=True))
            _short_words = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def redact(text: str, *, urls: bool = True) -> str:
    """Return *text* with every registered secret replaced by the mask.

    With *urls* (the default) the credentials of any URL are masked too, by position, registered or not:
    its user-info (``https://***@host``) and query parameters such as ``?key=***``; answers pass
    ``urls=False``, so a URL a model wrote stays as written.
    """
    if not text:
        return text
    if _known or _short:
        known, words = _longest_first, _short_words  # rebound whole, never changed in place: no lock needed
        for value in known:
            if value in text:
                text = text.replace(value, MASK)
        if words is not None:
            text = words.sub(MASK, text)
    if urls and "://" in text:
        if "@" in text:
            text = _USERINFO.sub(f"{MASK}@", text)
        if "=" in text:
            text = _QUERY_CREDENTIAL.sub(rf"\1{MASK}", text)
    return text


class SecretURL(str):
    """A URL that may carry credentials (``https://user:pass@host/v1``).

    Its ``repr`` masks the user-info, as `httpx.URL`'s does, so settings and
    configs display safely; the string itself is the URL, for the HTTP client.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return redact(str.__repr__(self))


class StreamRedactor:
    """Redacts a text that arrives in pieces: a secret split across two pieces is still masked.

    `feed` returns what may be shown now and holds back a tail that could be the
    start of a secret; `flush` returns that tail once the text is complete.  A
    stream cut before `flush` never shows its held tail (it may be most of a key).
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = redact(self._held + piece, urls=False)
        keep = _secret_start(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        text, self._held = self._held, ""
        return text


def _secret_start(text: str) -> int:
    """Length of the longest end of *text* that is the beginning of a registered secret."""
    with _lock:
        known = [*_known, *_short]
    longest = 0
    for value in known:
        start = text.find(value[0], max(0, len(text) - len(value) + 1))
        while start != -1 and len(text) - start > longest:
            if value.startswith(text[start:]):
                longest = len(text) - start
                break
            start = text.find(value[0], start + 1)
    return longest


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
