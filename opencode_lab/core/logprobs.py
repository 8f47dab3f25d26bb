"""Log-probabilities of an answer's tokens: what cascades, calibration and confidence scorers read.

Each provider's own shape (OpenAI ``choices[0].logprobs.content``, Gemini ``logprobsResult``,
llama.cpp's OpenAI-shaped dict) is read at the provider edge into `TokenLogprob` values, so a
reader never needs to know who answered.  Stored and shown as JSON
``[{"token", "logprob", "top": [[token, logprob], ...]}]``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its natural-log probability and the most likely alternatives at its position
    (most likely first; the chosen token is among them when it was in the top)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "top": [list(pair) for pair in self.top]}

    @classmethod
    def from_dict(cls, raw: Any) -> TokenLogprob:
        """The inverse of `to_dict`; a `ValueError` for anything else (a cache entry is checked with it)."""
        if not (isinstance(raw, dict) and raw.keys() == {"token", "logprob", "top"}):
            raise ValueError("not a token log-probability")
        top = raw["top"]
        if not isinstance(top, list) or not all(isinstance(p, list) and len(p) == 2 for p in top):
            raise ValueError("top is not a list of [token, logprob] pairs")
        return cls(_token(raw["token"]), _logprob(raw["logprob"]), tuple((_token(t), _logprob(v)) for t, v in top))


def _token(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"token {value!r} is not text")
    return value


def _logprob(value: Any) -> float:
    """A log-probability: a real number at most 0 (``-inf`` allowed: a token the model ruled out; llama.cpp's
    numpy floats too), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{value!r} is not a log-probability")
    number = float(value)
    if math.isnan(number) or number > 1e-6:
        raise ValueError(f"{value!r} is not a log-probability")
    return min(number, 0.0)


def checked(token: Any, logprob: Any, top: Sequence[tuple[Any, Any]]) -> TokenLogprob:
    """A `TokenLogprob` from values a server sent; a `ValueError` naming the bad one."""
    return TokenLogprob(_token(token), _logprob(logprob), tuple((_token(t), _logprob(v)) for t, v in top))


def to_json(entries: Sequence[TokenLogprob] | None) -> str | None:
    """The frame cell: JSON text, None when none were asked for or returned."""
    if entries is None:
        return None
    return json.dumps([e.to_dict() for e in entries], ensure_ascii=False)
