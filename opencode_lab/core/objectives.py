"""Service-level objectives (``[slo]``) and spending limits per calendar period (``[budget]``), as values.

Declared here once and parsed strictly by `opencode_lab.core.config`; the SLA report
(`opencode_lab.lab.sla`) reads the objectives and the session's spending guard
(`opencode_lab.session.spending`) the limits.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: the calendar periods a spending limit can cover, each a ``[budget]`` key ``<period>_usd``
PERIODS: tuple[str, ...] = ("day", "week", "month")


@dataclass(frozen=True)
class Objective:
    """What a deployment promises: a share of attempts that succeed, and a 95th-percentile latency of the
    successful ones; None where nothing is promised."""

    availability: float | None = None
    latency_p95_s: float | None = None


@dataclass(frozen=True)
class Objectives:
    """The ``[slo]`` table: a default objective and objectives scoped to a deployment id, a model spec or a
    provider name (``[slo."a/x"]``, ``[slo.a]``).  The most specific scope wins, key by key."""

    default: Objective = Objective()
    scoped: Mapping[str, Objective] = field(default_factory=dict, hash=False)

    def for_deployment(self, deployment: str, provider: str | None, model: str | None) -> Objective:
        """The objective of *deployment* (served for *model*, by *provider*): each key from the most
        specific scope that sets it (deployment, then model, then provider, then the default)."""
        scopes = [self.scoped[s] for s in (deployment, model, provider) if s is not None and s in self.scoped]
        scopes.append(self.default)
        return Objective(
            availability=next((o.availability for o in scopes if o.availability is not None), None),
            latency_p95_s=next((o.latency_p95_s for o in scopes if o.latency_p95_s is not None), None),
        )


@dataclass(frozen=True)
class Budgets:
    """The ``[budget]`` table: a spending limit in USD per calendar period (UTC), and the share of a limit
    at which a warning is given before calls are refused at the limit itself."""

    limits_usd: Mapping[str, float] = field(default_factory=dict, hash=False)
    warn_at: float = 0.8

    def __bool__(self) -> bool:
        return bool(self.limits_usd)


def period_start(period: str, now: float) -> float:
    """Seconds since the epoch at which the calendar *period* (UTC) holding *now* began: midnight, Monday's
    midnight, or the first of the month."""
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight.timestamp()
    if period == "week":
        return (midnight - timedelta(days=midnight.weekday())).timestamp()
    if period == "month":
        return midnight.replace(day=1).timestamp()
    raise ValueError(f"unknown period {period!r}; known: {', '.join(PERIODS)}")


def period_end(period: str, now: float) -> float:
    """Seconds since the epoch at which the calendar *period* holding *now* ends (the next one's start)."""
    start = datetime.fromtimestamp(period_start(period, now), UTC)
    if period == "day":
        return (start + timedelta(days=1)).timestamp()
    if period == "week":
        return (start + timedelta(days=7)).timestamp()
    return (start + timedelta(days=calendar.monthrange(start.year, start.month)[1])).timestamp()
