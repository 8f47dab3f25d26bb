"""Time as a dependency, so every policy can be tested without real sleeping.

Policies read `Clock.now` and wait with `Clock.sleep`; production code uses
`MonotonicClock`, tests (ours and users') use `ManualClock`, whose sleep moves
time forward instantly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and an awaitable sleep on the same time line."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """Real time: `time.monotonic` and `asyncio.sleep` (immune to wall-clock jumps)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """Time that only moves when told to, so back-off and rate-limit waits run instantly in tests.

    ``sleep(s)`` advances time by ``s`` and yields once to the event loop; with
    several tasks sleeping concurrently each sleep adds its own ``s`` (time runs
    faster, never backwards), which keeps tests fast and deterministic.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards ({seconds!r} s)")
        self._t += seconds

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._t += seconds
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._t!r})"
