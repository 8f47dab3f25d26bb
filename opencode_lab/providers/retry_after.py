"""The headers servers use to say "come back later": parsed here, at the HTTP edge.

Providers turn them into ``RateLimitError.retry_after`` seconds; the router
only ever sees that number.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds ("2", "1.5") or an HTTP-date.

    A date is measured against wall-clock ``now`` (default `time.time()`); a past
    date or negative number gives 0.0; anything unparseable gives None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # Python < 3.10 returned None instead of raising
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown origin
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(text: str) -> float | None:
    """Go-style durations as OpenAI sends them: "1s", "6m0s", "250ms", "1h2m3.5s"; a bare number is seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total if text else None


def parse_ratelimit_reset(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from now until a rate limit resets, from OpenRouter / OpenAI style headers, or None.

    ``X-RateLimit-Reset`` (OpenRouter) is an epoch time in milliseconds or seconds,
    told apart by magnitude (small values are taken as seconds from now).
    Otherwise ``x-ratelimit-reset-requests`` / ``-tokens`` (OpenAI) are durations;
    the tokens one is preferred only when its ``remaining`` header says tokens ran out.
    Header names are matched case-insensitively; ``now`` is wall-clock (default `time.time()`).
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    epoch = lower.get("x-ratelimit-reset")
    if epoch is not None:
        try:
            reset = float(epoch.strip())
        except ValueError:
            reset = math.nan
        if math.isfinite(reset):
            if reset >= 1e11:  # epoch milliseconds (1e11 ms is 1973)
                reset /= 1000.0
            elif reset < 1e8:  # too small for an epoch: a delay in seconds
                return max(0.0, reset)
            return max(0.0, reset - (time.time() if now is None else now))
        seconds = _parse_duration(epoch)
        if seconds is not None:
            return max(0.0, seconds)
    tokens_out = lower.get("x-ratelimit-remaining-tokens", "").strip() == "0"
    requests_out = lower.get("x-ratelimit-remaining-requests", "").strip() == "0"
    names = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
    if tokens_out and not requests_out:
        names.reverse()
    for name in names:
        raw = lower.get(name)
        seconds = _parse_duration(raw) if raw is not None else None
        if seconds is not None:
            return max(0.0, seconds)
    return None
