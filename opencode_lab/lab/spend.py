"""Spend over the run log: what was paid and what the cache saved, per day, model, run or any column
(``tag``, ``served_by``, a column the user's prompts carried), and the ``[budget]`` periods' state.

Figures come from the results rows (`history`), so a row's cost is the one a researcher reads in
``compare()``; what a server did not price is counted in ``unpriced``, never as 0.  pandas is
imported inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError
from .history import Since, history

if TYPE_CHECKING:
    import pandas as pd

    from ..session.runlog import RunLog
    from ..session.spending import SpendingGuard

SPEND_COLUMNS: tuple[str, ...] = ("calls", "failed", "cache_hits", "paid_usd", "saved_usd", "unpriced")
BUDGET_COLUMNS: tuple[str, ...] = ("limit_usd", "spent_usd", "remaining_usd", "used", "state", "since", "resets_at")


def spend(runlog: RunLog, since: Since = None, *, by: str = "day") -> pd.DataFrame:
    """Per *by* (``day``, UTC, or a column of `history` such as ``model``, ``run``, ``served_by`` or a
    user's ``tag``): ``calls``, ``failed``, ``cache_hits``, ``paid_usd`` (the priced calls' cost; NaN
    when none was priced), ``saved_usd`` (what the cache hits would have cost) and ``unpriced`` (calls
    that asked a deployment whose cost is unknown)."""
    import pandas as pd

    rows = history(runlog, since)
    if by == "day":
        key = rows["asked_at"].dt.floor("D").rename("day")
    elif by in rows.columns:
        key = rows[by].fillna("(none)" if by != "run" else "(session)")
    else:
        known = ["day", *sorted(c for c in rows.columns if rows[c].dtype == object)]
        raise InvalidRequestError(f"spend(by={by!r}): no such column in the run log; known: {', '.join(known)}")
    groups = rows.groupby(key, sort=True)
    out = pd.DataFrame(
        {
            "calls": groups.size(),
            "failed": groups["error_type"].count(),
            "cache_hits": groups["cached"].sum(),
            "paid_usd": groups["cost_usd"].sum(min_count=1),
            "saved_usd": rows["cost_saved_usd"].where(rows["cached"], 0.0).groupby(key).sum(),
            "unpriced": (rows["cost_usd"].isna() & ~rows["cached"] & rows["error_type"].isna()).groupby(key).sum(),
        },
        columns=list(SPEND_COLUMNS),
    )
    for col in ("calls", "failed", "cache_hits", "unpriced"):
        out[col] = out[col].astype("int64")
    out.index.name = by
    return out


def budget_status(guard: SpendingGuard, now: float | None = None) -> pd.DataFrame:
    """One row per ``[budget]`` period: limit, what every process sharing the run log spent in it, what
    remains, the share used, ``state`` (ok, warning, exceeded) and when the period began and resets."""
    import pandas as pd

    periods = guard.periods(now)
    out = pd.DataFrame(
        [
            [
                p.limit_usd,
                p.spent_usd,
                max(0.0, p.limit_usd - p.spent_usd),
                p.spent_usd / p.limit_usd,
                p.state,
                p.start,
                p.end,
            ]
            for p in periods
        ],
        index=pd.Index([p.period for p in periods], name="period", dtype=object),
        columns=list(BUDGET_COLUMNS),
    )
    for col in ("since", "resets_at"):
        out[col] = pd.to_datetime(out[col].astype("float64"), unit="s", utc=True)
    return out
