"""The router: pick a deployment, wait for its budget, call it, and on failure retry or rotate.

Per request, a `_RequestRoute` holds the routing state: the ordered groups of the
resolved spec, how often each deployment was tried, and one deadline that
covers every retry, rotation and wait, so a request can neither loop nor hang.

Error handling, in one table (see `opencode_lab.core.errors` for the classes):

========================  =================================================
error                     what the router does
========================  =================================================
429 `RateLimitError`      pause that deployment for Retry-After (or back-off;
                          capped by ``retry_after_cap_s``), move to another
                          candidate at once; come back to it only when none
                          can be served now and the pause ends in time
timeout, 5xx, reset,      retry the same deployment with exponential back-off
malformed                 and full jitter up to ``max_retries``, then rotate
401/403, 402, 404,        rotate at once (cannot succeed on that deployment)
context window, anything
else a provider raises
400, stream cut after     give up at once: another deployment would fail the
the first token           same way, or the caller already has partial text
========================  =================================================

Residency: the deployments outside a request's residency rules (the lab's, its models', its own;
`Catalog.residency_rules`) are dropped from its groups when its route is made, before any
candidate is ranked, so no retry, rotation, panic probe or fallback can reach one; when the
request fails and some were dropped, the error is a `ResidencyError` naming the rule.

Waiting: a request never waits (for a pause, a rate limit or its own back-off)
while any candidate of its whole fallback list can be sent now, and it waits
only for a candidate that is free before the deadline; one paused past the
deadline is skipped.  Breakers isolate dead deployments, not flaky ones: a
deployment whose circuit is open is left out while another can be sent now;
when none can, the request sends to it anyway (panic mode, as Envoy's panic
threshold) as that circuit's half-open probe: once per request when none of
its recent calls succeeded, with the usual retries when some did.

The router never imports pandas; every attempt travels back on the result
(`Routed.attempts`) or the error (``error.attempts``) and the Lab turns
attempts into metrics records.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from ..core.attempt import Attempt
from ..core.deployment import Deployment
from ..core.errors import (
    AllAttemptsFailedError,
    CircuitOpenError,
    ContextWindowError,
    InvalidRequestError,
    LabError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ResidencyError,
    StreamInterruptedError,
)
from ..core.provider_routing import merged
from ..core.residency import describe, satisfies
from ..core.secrets import get_logger
from ..core.types import ChatRequest, Completion, StreamChunk
from ..providers.base import Provider
from .backoff import RetryPolicy
from .catalog import Catalog, ModelGroup
from .clock import Clock, MonotonicClock
from .health import CircuitBreaker, DeploymentHealth, HealthSnapshot
from .ratelimit import RateLimiter
from .received import checked, contained, received, received_chunk
from .strategies import Candidate, Strategy, make_strategy

log = get_logger(__name__)


@dataclass
class BreakerSettings:
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown_s: float = 30.0


@dataclass
class _Slot:
    """Runtime state of one deployment: its provider, limiter and health."""

    deployment: Deployment
    provider: Provider
    limiter: RateLimiter
    health: DeploymentHealth


@dataclass
class Routed:
    """What the router hands back: the completion, who served it and every attempt it took."""

    completion: Completion
    deployment: Deployment
    attempts: list[Attempt] = field(default_factory=list)


class Router:
    def __init__(
        self,
        catalog: Catalog,
        providers: dict[str, Provider],
        *,
        strategy: str = "round_robin",
        retry: RetryPolicy | None = None,
        max_candidates: int = 3,
        breaker: BreakerSettings | None = None,
        rate_window_s: float = 60.0,
        retry_after_cap_s: float = 300.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        home_region: str | None = None,
    ) -> None:
        """*home_region* (a region or glob pattern) marks the deployments a region-aware strategy (``nearest``)
        prefers while one of them can be sent to."""
        if not retry_after_cap_s > 0:
            raise ValueError(f"retry_after_cap_s must be positive, got {retry_after_cap_s!r}")
        self.catalog = catalog
        self.providers = providers
        self.retry = retry or RetryPolicy()
        self.max_candidates = max_candidates
        self.breaker = breaker or BreakerSettings()
        self.rate_window_s = rate_window_s
        self.retry_after_cap_s = retry_after_cap_s
        self.clock = clock or MonotonicClock()
        self.rng = rng or random.Random()
        self.home_region = home_region
        self._strategies: dict[str, Strategy] = {}
        self.default_strategy = strategy
        self.strategy(strategy)
        self._slots: dict[str, _Slot] = {}

    def strategy(self, name: str | None) -> Strategy:
        if name is not None and not isinstance(name, str):
            raise InvalidRequestError(f"strategy must be a strategy's name, not {type(name).__name__} {name!r}")
        name = name or self.default_strategy
        if name not in self._strategies:
            self._strategies[name] = make_strategy(name, rng=self.rng)
        return self._strategies[name]

    def slot(self, deployment: Deployment) -> _Slot:
        """The runtime state of *deployment*, created on first use and kept for the Lab's life."""
        slot = self._slots.get(deployment.id)
        if slot is None:
            provider = self.providers.get(deployment.provider)
            if provider is None:
                raise LabError(f"deployment {deployment.id} names unknown provider {deployment.provider!r}")
            breaker = CircuitBreaker(
                consecutive_failures=self.breaker.consecutive_failures,
                failure_rate=self.breaker.failure_rate,
                window=self.breaker.window,
                min_calls=self.breaker.min_calls,
                cooldown_s=self.breaker.cooldown_s,
                clock=self.clock,
                on_change=partial(_log_breaker, deployment.id),
            )
            limiter = RateLimiter(
                rpm=deployment.rpm,
                tpm=deployment.tpm,
                max_in_flight=deployment.max_in_flight,
                window_s=self.rate_window_s,
                clock=self.clock,
            )
            slot = _Slot(deployment, provider, limiter, DeploymentHealth(breaker=breaker, clock=self.clock))
            self._slots[deployment.id] = slot
        elif slot.deployment is not deployment:
            slot.deployment = deployment  # the catalog filled in prices or context; limits and health carry on
            slot.limiter.set_max_in_flight(deployment.max_in_flight)  # a cluster's capacity follows its workers
        return slot

    def health(self) -> dict[str, HealthSnapshot]:
        """Every deployment's health now (circuit, rolling figures, 429 pause, in flight), by deployment id."""
        out = {}
        now = self.clock.now()
        for dep_id, dep in self.catalog.deployments.items():
            slot = self.slot(dep)
            paused = slot.limiter.paused_until
            out[dep_id] = slot.health.snapshot(
                dep_id,
                now=now,
                paused_for_s=max(0.0, paused - now) if paused else 0.0,
                in_flight=slot.limiter.in_flight,
            )
        return out

    def reset(self, spec: str | Sequence[str] | None = None) -> list[str]:
        """End the 429 pauses and close the circuits of *spec*'s deployments (any model spec; None = every one).

        Rolling figures and rate-limit windows stay: they describe what happened.  Returns the ids reset.
        """
        if spec is None:
            ids = list(self._slots)
        else:
            ids = list(dict.fromkeys(d.id for g in self.catalog.resolve(spec) for d in g.deployments))
        for dep_id in ids:
            slot = self._slots.get(dep_id)
            if slot is not None:
                slot.limiter.resume()
                slot.health.breaker.reset()
        return ids

    async def probe(self, deployment: Deployment, request: ChatRequest, *, timeout_s: float) -> Attempt:
        """Send *request* to *deployment* once, outside any plan: an active health check.

        A paused or rate-limited deployment is reported (``error_type="rate_limit"``), not waited for.  The
        probe counts as the circuit's half-open call, so a success closes an open circuit; a failure is
        recorded like any other, as the deployment's last error.  Its latency stays out of the latency
        figures (a one-token answer is not the model's latency).  A deployment outside the lab-wide residency
        rule is reported (``error_type="residency"``) and never sent the probe.
        """
        rule = self.catalog.residency
        if rule and not satisfies(deployment.region, rule):
            why = f"not sent: outside the lab's residency rule {describe(rule)}"
            return Attempt(1, deployment.id, deployment.provider, deployment.id, "error", 0.0, time.time(),
                           error_type=ResidencyError.error_type, error=why)  # fmt: skip
        slot = self.slot(deployment)
        tokens = request.estimated_tokens()
        started, wall = time.perf_counter(), time.time()
        wait = slot.limiter.delay(tokens)
        if wait > 0 or slot.limiter.saturated:
            why = f"paused or rate-limited for {wait:.1f}s" if wait > 0 else "every concurrency slot is in use"
            busy = RateLimitError(f"not sent: {why}", provider=deployment.provider, model=deployment.upstream)
            return _attempt(1, deployment, deployment.id, started, wall, busy)
        try:
            async with slot.limiter.slot(tokens), asyncio.timeout(timeout_s):
                slot.health.breaker.allow(force=True)
                with contained(deployment):
                    await slot.provider.prepare(deployment.upstream)
                    started, wall = time.perf_counter(), time.time()
                    received(await slot.provider.complete(deployment.upstream, request), deployment)
        except TimeoutError:
            error: ProviderError = ProviderTimeout(
                f"no answer within {timeout_s}s", provider=deployment.provider, model=deployment.upstream
            )
        except ProviderError as exc:
            error = exc
        else:
            slot.health.breaker.record_success()
            return _attempt(1, deployment, deployment.id, started, wall, None)
        slot.health.record_failure(error.error_type, str(error), trip=error.trips_breaker)
        return _attempt(1, deployment, deployment.id, started, wall, error)

    async def complete(
        self, request: ChatRequest, request_id: str, *, fallback: bool = True, strategy: str | None = None
    ) -> Routed:
        plan = _RequestRoute(self, request, request_id, fallback=fallback, strategy=strategy)
        while True:
            slot = await plan.next()
            started, wall = time.perf_counter(), time.time()
            ended = None
            try:
                async with slot.limiter.slot(plan.tokens):
                    with contained(slot.deployment):
                        await slot.provider.prepare(slot.deployment.upstream)
                        started, wall = time.perf_counter(), time.time()  # latency excludes waits and loading
                        sent = slot.provider.complete(slot.deployment.upstream, plan.sent(slot))
                        completion = await plan.bounded(sent)
                    completion = received(completion, slot.deployment)
                ended = time.perf_counter()  # nor the answer's check, after the call and off its deadline
                await checked(completion, request, slot.deployment)
            except ProviderError as exc:
                plan.failed(slot, exc, started, wall, ended)
                continue
            plan.succeeded(slot, started, wall, completion.ttft_s, ended)
            return Routed(completion, slot.deployment, plan.attempts)

    async def stream(
        self,
        request: ChatRequest,
        request_id: str,
        *,
        fallback: bool = True,
        strategy: str | None = None,
        routed: list[Routed] | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """Stream through the same policy; failover is allowed only until the first token arrives.

        The final `Routed` is appended to *routed* (an out-parameter, since an
        async generator cannot return a value).
        """
        plan = _RequestRoute(self, request, request_id, fallback=fallback, strategy=strategy)
        while True:
            slot = await plan.next()
            started, wall = time.perf_counter(), time.time()
            shown: list[str] = []
            final: Completion | None = None
            ended = None
            try:
                async with slot.limiter.slot(plan.tokens):
                    with contained(slot.deployment):  # the provider's code only: a GeneratorExit at our yield is ours
                        await slot.provider.prepare(slot.deployment.upstream)
                        started, wall = time.perf_counter(), time.time()
                        chunks = slot.provider.stream(slot.deployment.upstream, plan.sent(slot))
                    while True:
                        with contained(slot.deployment):
                            chunk = await plan.bounded(_anext(chunks), shown=shown)
                        if chunk is None:
                            break
                        chunk = received_chunk(chunk, slot.deployment)
                        if chunk.completion is not None:
                            final = chunk.completion
                        elif chunk.delta:
                            shown.append(chunk.delta)
                            yield chunk
                ended = time.perf_counter()
                if final is not None:
                    await checked(final, request, slot.deployment)
            except ProviderError as exc:
                plan.failed(slot, exc, started, wall, ended)
                if shown:
                    raise plan.exhausted(exc) from exc
                continue
            if final is None:
                cut = StreamInterruptedError(
                    "stream ended without a final chunk",
                    provider=slot.deployment.provider,
                    model=slot.deployment.upstream,
                )
                plan.failed(slot, cut, started, wall, ended)
                raise plan.exhausted(cut)
            plan.succeeded(slot, started, wall, final.ttft_s, ended)
            if routed is not None:
                routed.append(Routed(final, slot.deployment, plan.attempts))
            yield StreamChunk("", final)
            return


async def _anext(chunks: AsyncIterator[StreamChunk]) -> StreamChunk | None:
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None


def _attempt(
    number: int,
    deployment: Deployment,
    spec: str,
    started: float,
    wall: float,
    error: ProviderError | None,
    ttft: float | None = None,
    ended: float | None = None,
) -> Attempt:
    """One attempt's record; its latency runs from *started* to *ended* (now, when not given)."""
    return Attempt(
        number=number,
        deployment=deployment.id,
        provider=deployment.provider,
        model=spec,
        status="ok" if error is None else "error",
        latency_s=(time.perf_counter() if ended is None else ended) - started,
        started_at=wall,
        error_type=None if error is None else error.error_type,
        http_status=None if error is None else error.status_code,
        error=None if error is None else str(error),
        ttft_s=ttft,
    )


def _log_breaker(deployment: str, old: str, new: str) -> None:
    log.info("circuit for %s: %s -> %s", deployment, old, new)


class _RequestRoute:
    """The routing state of one request."""

    def __init__(
        self, router: Router, request: ChatRequest, request_id: str, *, fallback: bool, strategy: str | None
    ) -> None:
        self.router = router
        self.request = request
        self.request_id = request_id
        self.spec = router.catalog.spec_name(request.model)
        groups = router.catalog.resolve(request.model)
        asked = groups if fallback else groups[:1]
        self.rules = router.catalog.residency_rules(asked, request.params.regions)
        self.groups: list[ModelGroup] = router.catalog.resident(asked, request.params.regions)
        self.outside: list[str] = []
        if self.rules:  # what the rules kept out, for the error
            kept = {d.id for g in self.groups for d in g.deployments}
            left_out = (d for g in asked for d in g.deployments if d.id not in kept)
            self.outside = list(dict.fromkeys(f"{d.id} ({d.region or 'no region'})" for d in left_out))
        self.strategy = router.strategy(strategy)
        self.tokens = request.estimated_tokens()
        self.deadline = router.clock.now() + router.retry.deadline_s
        self.attempts: list[Attempt] = []
        self.tries: dict[str, int] = {}
        self.done: set[str] = set()
        self.probed: set[str] = set()
        self.rotations = 0
        self.last_error: BaseException | None = None
        self.backoff_until: dict[str, float] = {}
        if self.outside and not any(g.deployments for g in self.groups):
            raise self.exhausted(None)
        self._check_context()

    def _check_context(self) -> None:
        """Refuse up front when no deployment's context window could hold the prompt."""
        deployments = [d for g in self.groups for d in g.deployments]
        if deployments and not any(self._fits(d) for d in deployments):
            biggest = max((d.context_length or 0) for d in deployments)
            raise ContextWindowError(
                f"prompt and max_tokens need about {self.tokens} tokens; the largest context among "
                f"{self.spec!r} is {biggest}",
                model=self.spec,
            )

    def sent(self, slot: _Slot) -> ChatRequest:
        """The request as *slot*'s deployment is sent it: its model's provider preferences under the call's own."""
        models = self.router.catalog.rules
        dep = slot.deployment.id
        model = next((g.name for g in self.groups if any(d.id == dep for d in g.deployments)), "") if models else ""
        rules = models.get(model)
        if rules is None or rules.provider_routing is None:
            return self.request
        preferences = merged(rules.provider_routing, self.request.params.provider_routing)
        return replace(self.request, params=replace(self.request.params, provider_routing=preferences))

    def _fits(self, deployment: Deployment) -> bool:
        return deployment.context_length is None or deployment.context_length >= self.tokens

    async def next(self) -> _Slot:
        """The next deployment to try, after any wait its limits or back-off need; raises when none is left.

        Candidates come in try order: groups in order (fallback), the strategy's ranking inside each.
        The first that can be sent now wins, preferring a closed circuit to an open one (panic probe) and
        a free concurrency slot to a full one; only when none can be sent now does the request wait, for
        the soonest candidate that is free before the deadline.
        """
        clock = self.router.clock
        while True:
            remaining = self.deadline - clock.now()
            if remaining <= 0:
                raise self.exhausted(
                    self.last_error
                    or ProviderTimeout(f"request deadline of {self.router.retry.deadline_s}s passed", model=self.spec)
                )
            later: list[float] = []
            for blocked in (False, True):
                candidates = self._candidates(remaining, blocked=blocked)
                for saturated_ok in (False, True):
                    for wait, slot in candidates:
                        if (
                            wait <= 0
                            and (saturated_ok or not slot.limiter.saturated)
                            and self._admit(slot, force=blocked)
                        ):
                            return slot
                later += [wait for wait, _ in candidates if wait > 0]
            if not later:
                raise self.exhausted(self.last_error or self._unservable(remaining))
            await clock.sleep(min(later))

    def _candidates(self, remaining: float, *, blocked: bool) -> list[tuple[float, _Slot]]:
        """``(wait, slot)`` for the eligible deployments whose circuit is (not) *blocked* and that are free
        before the deadline, in try order."""
        out = []
        for group in self.groups:
            slots = [
                slot
                for slot in (self.router.slot(d) for d in group.deployments if self._eligible(d))
                if slot.health.breaker.blocked() is blocked
            ]
            for slot in self._ranked(slots, group):
                wait = self._wait(slot)
                if wait < remaining:
                    out.append((wait, slot))
        return out

    def _unservable(self, remaining: float) -> ProviderError:
        """Why nothing was sent: every candidate is paused, limited or cooling down past the deadline."""
        now = self.router.clock.now()
        reasons, soonest, circuit_open = [], None, False
        for d in dict.fromkeys(d for g in self.groups for d in g.deployments if self._fits(d)):
            slot = self.router.slot(d)
            wait, breaker, why = self._wait(slot), slot.health.breaker, []
            if breaker.blocked():
                circuit_open = True
                why.append(f"circuit open, next probe in {max(0.0, (breaker.open_until or now) - now):.1f}s")
            if wait > 0:
                soonest = wait if soonest is None else min(soonest, wait)
                why.append(f"paused or rate-limited for {wait:.1f}s")
            if slot.health.last_error:
                why.append(f"last error: {slot.health.last_error}")
            reasons.append(f"{d.id} ({'; '.join(why) or 'not eligible'})")
        message = f"nothing can be sent within the {remaining:.1f}s left: {', '.join(reasons)}"
        if circuit_open:
            return CircuitOpenError(message, model=self.spec)
        return RateLimitError(message, retry_after=soonest, model=self.spec)

    def _wait(self, slot: _Slot) -> float:
        backoff = self.backoff_until.get(slot.deployment.id, 0.0) - self.router.clock.now()
        return max(slot.limiter.delay(self.tokens), backoff)

    def _eligible(self, deployment: Deployment) -> bool:
        if deployment.id in self.done or not self._fits(deployment):
            return False
        return deployment.id in self.tries or self.rotations < self.router.max_candidates

    def _ranked(self, slots: list[_Slot], group: ModelGroup) -> list[_Slot]:
        """*slots* best first, by the request's strategy."""
        if len(slots) <= 1:
            return slots
        by_key = {s.deployment.id: s for s in slots}
        home = self.router.home_region
        views = [
            Candidate(
                s.deployment.id,
                s.deployment.weight,
                s.limiter.in_flight,
                s.health.latency_ewma_s,
                s.deployment.blended_price_per_mtok,
                s.deployment.region,
                home is not None and satisfies(s.deployment.region, (home,)),
            )
            for s in slots
        ]
        return [by_key[c.key] for c in self.strategy.rank(views, group.name)]

    def _admit(self, slot: _Slot, *, force: bool) -> bool:
        if not slot.health.breaker.allow(force=force):
            return False
        dep = slot.deployment.id
        if force:
            self.probed.add(dep)
        if dep not in self.tries:
            self.rotations += 1
            self.tries[dep] = 0
        self.tries[dep] += 1
        return True

    async def bounded(self, awaitable: object, *, shown: list[str] | None = None) -> object:
        """Await under the request's remaining deadline; running out is a `ProviderTimeout`, or mid-stream a
        `StreamInterruptedError` carrying the text *shown* so far."""
        remaining = self.deadline - self.router.clock.now()
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                return await awaitable  # type: ignore[misc]
        except TimeoutError:
            if shown:
                raise StreamInterruptedError(
                    "request deadline passed mid-stream", partial_text="".join(shown), model=self.spec
                ) from None
            raise ProviderTimeout("request deadline passed during the call", model=self.spec) from None

    def _record(
        self,
        slot: _Slot,
        started: float,
        wall: float,
        error: ProviderError | None,
        ttft: float | None = None,
        ended: float | None = None,
    ) -> Attempt:
        attempt = _attempt(len(self.attempts) + 1, slot.deployment, self.spec, started, wall, error, ttft, ended)
        self.attempts.append(attempt)
        return attempt

    def succeeded(
        self, slot: _Slot, started: float, wall: float, ttft: float | None, ended: float | None = None
    ) -> None:
        attempt = self._record(slot, started, wall, None, ttft, ended)
        slot.health.record_success(attempt.latency_s)

    def failed(
        self, slot: _Slot, exc: ProviderError, started: float, wall: float, ended: float | None = None
    ) -> None:
        """Classify *exc*: pause, back off, rotate, or give up (by raising).

        A deployment sent to although its circuit was open gets no retry in this request when none of its
        recent calls succeeded: a dead deployment costs one fast attempt, a flaky one keeps its retries.
        """
        self._record(slot, started, wall, exc, ended=ended)
        self.last_error = exc
        dep = slot.deployment.id
        slot.health.record_failure(exc.error_type, str(exc), trip=exc.trips_breaker)
        if isinstance(exc, RateLimitError):
            self._pause(slot, exc)
        if not exc.rotate:
            raise self.exhausted(exc)
        dead = dep in self.probed and not slot.health.success_rate
        if not exc.retryable or self.tries[dep] > self.router.retry.max_retries or dead:
            self.done.add(dep)
        elif not isinstance(exc, RateLimitError):
            self.backoff_until[dep] = self.router.clock.now() + self.router.retry.backoff(
                self.tries[dep] - 1, self.router.rng
            )

    def _pause(self, slot: _Slot, exc: RateLimitError) -> None:
        """Hold the deployment for its Retry-After (back-off when absent), at most ``retry_after_cap_s``."""
        router = self.router
        asked = exc.retry_after
        if asked is None:
            asked = router.retry.backoff(self.tries[slot.deployment.id] - 1, router.rng)
        pause = min(asked, router.retry_after_cap_s)
        if pause > 0 and slot.limiter.paused_until < router.clock.now() + pause:
            log.info("deployment %s paused for %.2fs after a 429", slot.deployment.id, pause)
            slot.limiter.pause(pause)

    def exhausted(self, last: BaseException | None) -> LabError:
        """The one error a caller sees, carrying every attempt; an error before any attempt, or a lone
        non-retryable one, is raised as itself, unless a residency rule kept deployments out: then the rule is
        what the caller must hear of (a lone non-retryable error excepted: no deployment would have helped)."""
        lone = isinstance(last, ProviderError) and len(self.attempts) == 1 and not last.rotate
        if self.outside and not lone:
            error: LabError = ResidencyError(
                self.spec, " and ".join(map(describe, self.rules)), self.outside, self.attempts, last
            )
        elif isinstance(last, ProviderError) and (not self.attempts or (len(self.attempts) <= 1 and not last.rotate)):
            error = last
        else:
            error = AllAttemptsFailedError(self.spec, self.attempts, last)
        error.attempts = tuple(self.attempts)
        return error
