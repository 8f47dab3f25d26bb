"""Per-deployment request budget: RPM, TPM, concurrency and Retry-After pauses.

One `RateLimiter` guards one deployment.  Waiters are served first come, first
served: one waiter at a time (the head of the queue) waits for a concurrency slot
and then for the time budget, so a burst of tasks neither busy-loops nor
overtakes one another.  What `delay` tells a newcomer counts the waiters already
in line: a router choosing between deployments must not see a free deployment in
one whose budget is promised to its queue (issue 22: requests piled into one
deployment's queue while the others had budget, and the three together reached
80-88 % of their combined limit instead of 96 %).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

from .clock import Clock, MonotonicClock


class RateLimiter:
    """Per-deployment budget: requests per window, tokens per window, max in flight, and Retry-After pauses.

    Guarantee: no window of ``window_s`` seconds (any start time) ever holds more
    than ``rpm`` sends, nor more than ``tpm`` tokens (except a single request
    larger than ``tpm``, which is let through alone so it cannot deadlock).
    A send counts from the moment `acquire` admits it until ``window_s`` after its
    `release`: the server receives it somewhere in between, so even when a busy
    event loop delays the actual request, the server never sees more than ``rpm``
    arrivals in a window.  Single event loop, not thread-safe.
    """

    # Sliding-window log, not a token bucket: a bucket of capacity N lets 2N sends into one
    # window (full bucket + refill); aiolimiter is a leaky bucket with the same burst-over-window issue.

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        max_in_flight: int | None = None,
        window_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm), ("max_in_flight", max_in_flight)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        self.rpm = rpm
        self.tpm = tpm
        self.max_in_flight = max_in_flight
        self.window_s = float(window_s)
        self._clock: Clock = clock or MonotonicClock()
        # a send is allowed while at most this many earlier sends are inside the window (count < rpm)
        self._max_prior = None if rpm is None else math.ceil(rpm) - 1
        self._sends: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._token_sum = 0
        self._paused_until = 0.0
        self._in_flight = 0
        self._turn_taken = False  # a waiter is at the head of the queue
        self._queue: deque[asyncio.Future[None]] = deque()
        self._slot_waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rpm={self.rpm}, tpm={self.tpm}, max_in_flight={self.max_in_flight}, "
            f"window_s={self.window_s}, in_flight={self._in_flight}, waiting={len(self._queue)})"
        )

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def saturated(self) -> bool:
        """Every concurrency slot (or the whole RPM budget) is in flight; `delay` cannot tell how long that lasts."""
        if self.max_in_flight is not None and self._in_flight >= self.max_in_flight:
            return True
        return self._max_prior is not None and self._in_flight > self._max_prior

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing is sent (0.0 if never paused)."""
        return self._paused_until

    def is_paused(self) -> bool:
        return self._clock.now() < self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` from now (a 429's Retry-After); extends, never shortens a pause."""
        self._paused_until = max(self._paused_until, self._clock.now() + seconds)

    def resume(self) -> None:
        """End a pause now (``lab.reset``); the RPM/TPM windows are the server's real budget and stay."""
        self._paused_until = 0.0

    def delay(self, tokens: int = 0) -> float:
        """Seconds until ``acquire(tokens)`` could send, ignoring concurrency (see `saturated`); 0.0 = now.

        The requests already waiting go first and each takes one send of the RPM budget: the wait is for
        the budget left after them, and at least a window when they and the sends in flight take it all
        (only a release can start the window that frees it).  Their tokens are not known, so TPM counts
        the log alone."""
        return self._delay(tokens, (1 if self._turn_taken else 0) + len(self._queue))

    def _delay(self, tokens: int, ahead: int) -> float:
        """`delay` for a request with *ahead* waiters before it (the head of the queue has none)."""
        now = self._clock.now()
        self._expire(now)
        wait = self._paused_until - now
        if self._max_prior is not None:
            allowed = self._max_prior - self._in_flight - ahead  # completed sends that may stay in the window
            if allowed < 0:
                wait = max(wait, self.window_s)
            elif allowed < len(self._sends):
                wait = max(wait, self._sends[len(self._sends) - allowed - 1] + self.window_s - now)
        if self.tpm is not None and tokens > 0 and self._tokens and self._token_sum + tokens > self.tpm:
            remaining = self._token_sum
            for t, n in self._tokens:
                remaining -= n
                if remaining + tokens <= self.tpm or remaining == 0:
                    wait = max(wait, t + self.window_s - now)
                    break
        return max(0.0, wait)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait (in arrival order) for a pause to end, RPM/TPM budget and a free slot; then record the send."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens!r}")
        if not self._turn_taken and not self._queue and not self.saturated and self.delay(tokens) == 0.0:
            self._record(tokens)
            return
        await self._take_turn()
        try:
            while self.saturated:
                await self._wait_for_slot()
            while (wait := self._delay(tokens, 0)) > 0:
                await self._clock.sleep(wait)
            # no await between the last check and the record: nobody can take the budget in between
            self._record(tokens)
        finally:
            self._pass_turn()

    def set_max_in_flight(self, value: int | None) -> None:
        """Change the concurrency limit (a cluster gained or lost workers); a raised limit wakes the head waiter."""
        if value is not None and not value > 0:
            raise ValueError(f"max_in_flight must be positive or None, got {value!r}")
        self.max_in_flight = value
        waiter = self._slot_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def release(self) -> None:
        """Give back a concurrency slot taken by `acquire`, waking the head waiter."""
        if self._in_flight <= 0:
            raise RuntimeError("RateLimiter.release() called more times than acquire()")
        if self._max_prior is not None:
            self._sends.append(self._clock.now())
        self._in_flight -= 1
        waiter = self._slot_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def slot(self, tokens: int = 0) -> AbstractAsyncContextManager[None]:
        """``async with limiter.slot(n):`` acquire on entry, release on exit (also on error or cancellation)."""
        return self._slot(tokens)

    @asynccontextmanager
    async def _slot(self, tokens: int) -> AsyncIterator[None]:
        await self.acquire(tokens)
        try:
            yield
        finally:
            self.release()

    def _record(self, tokens: int) -> None:
        now = self._clock.now()
        if tokens > 0:
            self._tokens.append((now, tokens))
            self._token_sum += tokens
        self._in_flight += 1

    def _expire(self, now: float) -> None:
        window, sends, token_log = self.window_s, self._sends, self._tokens
        while sends and sends[0] + window <= now:
            sends.popleft()
        while token_log and token_log[0][0] + window <= now:
            self._token_sum -= token_log.popleft()[1]

    async def _take_turn(self) -> None:
        """FIFO hand-over of the head position; futures instead of asyncio.Lock so no loop is bound at init."""
        if not self._turn_taken:
            self._turn_taken = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._pass_turn()  # the turn was handed to us just as we were cancelled: hand it on
            else:
                with suppress(ValueError):
                    self._queue.remove(future)
            raise

    def _pass_turn(self) -> None:
        while self._queue:
            future = self._queue.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._turn_taken = False

    async def _wait_for_slot(self) -> None:
        self._slot_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._slot_waiter
        finally:
            self._slot_waiter = None
