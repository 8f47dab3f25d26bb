"""Load-balancing strategies: the order in which the router tries a model's deployments.

A strategy only ranks; it never filters.  The router ranks the deployments
whose circuit is closed apart from those whose circuit is open (tried only when
nothing else can be sent) and walks the ranked list on failover, so every
candidate appears exactly once.  `rank` runs about once per request: it does one
rotation, one random draw or one sort of a handful of items and nothing more.
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.errors import InvalidRequestError


@dataclass(frozen=True)
class Candidate:
    """What a strategy may know about one deployment at ranking time."""

    key: str
    weight: float = 1.0
    in_flight: int = 0
    latency_s: float | None = None
    """EWMA of recent successes; None = unknown."""
    price_per_mtok: float | None = None
    """Blended input+output USD per million tokens; None = unknown (ranked after known prices)."""
    region: str | None = None
    """Where the deployment runs; None = not declared."""
    home: bool = False
    """It runs in the lab's home region (``[lab] home_region``)."""


class Strategy(Protocol):
    name: str

    def rank(self, candidates: Sequence[Candidate], group: str) -> list[Candidate]:
        """Every candidate once, best first; the router tries them in this order."""
        ...


class _Rotating:
    """A per-group call counter: the source of round-robin order for rotations and tie-breaks."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def _next(self, group: str) -> int:
        n = self._counters.get(group, 0)
        self._counters[group] = n + 1
        return n


class RoundRobin(_Rotating):
    """Consecutive calls for the same group start at successive candidates; the rest follow in order."""

    name = "round_robin"

    def rank(self, candidates: Sequence[Candidate], group: str) -> list[Candidate]:
        n = len(candidates)
        if n < 2:
            return list(candidates)
        start = self._next(group) % n
        return [*candidates[start:], *candidates[:start]]


class _SortedWithRotatingTies(_Rotating):
    """Ascending by `_key`; runs of equal keys are rotated per call so equals share the load."""

    _key: Callable[[Candidate], float]

    def rank(self, candidates: Sequence[Candidate], group: str) -> list[Candidate]:
        if len(candidates) < 2:
            return list(candidates)
        key = self._key
        ranked = sorted(candidates, key=key)
        turn = self._next(group)
        i, n = 0, len(ranked)
        while i < n:
            k, j = key(ranked[i]), i + 1
            while j < n and key(ranked[j]) == k:
                j += 1
            if j - i > 1 and (shift := turn % (j - i)):
                ranked[i:j] = ranked[i + shift : j] + ranked[i:j][:shift]
            i = j
        return ranked


def _busy_key(c: Candidate) -> float:
    return c.in_flight


def _price_key(c: Candidate) -> float:
    return math.inf if c.price_per_mtok is None else c.price_per_mtok


class LeastLatency:
    """Power of two choices over expected latency x (in flight + 1), as Finagle's and Envoy's balancers do.

    Two distinct candidates are drawn at random and the cheaper goes first; the
    rest follow cheapest first (the failover order).  The cost counts requests
    already in flight, so a burst spreads instead of piling onto the fastest
    deployment.  A latency figure loses weight while others serve: it is scaled
    by ``decay`` for every request of the group since its deployment was last
    picked, so one slow sample cannot starve a deployment for good (an idle one
    looks cheaper and cheaper until it is measured again) and a clearly slower
    one is re-measured now and then.  Costs within ``tolerance`` of each other
    count as equal and go to the one picked less recently, so equal deployments
    share the load evenly even one request at a time.  An unknown latency counts
    as the mean of the known ones (1 s when none is known): a new deployment is
    tried soon without being flooded.
    """

    name = "least_latency"

    def __init__(self, rng: random.Random | None = None, *, decay: float = 0.9, tolerance: float = 0.2) -> None:
        if not 0 < decay <= 1 or tolerance < 0:
            raise ValueError(f"need 0 < decay <= 1 and tolerance >= 0, got {decay!r}, {tolerance!r}")
        self._rng = rng or random.Random()
        self.decay = decay
        self.tolerance = tolerance
        self._turns: dict[str, int] = {}  # group -> requests ranked so far
        self._picks: dict[str, dict[str, int]] = {}  # group -> key -> the turn that last put it first

    def rank(self, candidates: Sequence[Candidate], group: str) -> list[Candidate]:
        if len(candidates) < 2:
            return list(candidates)
        turn, picks = self._turns.get(group, 0), self._picks.setdefault(group, {})
        latencies = {
            c.key: c.latency_s * self.decay ** (turn - picks.get(c.key, 0))
            for c in candidates
            if c.latency_s is not None
        }
        prior = sum(latencies.values()) / len(latencies) if latencies else 1.0
        cost = {c.key: latencies.get(c.key, prior) * (c.in_flight + 1) for c in candidates}
        a, b = self._rng.sample(range(len(candidates)), 2)
        first = self._cheaper(candidates[a], candidates[b], cost, picks)
        self._turns[group] = picks[first.key] = turn + 1
        rest = sorted((c for c in candidates if c is not first), key=lambda c: cost[c.key])
        return [first, *rest]

    def _cheaper(self, a: Candidate, b: Candidate, cost: dict[str, float], picks: dict[str, int]) -> Candidate:
        low, high = sorted((cost[a.key], cost[b.key]))
        if high <= low * (1 + self.tolerance):
            return a if picks.get(a.key, 0) <= picks.get(b.key, 0) else b
        return a if cost[a.key] < cost[b.key] else b


class LeastBusy(_SortedWithRotatingTies):
    """Fewest requests in flight first."""

    name = "least_busy"
    _key = staticmethod(_busy_key)


class Cost(_SortedWithRotatingTies):
    """Cheapest blended price first; unknown prices last."""

    name = "cost"
    _key = staticmethod(_price_key)


class Weighted:
    """Random order drawn by weight: P(first) is proportional to weight; the rest follow by weighted sampling
    without replacement.  Weights <= 0 come last (in random order) unless every weight is <= 0."""

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def rank(self, candidates: Sequence[Candidate], group: str) -> list[Candidate]:
        if len(candidates) < 2:
            return list(candidates)
        rng = self._rng.random
        # Efraimidis–Spirakis: sorting by u**(1/w) descending is successive weighted sampling without replacement;
        # log(u)/w is the same order without underflow.  Non-positive weights get keys below every positive one.
        keyed = [
            (math.log(1.0 - rng()) / c.weight if c.weight > 0 else -math.inf, rng(), i)
            for i, c in enumerate(candidates)
        ]
        keyed.sort(reverse=True)
        return [candidates[i] for _, _, i in keyed]


class Nearest:
    """The closest region first: the lab's home region while one there can be sent to, else the region with the
    lowest measured latency; the others follow, nearest first, as the failover order across regions and clouds.

    Measured latency is each deployment's EWMA of recent successes times (in flight + 1), so a burst does not
    pile onto one region; one never measured comes last.  A deployment never put first goes first once, and
    one not put first for
    ``explore_every`` requests of its group is put first once more: a region that slowed is left within a
    call or two, and one that recovered is found again, while the fastest keeps all but about
    ``(regions - 1) / explore_every`` of the traffic.  Deterministic: ties keep the catalog's order.  A
    throttled (429) or broken deployment is skipped by the router, which takes the next in this order.
    """

    name = "nearest"

    def __init__(self, *, explore_every: int = 25) -> None:
        if explore_every < 1:
            raise ValueError(f"explore_every must be at least 1, got {explore_every!r}")
        self.explore_every = explore_every
        self._turns: dict[str, int] = {}
        self._firsts: dict[str, dict[str, int]] = {}  # group -> key -> the turn that last put it first

    def rank(self, candidates: Sequence[Candidate], group: str) -> list[Candidate]:
        if len(candidates) < 2:
            return list(candidates)
        turn = self._turns[group] = self._turns.get(group, 0) + 1
        firsts = self._firsts.setdefault(group, {})

        def stale(c: Candidate) -> bool:
            return c.key not in firsts or turn - firsts[c.key] > self.explore_every

        def key(c: Candidate) -> tuple[bool, bool, float]:
            cost = math.inf if c.latency_s is None else c.latency_s * (c.in_flight + 1)
            return (not c.home, not stale(c), cost)

        ranked = sorted(candidates, key=key)
        firsts[ranked[0].key] = turn
        return ranked


StrategyFactory = Callable[[random.Random], Strategy]

_FACTORIES: dict[str, StrategyFactory] = {
    "round_robin": lambda rng: RoundRobin(),
    "weighted": Weighted,
    "least_latency": LeastLatency,
    "least_busy": lambda rng: LeastBusy(),
    "cost": lambda rng: Cost(),
    "nearest": lambda rng: Nearest(),
}


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Make *name* usable as ``strategy=`` and ``OC_STRATEGY``; *factory* gets the router's seeded rng."""
    _FACTORIES[_normal(name)] = factory


def strategy_names() -> list[str]:
    return sorted(_FACTORIES)


def make_strategy(name: str, *, rng: random.Random | None = None) -> Strategy:
    """Build a strategy by name (``least-latency`` and any case are accepted); ``rng`` drives the random
    choices of `weighted` and `least_latency`."""
    factory = _FACTORIES.get(_normal(name))
    if factory is None:
        close = difflib.get_close_matches(_normal(name), list(_FACTORIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidRequestError(
            f"unknown routing strategy {name!r}; expected one of {', '.join(strategy_names())}{hint}"
        )
    return factory(rng or random.Random())


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_")
