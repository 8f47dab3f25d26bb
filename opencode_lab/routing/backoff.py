"""Retry timing: jittered exponential back-off.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the
retries of many concurrent requests instead of letting them hit a recovering
server in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the router tries one request before giving up."""

    max_retries: int = 2
    """Extra attempts on the same deployment for a retryable error."""
    base_s: float = 0.5
    cap_s: float = 8.0
    deadline_s: float = 120.0
    """Total budget per request across every retry and rotation."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"base_s and cap_s must be >= 0, got {self.base_s!r}, {self.cap_s!r}")
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, got {self.deadline_s!r}")

    def ceiling(self, retry: int) -> float:
        """The largest back-off for retry number ``retry`` (from 0): min(cap, base * 2**retry)."""
        if retry < 0:
            raise ValueError(f"retry must be >= 0, got {retry!r}")
        if retry >= 64:  # 2**retry would overflow a float long after passing any sane cap
            return self.cap_s
        return min(self.cap_s, self.base_s * (1 << retry))

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**retry)), retry counted from 0."""
        return rng.uniform(0.0, self.ceiling(retry))
