"""Helpers the policy tests share (importable, unlike conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


async def spin(times: int = 20) -> None:
    """Let every ready task run a few steps without moving any clock."""
    for _ in range(times):
        await asyncio.sleep(0)


def busiest_window(events: Sequence[tuple[float, int]], window_s: float) -> int:
    """The largest total weight of events in any half-open window (t - window_s, t].

    The busiest window of any start time can be slid right until it ends at an
    event, so checking the windows that end at each event covers them all.  An
    event at ``s`` is inside the window ending at ``t`` when ``s + window_s > t``,
    the same comparison the limiter uses to expire it.
    """
    times = [t for t, _ in events]
    assert times == sorted(times), "events must be in time order"
    prefix = [0]
    for _, weight in events:
        prefix.append(prefix[-1] + weight)
    best, first = 0, 0
    for end, t in enumerate(times):
        while times[first] + window_s <= t:
            first += 1
        best = max(best, prefix[end + 1] - prefix[first])
    return best
