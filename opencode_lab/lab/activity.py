"""The run log over time, for the dashboard: calls and cost per time bucket and group, latency percentiles
and the error mix per bucket, the worst deployments, and the calls behind one point.

Calls are results rows (`history`: what a researcher reads, with run names and any user
column such as ``region``); latency and errors are attempts (every try, as `uptime` and
`sla` count them).  ``provider`` is the part of the deployment id before the first ``/``
(ids are ``provider/upstream``).  Time buckets are UTC; pandas is imported inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError
from .history import Since, history

if TYPE_CHECKING:
    import pandas as pd

    from ..session.runlog import RunLog

#: what calls and cost can be grouped by; ``region`` only when the run log has that column
GROUPS: tuple[str, ...] = ("provider", "model", "served_by", "run", "region")


def calls(runlog: RunLog, since: Since = None) -> pd.DataFrame:
    """Every logged call since *since* (`history`), with ``provider`` and ``run`` filled for grouping."""
    rows = history(runlog, since)
    rows["provider"] = rows["served_by"].str.split("/", n=1).str[0]
    rows["run"] = rows["run"].fillna("(session)")
    return rows


def groups_of(rows: pd.DataFrame) -> list[str]:
    """The `GROUPS` this frame can be split by."""
    return [g for g in GROUPS if g in rows.columns]


def per_bucket(frame: pd.DataFrame, value: str, by: str, freq: str, how: str = "sum") -> pd.DataFrame:
    """*value* of *frame* aggregated (*how*: ``sum``, ``count``, or a quantile such as ``0.95``) per time bucket
    of *freq* (``asked_at`` or ``timestamp``) and *by*: one column per group, one row per bucket."""
    import pandas as pd

    if by not in frame.columns:
        raise InvalidRequestError(f"cannot group by {by!r}; this run log has: {', '.join(groups_of(frame))}")
    if frame.empty:
        return pd.DataFrame()
    when = frame["asked_at"] if "asked_at" in frame.columns else pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    keys = [when.dt.floor(freq).rename("bucket"), _labels(frame[by], by).rename(by)]
    grouped = frame[value].groupby(keys)
    if how == "sum":
        series = grouped.sum(min_count=1)
    elif how == "count":
        series = grouped.size().astype("float64")
    else:
        series = grouped.quantile(float(how))
    table = series.unstack(by)
    return table.reindex(pd.date_range(table.index.min(), table.index.max(), freq=freq))


def latency_per_bucket(attempts: pd.DataFrame, freq: str, q: float) -> pd.DataFrame:
    """The *q* quantile of the successful attempts' latency per time bucket and deployment."""
    ok = attempts[(attempts["status"] == "ok") & attempts["latency_s"].notna()]
    return per_bucket(ok, "latency_s", "served_by", freq, str(q))


def errors_per_bucket(attempts: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Failed attempts per time bucket and error type (zero where none failed)."""
    failed = attempts[attempts["status"] != "ok"].assign(error_type=lambda f: f["error_type"].fillna("error"))
    return per_bucket(failed, "error_type", "error_type", freq, "count").fillna(0.0)


def worst(sla: pd.DataFrame, n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The *n* slowest deployments (by latency p95) and the *n* most failing (by failure share)."""
    slowest = sla.sort_values("latency_p95_s", ascending=False, na_position="last").head(n)
    failing = sla.assign(failure_rate=1 - sla["availability"]).sort_values("failure_rate", ascending=False).head(n)
    return (
        slowest[["attempts", "latency_p50_s", "latency_p95_s", "latency_p95_ci_low", "latency_p95_ci_high"]],
        failing[["attempts", "failed", "failure_rate", "availability_ci_low", "availability_ci_high", "incidents"]],
    )


def calls_behind(rows: pd.DataFrame, by: str, group: str, bucket: pd.Timestamp, freq: str) -> pd.DataFrame:
    """The calls of one point of a per-bucket figure: group *group* of *by*, asked within *bucket*."""
    inside = (rows["asked_at"] >= bucket) & (rows["asked_at"] < bucket + _step(freq))
    return rows[inside & (_labels(rows[by], by) == group)]


def _labels(values: pd.Series, by: str) -> pd.Series:
    """Group labels as text: a call no deployment answered is ``(no answer)`` by deployment or provider, and
    a value not set (a deployment that declares no region) is ``(none)``."""
    return values.fillna("(no answer)" if by in ("served_by", "provider") else "(none)").astype(str)


def _step(freq: str) -> pd.Timedelta:
    import pandas as pd

    return pd.Timedelta(freq)
