"""The per-model statistics `stats()` shows: `summarize` turns a results frame into one row per model.

The columns it reads are declared in `opencode_lab.core.schema`.

pandas is imported inside the functions: ``import opencode_lab`` stays light.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.schema import truthy

if TYPE_CHECKING:
    import pandas as pd

STATS_COLUMNS: tuple[str, ...] = (
    "calls", "ok", "failed", "failure_rate", "cache_hit_rate", "latency_p50_s", "latency_p95_s", "ttft_p50_s",
    "output_tokens_per_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd",
    "cost_per_1k_calls_usd", "score_mean", "top_error",
)  # fmt: skip

_REQUIRED = (
    "error_type", "cached", "latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd",
)  # fmt: skip


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
    df["_cached"] = df["cached"].map(truthy).astype(bool) & df["_ok"]
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
