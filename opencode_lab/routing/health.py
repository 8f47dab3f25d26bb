"""Health of a deployment: a circuit breaker plus rolling success-rate and latency figures.

The router prefers deployments whose breaker is not `blocked`, and the
`snapshot` feeds ``%models`` / ``stats()`` so a researcher sees why a model was
skipped.  Single event loop (or one lock held by the caller); not thread-safe.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .clock import Clock, MonotonicClock

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class HealthSnapshot:
    """One deployment's health at one moment: what ``%models``, ``lab.health()``, diagnoses and live cells
    read, and `phrase` is the one way any of them words it."""

    deployment: str
    state: BreakerState
    success_rate: float | None
    latency_p50_s: float | None
    latency_ewma_s: float | None
    calls: int
    failures: int
    last_error: str | None
    open_for_s: float
    """Seconds until an open circuit admits its next probe (0 when it would admit one now)."""
    paused_for_s: float
    """Seconds left of a pause a 429 imposed."""
    in_flight: int

    def phrase(self) -> str:
        """``ready`` (not tried yet), ``healthy``, ``failing (40 % ok)``, ``rate limited, paused for 12 s``,
        ``circuit open, next try in 12 s`` (or ``…, next call probes it``), ``circuit half-open, one probe in
        flight``."""
        return self.caution() or self._standing()

    def caution(self) -> str | None:
        """What the circuit or rate limit does next, when that is not simply "try again" (else None)."""
        if self.state == "open":
            wait = math.ceil(self.open_for_s)
            return f"circuit open, next try in {wait} s" if wait > 0 else "circuit open, next call probes it"
        if self.state == "half_open":
            return "circuit half-open, one probe in flight"
        if self.paused_for_s > 0:
            return f"rate limited, paused for {math.ceil(self.paused_for_s)} s"
        return None

    def _standing(self) -> str:
        rate = self.success_rate
        if rate is None:
            return "ready"
        return "healthy" if rate >= 0.8 else f"failing ({rate:.0%} ok)"


class CircuitBreaker:
    """Stops sending to a deployment that keeps failing, and probes it again after a cool-down.

    closed → open after `consecutive_failures` in a row, or when the failure rate over
    the last `window` calls reaches `failure_rate` (with at least `min_calls` calls);
    open → half_open after `cooldown_s`, which admits ONE probe; probe success →
    closed, probe failure → open again (cool-down restarts).

    Reading `state` never changes it: the breaker reports ``"open"`` after the
    cool-down has passed until `allow` is called and admits the probe.  Outcomes
    recorded while open (calls sent before it opened) are ignored; in half-open
    the first outcome recorded decides.  A probe whose outcome never arrives (a
    cancelled call) is written off after another `cooldown_s`, so the breaker
    cannot stay half-open forever.  On closing, the rolling window starts afresh.

    ``allow(force=True)`` admits a call whatever the state, as a probe: the router
    uses it when every deployment of a model is blocked (panic mode), so a flaky
    model degrades instead of failing without a request, and one success closes
    the circuit again.
    """

    def __init__(
        self,
        *,
        consecutive_failures: int = 5,
        failure_rate: float = 0.5,
        window: int = 20,
        min_calls: int = 10,
        cooldown_s: float = 30.0,
        clock: Clock | None = None,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if consecutive_failures < 1:
            raise ValueError(f"consecutive_failures must be >= 1, got {consecutive_failures!r}")
        if not 0 < failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate!r}")
        if not 1 <= min_calls <= window:
            raise ValueError(f"need 1 <= min_calls <= window, got min_calls={min_calls!r}, window={window!r}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s!r}")
        self.consecutive_failures = consecutive_failures
        self.failure_rate = failure_rate
        self.window = window
        self.min_calls = min_calls
        self.cooldown_s = cooldown_s
        self.on_change = on_change
        self._clock: Clock = clock or MonotonicClock()
        self._state: BreakerState = "closed"
        self._outcomes: deque[bool] = deque(maxlen=window)  # True = failure
        self._window_failures = 0
        self._streak = 0
        self._open_until: float | None = None
        self._probe_started: float | None = None

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state!r}, open_until={self._open_until!r})"

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def open_until(self) -> float | None:
        """Clock time the cool-down ends while open; None when closed or half-open."""
        return self._open_until

    def blocked(self) -> bool:
        """Would `allow` refuse a call now?  (Reads only: no probe is admitted.)"""
        if self._state == "closed":
            return False
        now = self._clock.now()
        if self._state == "open":
            return self._open_until is not None and now < self._open_until
        return self._probe_started is not None and now - self._probe_started < self.cooldown_s

    def allow(self, *, force: bool = False) -> bool:
        """May a call go out now?  After the cool-down, True exactly once (the probe) until its outcome is known.

        *force* admits the call even while blocked; an open breaker then turns half-open with it as the probe.
        """
        if self._state == "closed":
            return True
        if not force and self.blocked():
            return False
        now = self._clock.now()
        if self._state == "open":
            self._probe_started = now
            self._transition("half_open")
        elif self._probe_started is None or now - self._probe_started >= self.cooldown_s:
            self._probe_started = now  # no probe out, or the last one was lost: this call is the probe
        return True

    def reset(self) -> None:
        """Close the circuit and forget the window (``lab.reset``: the user says the deployment is fixed)."""
        self._close()

    def record_success(self) -> None:
        if self._state == "half_open":
            self._close()
        elif self._state == "closed":
            self._streak = 0
            self._push(failure=False)

    def record_failure(self) -> None:
        if self._state == "half_open":
            self._open()
        elif self._state == "closed":
            self._streak += 1
            self._push(failure=True)
            if self._streak >= self.consecutive_failures or self._rate_tripped():
                self._open()

    def _abandon_probe(self) -> None:
        """The probe ended with an outcome that says nothing about health (e.g. 429): admit another one."""
        if self._state == "half_open":
            self._probe_started = None

    def _push(self, *, failure: bool) -> None:
        if len(self._outcomes) == self.window and self._outcomes[0]:
            self._window_failures -= 1
        self._outcomes.append(failure)
        self._window_failures += failure

    def _rate_tripped(self) -> bool:
        n = len(self._outcomes)
        return n >= self.min_calls and self._window_failures / n >= self.failure_rate

    def _open(self) -> None:
        self._open_until = self._clock.now() + self.cooldown_s
        self._probe_started = None
        self._transition("open")

    def _close(self) -> None:
        self._outcomes.clear()
        self._window_failures = 0
        self._streak = 0
        self._open_until = None
        self._probe_started = None
        self._transition("closed")

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if new != "open":
            self._open_until = None
        if old != new and self.on_change is not None:
            self.on_change(old, new)


class DeploymentHealth:
    """Rolling health of one deployment: success rate and latency over the last `window` calls,
    EWMA latency, last error, and its breaker.

    `calls` and `failures` count every call since creation; `success_rate` and
    `latency_p50_s` cover only the last `window` calls (latency: successes only).
    The first success does not seed the EWMA: it pays for connection set-up (or a
    model's warm-up), often ten times a normal call, and would make
    ``least_latency`` shun a healthy deployment for many calls.
    """

    def __init__(
        self,
        *,
        window: int = 50,
        ewma_alpha: float = 0.3,
        breaker: CircuitBreaker | None = None,
        clock: Clock | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        if not 0 < ewma_alpha <= 1:
            raise ValueError(f"ewma_alpha must be in (0, 1], got {ewma_alpha!r}")
        self.window = window
        self.ewma_alpha = ewma_alpha
        self.breaker = breaker if breaker is not None else CircuitBreaker(clock=clock)
        self._recent: deque[float | None] = deque(maxlen=window)  # latency of a success, None for a failure
        self._recent_failures = 0
        self._ewma: float | None = None
        self._warmed_up = False
        self._calls = 0
        self._failures = 0
        self._last_error: str | None = None

    def __repr__(self) -> str:
        return f"DeploymentHealth({self.snapshot()!r})"

    def record_success(self, latency_s: float) -> None:
        self._push(latency_s)
        if self._warmed_up:
            a = self.ewma_alpha
            self._ewma = latency_s if self._ewma is None else a * latency_s + (1 - a) * self._ewma
        self._warmed_up = True
        self.breaker.record_success()

    def record_failure(self, error_type: str, message: str = "", *, trip: bool = True) -> None:
        """Count a failed call; ``trip=False`` (429s, 400s: not the deployment's fault) keeps it from the breaker."""
        self._push(None)
        self._failures += 1
        self._last_error = f"{error_type}: {message}" if message else error_type
        if trip:
            self.breaker.record_failure()
        else:
            self.breaker._abandon_probe()

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def success_rate(self) -> float | None:
        n = len(self._recent)
        return None if n == 0 else (n - self._recent_failures) / n

    @property
    def latency_ewma_s(self) -> float | None:
        return self._ewma

    @property
    def latency_p50_s(self) -> float | None:
        latencies = [x for x in self._recent if x is not None]
        return statistics.median(latencies) if latencies else None

    def snapshot(self, deployment: str = "", *, now: float = 0.0, paused_for_s: float = 0.0, in_flight: int = 0
                 ) -> HealthSnapshot:
        """This deployment's health at *now* (the rate limiter's pause and in-flight count added by the router)."""
        until = self.breaker.open_until
        return HealthSnapshot(
            deployment=deployment,
            state=self.breaker.state,
            success_rate=self.success_rate,
            latency_p50_s=self.latency_p50_s,
            latency_ewma_s=self.latency_ewma_s,
            calls=self._calls,
            failures=self._failures,
            last_error=self._last_error,
            open_for_s=max(0.0, until - now) if until is not None else 0.0,
            paused_for_s=paused_for_s,
            in_flight=in_flight,
        )

    def _push(self, latency: float | None) -> None:
        self._calls += 1
        if len(self._recent) == self.window and self._recent[0] is None:
            self._recent_failures -= 1
        self._recent.append(latency)
        self._recent_failures += latency is None
