"""The run log read back: every call of every session (`history`) and each deployment's record (`uptime`).

``chat()``, ``stream()``, ``%%chat`` and ``compare()`` all leave their rows in the
SQLite run log (chat and stream calls under their session's run), so a notebook
session can be audited or revisited after the kernel is gone.  `uptime` is the SLA
view of the same log: per deployment, over a time window, how often an attempt
succeeded, what failed and how fast it answered.  pandas is imported inside.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from ..analysis.intervals import mean_interval, unit_codes
from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

    from ..session.runlog import RunLog

#: how far back: a span ("30m", "24h", "7d", a timedelta), a datetime or seconds since the epoch; None is all
Since: TypeAlias = "str | timedelta | datetime | float | None"

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
#: what a researcher reads first; the rest of the results columns follow
_FIRST = ("asked_at", "via", "model", "prompt", "response", "error_type", "served_by", "latency_s", "cost_usd")
UPTIME_COLUMNS: tuple[str, ...] = (
    "attempts", "ok", "failed", "availability", "availability_ci_low", "availability_ci_high", "errors",
    "latency_p50_s", "latency_p90_s", "latency_p99_s", "first", "last",
)  # fmt: skip


def since_epoch(since: object, *, now: float | None = None) -> float | None:
    """*since* as seconds since the epoch: None, a span back from now (``"90s"``, ``"30m"``, ``"24h"``,
    ``"7d"``, a `timedelta`), a `datetime` (naive = local time) or a number of seconds since the epoch."""
    now = time.time() if now is None else now
    if since is None:
        return None
    if isinstance(since, timedelta):
        return now - since.total_seconds()
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, int | float) and not isinstance(since, bool):
        return float(since)
    match = _SPAN.match(since) if isinstance(since, str) else None
    if match is None:
        raise InvalidRequestError(
            f"since/window must be a span such as '30m', '24h' or '7d', a timedelta or a datetime; got {since!r}"
        )
    return now - float(match.group(1)) * _SECONDS[match.group(2)]


def history(runlog: RunLog, since: Since = None, *, model: str | None = None) -> pd.DataFrame:
    """Every logged call in the order it was asked (``asked_at``; a compare row: when it was saved), ``via``
    saying chat, stream or compare; *model* keeps one model spec."""
    import pandas as pd

    frame = runlog.history(since_epoch(since))
    frame.insert(0, "via", frame.pop("via").fillna("compare") if "via" in frame.columns else "compare")
    asked = frame["logged_at"]
    if "asked_at" in frame.columns:
        asked = pd.to_datetime(frame.pop("asked_at"), unit="s", utc=True).fillna(asked)
    frame.insert(0, "asked_at", asked)
    frame = frame.sort_values("asked_at", kind="stable")
    if model is not None:
        frame = frame[frame["model"] == model]
    order = [c for c in _FIRST if c in frame.columns]
    return frame[order + [c for c in frame.columns if c not in order]].reset_index(drop=True)


def uptime(runlog: RunLog, window: Since = "24h", *, by: str = "served_by") -> pd.DataFrame:
    """Per deployment (*by*: ``served_by``, ``provider`` or ``model``) over the last *window* of the run log.

    Counts real attempts only (run logs of earlier versions also kept cache hits as attempts).  Columns:
    ``attempts``, ``ok``, ``failed``; ``availability`` = ok / attempts with its 95 % Wilson interval, the
    retries of one call counted as one cluster (they fail together; `opencode_lab.analysis.intervals`);
    ``errors``, the error mix (``server_error 3 · timeout 1``, most frequent first); ``latency_p50_s``,
    ``latency_p90_s``, ``latency_p99_s`` of the ok attempts; ``first`` and ``last`` attempt (UTC).
    """
    if by not in ("served_by", "provider", "model"):
        raise InvalidRequestError(f"uptime(by=...) must be 'served_by', 'provider' or 'model', not {by!r}")
    return uptime_of(runlog.attempts(since=since_epoch(window)), by)


def uptime_of(attempts: pd.DataFrame, by: str = "served_by") -> pd.DataFrame:
    """`uptime` of attempt records already read (the SLA report selects its own)."""
    import pandas as pd

    attempts = attempts[~attempts["cached"] & attempts[by].notna()]
    rows = {key: _uptime_row(group) for key, group in attempts.groupby(by, sort=True)}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(UPTIME_COLUMNS))
    out.index.name = by
    for col in ("attempts", "ok", "failed"):
        out[col] = out[col].astype("int64")
    for col in ("first", "last"):
        out[col] = pd.to_datetime(out[col].astype("float64"), unit="s", utc=True)
    return out


def _uptime_row(group: pd.DataFrame) -> list[Any]:
    ok = group["status"] == "ok"
    n, good = len(group), int(ok.sum())
    availability = mean_interval(ok.to_numpy(dtype=float), *unit_codes(group, "request_id"))
    errors = error_mix(group.loc[~ok, "error_type"])
    latency = group.loc[ok, "latency_s"].dropna()
    quantiles = [latency.quantile(q) if len(latency) else float("nan") for q in (0.5, 0.9, 0.99)]
    stamps = group["timestamp"]
    return [n, good, n - good, good / n, availability.low, availability.high, errors, *quantiles, stamps.min(),
            stamps.max()]  # fmt: skip


def error_mix(error_types: pd.Series) -> str:
    """``server_error 3 · timeout 1``: each error type with its count, most frequent first."""
    mix = error_types.fillna("error").astype(str).value_counts()
    return " · ".join(f"{kind} {count}" for kind, count in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0])))
