"""Results and attempt records as DataFrames, and the per-model statistics `stats()` shows.

Two record shapes flow through the lab: a *results row* (one per prompt x model x
sample, what `compare()` returns) and an *attempt record* (one per try the router
made).  `results_frame` / `attempts_frame` give both a fixed column order and
dtypes, so frames built live, loaded from the run log or read back from CSV
compare equal.  `summarize` turns a results frame into one row of numbers per
model (or any other grouping).

pandas is imported inside the functions: ``import opencode_lab`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

    from .types import Attempt, ChatResult

RESULT_COLUMNS: tuple[str, ...] = (
    "run_id", "prompt_id", "prompt", "model", "served_by", "sample", "response", "finish_reason",
    "latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd", "cost_source", "cost_saved_usd",
    "cached", "attempts", "error_type", "error",
)  # fmt: skip

ATTEMPT_COLUMNS: tuple[str, ...] = (
    "run_id", "request_id", "timestamp", "model", "served_by", "provider", "attempt", "status",
    "error_type", "http_status", "latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd",
    "cost_source", "cost_saved_usd", "cached",
)  # fmt: skip

STATS_COLUMNS: tuple[str, ...] = (
    "calls", "ok", "failed", "failure_rate", "cache_hit_rate", "latency_p50_s", "latency_p95_s", "ttft_p50_s",
    "output_tokens_per_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd",
    "cost_per_1k_calls_usd", "score_mean", "top_error",
)  # fmt: skip

_FLOAT = ("latency_s", "ttft_s", "cost_usd", "cost_saved_usd", "timestamp")
_INT = ("input_tokens", "output_tokens", "attempts", "attempt", "http_status", "sample", "prompt_id")
_REQUIRED = (
    "error_type", "cached", "latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd",
)  # fmt: skip


def results_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a results frame: `RESULT_COLUMNS` first (missing ones empty), extra columns after.

    Dtypes are fixed so equal data gives equal frames: ``cached`` bool, token counts,
    ``sample``, ``attempts`` and integer ``prompt_id`` nullable ``Int64``, latencies
    and costs float (unknown = NaN).  A ``prompt_id`` that is not an integer is kept as is.
    """
    return _frame(rows, RESULT_COLUMNS)


def attempts_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a frame of attempt records with `ATTEMPT_COLUMNS` first and the same dtype rules."""
    return _frame(records, ATTEMPT_COLUMNS)


def _frame(rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame.from_records([dict(r) for r in rows]) if rows else pd.DataFrame()
    for col in columns:
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df = df[list(columns) + [c for c in df.columns if c not in columns]]
    for col in columns:
        if col in _FLOAT:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif col in _INT:
            df[col] = _maybe_int(df[col])
        elif col == "cached":
            df[col] = df[col].map(_truthy).astype(bool)
    return df.reset_index(drop=True)


def _maybe_int(col: pd.Series) -> pd.Series:
    """Nullable Int64 when every known value is an integer; otherwise the column unchanged."""
    import pandas as pd

    numbers = pd.to_numeric(col, errors="coerce")
    if numbers.isna().sum() != col.isna().sum():
        return col  # e.g. string prompt ids: keep them
    try:
        return numbers.astype("Int64")
    except (TypeError, ValueError):
        return col


def _truthy(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    try:
        return bool(value)
    except (TypeError, ValueError):  # pd.NA
        return False


def summarize(results: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """One row of comparison numbers per group (index = the ``by`` key(s), sorted).

    Definitions, per group:

    - ``calls`` rows; ``ok`` rows without ``error_type``; ``failed = calls - ok``;
      ``failure_rate = failed / calls``.
    - ``cache_hit_rate`` cached rows / ok rows (NaN when no row succeeded: a rate of nothing).
    - ``latency_p50_s``, ``latency_p95_s``, ``ttft_p50_s``: percentiles with linear
      interpolation over ok rows that were *not* cache hits (a replay's latency says
      nothing about the model); NaN when there are none.
    - ``output_tokens_per_s`` sum(output_tokens) / sum(latency_s) over the same rows
      (those with both values known).
    - ``input_tokens``, ``output_tokens`` summed over ok rows.
    - ``cost_usd`` sum of the known costs of ok rows, plus failed rows that carry a
      positive cost (a stream billed before it broke); NaN only when none is known.
    - ``cost_saved_usd`` sum of what cache hits would have cost; 0 without cache hits.
    - ``cost_per_1k_calls_usd = cost_usd / calls * 1000``.
    - ``score_mean`` mean of a numeric ``score`` column, only when the frame has one.
    - ``top_error`` most common ``error_type`` among failed rows (ties: alphabetical; None if none).

    Raises `InvalidRequestError` (a ValueError) naming any missing column.
    """
    import pandas as pd

    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise InvalidRequestError("summarize(by=...) needs at least one column to group by")
    missing = [c for c in keys if c not in results.columns]
    if missing:
        raise InvalidRequestError(f"cannot group by {missing}: no such column (columns: {list(results.columns)})")
    missing = [c for c in _REQUIRED if c not in results.columns]
    if missing:
        raise InvalidRequestError(f"summarize() needs a results frame; missing column(s): {', '.join(missing)}")

    has_score = "score" in results.columns
    columns = [c for c in STATS_COLUMNS if has_score or c != "score_mean"]
    df = _prepared(results)
    grouped = df.groupby(keys[0] if len(keys) == 1 else keys, sort=True, dropna=False)
    names, stats = [], []
    for key, group in grouped:
        names.append(key[0] if len(keys) == 1 and isinstance(key, tuple) else key)
        stats.append(_group_stats(group, has_score))
    if len(keys) == 1:
        index = pd.Index(names, name=keys[0])
    else:
        index = (
            pd.MultiIndex.from_tuples(names, names=keys)
            if names
            else pd.MultiIndex.from_arrays([[] for _ in keys], names=keys)
        )
    out = pd.DataFrame(stats, index=index, columns=columns)
    for col in ("calls", "ok", "failed"):
        out[col] = out[col].astype("int64")
    for col in ("input_tokens", "output_tokens"):
        out[col] = out[col].astype("Int64")
    floats = [c for c in columns if c not in ("calls", "ok", "failed", "input_tokens", "output_tokens", "top_error")]
    out[floats] = out[floats].astype("float64")
    out["top_error"] = pd.Series([s["top_error"] for s in stats], index=index, dtype=object)
    return out


def _prepared(results: pd.DataFrame) -> pd.DataFrame:
    """Numeric, NaN-safe copies of the columns the statistics read."""
    import pandas as pd

    df = results.copy()
    df["_ok"] = df["error_type"].isna()
    df["_cached"] = df["cached"].map(_truthy).astype(bool) & df["_ok"]
    for col in ("latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    if "score" in df.columns:
        df["score"] = pd.to_numeric(df["score"], errors="coerce").astype("float64")
    return df


def _group_stats(g: pd.DataFrame, has_score: bool) -> dict[str, Any]:
    ok_rows = g[g["_ok"]]
    fresh = ok_rows[~ok_rows["_cached"]]
    hits = ok_rows[ok_rows["_cached"]]
    calls, ok = len(g), len(ok_rows)
    timed = fresh[fresh["latency_s"].notna() & fresh["output_tokens"].notna()]
    seconds = timed["latency_s"].sum()
    billed = g[g["_ok"] | (g["cost_usd"] > 0)]
    cost = billed["cost_usd"].sum(min_count=1)
    stats: dict[str, Any] = {
        "calls": calls,
        "ok": ok,
        "failed": calls - ok,
        "failure_rate": (calls - ok) / calls,
        "cache_hit_rate": len(hits) / ok if ok else math.nan,
        "latency_p50_s": fresh["latency_s"].quantile(0.50),
        "latency_p95_s": fresh["latency_s"].quantile(0.95),
        "ttft_p50_s": fresh["ttft_s"].quantile(0.50),
        "output_tokens_per_s": timed["output_tokens"].sum() / seconds if seconds > 0 else math.nan,
        "input_tokens": int(ok_rows["input_tokens"].sum()),
        "output_tokens": int(ok_rows["output_tokens"].sum()),
        "cost_usd": cost,
        "cost_saved_usd": hits["cost_saved_usd"].sum(min_count=1) if len(hits) else 0.0,
        "cost_per_1k_calls_usd": cost / calls * 1000,
        "top_error": _top_error(g.loc[~g["_ok"], "error_type"]),
    }
    if has_score:
        stats["score_mean"] = g["score"].mean()
    return stats


def _top_error(errors: pd.Series) -> str | None:
    counts = errors.astype(str).value_counts()
    if counts.empty:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


def result_row(result: ChatResult) -> dict[str, Any]:
    """The per-call columns a results frame shares with `ChatResult`."""
    return {
        "model": result.model,
        "served_by": result.served_by,
        "response": result.text,
        "finish_reason": result.finish_reason,
        "latency_s": result.latency_s,
        "ttft_s": result.ttft_s,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "cost_source": result.cost_source,
        "cost_saved_usd": result.cost_saved_usd,
        "cached": result.cached,
        "attempts": len(result.attempts),
        "error_type": None,
        "error": None,
    }


def attempt_record(attempt: Attempt, run_id: str, request_id: str) -> dict[str, Any]:
    """One attempt as an `ATTEMPT_COLUMNS` record; tokens and cost are filled in for the answering one."""
    return {
        "run_id": run_id,
        "request_id": request_id,
        "timestamp": attempt.started_at,
        "model": attempt.model,
        "served_by": attempt.deployment,
        "provider": attempt.provider,
        "attempt": attempt.number,
        "status": attempt.status,
        "error_type": attempt.error_type,
        "http_status": attempt.http_status,
        "latency_s": attempt.latency_s,
        "ttft_s": attempt.ttft_s,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": math.nan,
        "cost_source": "unknown",
        "cost_saved_usd": 0.0,
        "cached": False,
    }


def cache_hit_record(result: ChatResult, run_id: str, wall: float) -> dict[str, Any]:
    """A cache hit as an attempt record: attempt 0, cost 0, and what the hit saved."""
    return {
        "run_id": run_id,
        "request_id": result.request_id,
        "timestamp": wall,
        "model": result.model,
        "served_by": result.served_by,
        "provider": result.provider,
        "attempt": 0,
        "status": "ok",
        "error_type": None,
        "http_status": None,
        "latency_s": result.latency_s,
        "ttft_s": None,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": 0.0,
        "cost_source": result.cost_source,
        "cost_saved_usd": result.cost_saved_usd,
        "cached": True,
    }
