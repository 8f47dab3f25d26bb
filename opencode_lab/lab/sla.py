"""SLA figures over the run log: availability and latency against the ``[slo]`` objectives, the error budget,
multiwindow burn rates and incidents, per deployment.

An attempt is the unit, as in `uptime` (whose counts and availability interval this reuses):
what a deployment was asked and whether it answered.  Cache hits asked no one and are left
out.  Burn rates follow the multiwindow method of Google's SRE workbook (chapter "Alerting on
SLOs"): the error rate of a window divided by the error rate the objective allows; an alert
fires when a long window *and* its short window both burn faster than the pair's threshold
(the short one shows the burn is still going on).  A window without attempts has no burn
rate (NA), never 0.  pandas is imported inside.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..analysis.intervals import quantile_interval, unit_codes
from ..core.errors import InvalidRequestError
from ..core.objectives import Objectives
from .history import Since, error_mix, since_epoch, uptime_of

if TYPE_CHECKING:
    import pandas as pd

    from ..session.runlog import RunLog

#: (long window, short window, burn-rate threshold, severity): the SRE workbook's table for a 30-day objective
BURN_WINDOWS: tuple[tuple[str, str, float, str], ...] = (
    ("1h", "5m", 14.4, "page"),
    ("6h", "30m", 6.0, "page"),
    ("1d", "2h", 3.0, "ticket"),
    ("3d", "6h", 1.0, "ticket"),
)
#: every window of `BURN_WINDOWS`, shortest first: one ``burn_<window>`` column each
BURN_SPANS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SLA_COLUMNS: tuple[str, ...] = (
    "provider", "attempts", "ok", "failed", "availability", "availability_ci_low", "availability_ci_high",
    "availability_objective", "availability_met", "latency_p50_s", "latency_p95_s", "latency_p95_ci_low",
    "latency_p95_ci_high", "latency_p95_objective_s", "latency_met", "error_budget_remaining",
    *(f"burn_{w}" for w in BURN_SPANS), "alert", "incidents", "downtime_s",
)  # fmt: skip
INCIDENT_COLUMNS: tuple[str, ...] = (
    "served_by", "provider", "start", "end", "duration_s", "failures", "errors", "ongoing",
)  # fmt: skip
#: consecutive failed attempts of one deployment that make an incident (one failure is a blip, not an outage)
MIN_INCIDENT_FAILURES = 3


def real_attempts(runlog: RunLog, since: float | None, now: float) -> pd.DataFrame:
    """The attempts that asked a deployment, started in [*since*, *now*], in time order (without the cache hits
    that run logs of earlier versions recorded as attempts)."""
    frame = runlog.attempts(since=since)
    frame = frame[~frame["cached"] & frame["served_by"].notna() & (frame["timestamp"] <= now)]
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def sla(runlog: RunLog, objectives: Objectives, since: Since = "30d", *, now: float | None = None) -> pd.DataFrame:
    """One row per deployment (``served_by``) that was asked since *since*; see the module doc and README.

    ``availability`` is ok / attempts with its 95 % Wilson interval (retries of one call are one
    cluster), ``latency_p95_s`` the 95th percentile of the successful attempts with its
    distribution-free interval (NA with fewer than 72 values), ``error_budget_remaining`` the share
    of the allowed failures not yet spent over the whole span (negative once overspent),
    ``burn_<window>`` the burn rate over the last window up to *now*, ``alert`` the most severe
    pair of windows that fires (``page``, ``ticket`` or ``none``), and ``incidents`` / ``downtime_s``
    the outages of `incidents` in the span.
    """
    import pandas as pd

    now = time.time() if now is None else now
    start = since_epoch(since, now=now)
    longest = now - 3 * 86400.0  # the longest burn-rate window, BURN_SPANS[-1]
    attempts = real_attempts(runlog, min(start, longest) if start is not None else None, now)
    in_span = attempts[attempts["timestamp"] >= start] if start is not None else attempts
    base = uptime_of(in_span)
    outages = incidents_of(in_span, now)
    rows: dict[str, dict[str, Any]] = {}
    for deployment, group in in_span.groupby("served_by", sort=True):
        provider, model = group["provider"].iloc[-1], group["model"].iloc[-1]
        objective = objectives.for_deployment(str(deployment), provider, model)
        recent = attempts[attempts["served_by"] == deployment]
        mine = outages[outages["served_by"] == deployment]
        counts = base.loc[str(deployment)]
        rows[str(deployment)] = {
            "provider": provider,
            **{
                c: counts[c]
                for c in ("attempts", "ok", "failed", "availability", "availability_ci_low", "availability_ci_high")
            },
            **_availability(counts, objective.availability),
            **_latency(group, objective.latency_p95_s),
            **_burn(recent, objective.availability, now),
            "incidents": len(mine),
            "downtime_s": float(mine["duration_s"].sum()),
        }
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(SLA_COLUMNS))
    out.index.name = "served_by"
    for col in ("attempts", "ok", "failed", "incidents"):
        out[col] = out[col].astype("int64")
    for col in ("availability_met", "latency_met"):
        out[col] = out[col].astype("boolean")
    float_columns = [c for c in SLA_COLUMNS if c not in ("provider", "alert", "availability_met", "latency_met",
                                                         "attempts", "ok", "failed", "incidents")]  # fmt: skip
    out[float_columns] = out[float_columns].astype("float64")
    return out


def _availability(row: Any, objective: float | None) -> dict[str, Any]:
    if objective is None:
        return {"availability_objective": float("nan"), "availability_met": None, "error_budget_remaining": None}
    allowed = (1 - objective) * row["attempts"]
    return {
        "availability_objective": objective,
        "availability_met": bool(row["availability"] >= objective),
        "error_budget_remaining": 1 - row["failed"] / allowed,
    }


def _latency(group: pd.DataFrame, objective: float | None) -> dict[str, Any]:
    ok = group[group["status"] == "ok"]
    ok = ok[ok["latency_s"].notna()]
    values = ok["latency_s"].to_numpy(dtype=float)
    nan = float("nan")
    if not len(values):
        return {"latency_p50_s": nan, "latency_p95_s": nan, "latency_p95_ci_low": nan, "latency_p95_ci_high": nan,
                "latency_p95_objective_s": objective, "latency_met": None}  # fmt: skip
    _, clusters = unit_codes(ok, "request_id")
    p95 = float(ok["latency_s"].quantile(0.95))
    interval = quantile_interval(values, clusters, 0.95)
    return {
        "latency_p50_s": float(ok["latency_s"].quantile(0.5)),
        "latency_p95_s": p95,
        "latency_p95_ci_low": interval.low,
        "latency_p95_ci_high": interval.high,
        "latency_p95_objective_s": objective,
        "latency_met": None if objective is None else bool(p95 <= objective),
    }


def burn_rate(attempts: pd.DataFrame, window: str, objective: float, now: float) -> float:
    """Error rate of the attempts started in (now - window, now] over the rate *objective* allows; NaN when
    the window holds no attempt."""
    start = since_epoch(window, now=now)
    inside = attempts[(attempts["timestamp"] > start) & (attempts["timestamp"] <= now)]
    if inside.empty:
        return float("nan")
    return float((inside["status"] != "ok").mean()) / (1 - objective)


def _burn(attempts: pd.DataFrame, objective: float | None, now: float) -> dict[str, Any]:
    if objective is None:
        return {**{f"burn_{w}": float("nan") for w in BURN_SPANS}, "alert": None}
    rates = {w: burn_rate(attempts, w, objective, now) for w in BURN_SPANS}
    fired = [severity for long, short, threshold, severity in BURN_WINDOWS
             if rates[long] > threshold and rates[short] > threshold]  # NaN compares False  # fmt: skip
    alert = "page" if "page" in fired else fired[0] if fired else "none"
    return {**{f"burn_{w}": rate for w, rate in rates.items()}, "alert": alert}


def incidents(
    runlog: RunLog, since: Since = "30d", *, now: float | None = None, min_failures: int = MIN_INCIDENT_FAILURES
) -> pd.DataFrame:
    """The outages in the run log since *since*: per deployment, each run of at least *min_failures*
    consecutive failed attempts, from the first failure's start to the start of the next successful
    attempt (``end`` NaT and ``ongoing`` True when none came yet; ``duration_s`` then runs to *now*)."""
    if min_failures < 1:
        raise InvalidRequestError(f"min_failures must be at least 1, got {min_failures!r}")
    now = time.time() if now is None else now
    return incidents_of(real_attempts(runlog, since_epoch(since, now=now), now), now, min_failures)


def incidents_of(attempts: pd.DataFrame, now: float, min_failures: int = MIN_INCIDENT_FAILURES) -> pd.DataFrame:
    """`incidents` of attempts already read (in time order)."""
    import pandas as pd

    rows = []
    for deployment, group in attempts.groupby("served_by", sort=True):
        run: list[Any] = []
        for record in group.itertuples(index=False):
            if record.status != "ok":
                run.append(record)
                continue
            if len(run) >= min_failures:
                rows.append(_incident(str(deployment), run, float(record.timestamp), now))  # type: ignore[arg-type]
            run = []
        if len(run) >= min_failures:
            rows.append(_incident(str(deployment), run, None, now))
    frame = pd.DataFrame(rows, columns=list(INCIDENT_COLUMNS))
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col].astype("float64"), unit="s", utc=True)
    frame["failures"] = frame["failures"].astype("int64")
    frame["duration_s"] = frame["duration_s"].astype("float64")
    frame["ongoing"] = frame["ongoing"].astype(bool)
    return frame


def _incident(deployment: str, run: list[Any], recovered: float | None, now: float) -> list[Any]:
    import pandas as pd

    start = run[0].timestamp
    errors = error_mix(pd.Series([record.error_type for record in run], dtype=object))
    end = now if recovered is None else recovered
    return [deployment, run[-1].provider, start, recovered, end - start, len(run), errors, recovered is None]
