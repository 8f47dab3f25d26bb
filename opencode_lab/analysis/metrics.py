"""The per-model statistics `stats()` shows: `summarize` turns a results frame into one row per model.

The columns it reads are declared in `opencode_lab.core.schema`; the intervals come from
`opencode_lab.analysis.intervals`.  pandas is imported inside the functions: ``import
opencode_lab`` stays light.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.schema import MEASUREMENTS, truthy

if TYPE_CHECKING:
    import pandas as pd

STATS_COLUMNS: tuple[str, ...] = (
    "calls", "ok", "failed", "failure_rate", "failure_rate_ci_low", "failure_rate_ci_high", "cache_hit_rate",
    "latency_p50_s", "latency_p50_s_ci_low", "latency_p50_s_ci_high",
    "latency_p95_s", "latency_p95_s_ci_low", "latency_p95_s_ci_high", "n_latency",
    "ttft_p50_s", "n_ttft", "output_tokens_per_s", "n_tokens_per_s", "input_tokens", "output_tokens", "n_tokens",
    "cost_usd", "cost_unknown_calls", "cost_saved_usd", "cost_per_1k_calls_usd", "top_error",
)  # fmt: skip
_COUNTS = ("calls", "ok", "failed", "n_latency", "n_ttft", "n_tokens_per_s", "n_tokens", "cost_unknown_calls")
_TOKENS = ("input_tokens", "output_tokens")
_SCORE_AFTER = "failed"  # the score block follows the counts: it is what a comparison is about

_REQUIRED = ("error_type", *MEASUREMENTS)


def summarize(results: pd.DataFrame, by: str | list[str] = "model", *, cluster: str | None = None) -> pd.DataFrame:
    """One row of comparison numbers per group (index = the ``by`` key(s), sorted).

    Intervals are 95 %.  Samples of one prompt (same ``prompt_id`` and ``prompt``) are
    one piece of evidence: means are taken per prompt first, and their intervals treat
    prompts, not rows, as independent.  ``cluster`` names a column grouping prompts that
    share a source (one passage, one template): intervals then treat those groups as the
    independent units (cluster-robust standard errors; bootstrap over clusters).
    Columns, per group:

    - ``calls`` rows; ``ok`` rows without ``error_type``; ``failed = calls - ok``.
    - per score column (``score`` and every ``score_<name>`` holding numbers), e.g. for ``score``:
      ``score_mean`` mean over prompts of the per-prompt mean score of ok rows;
      ``score_ci_low``, ``score_ci_high`` its interval (Wilson for 0/1 scores, t otherwise);
      ``n_score`` rows with a score.
    - ``failure_rate`` failed share (per prompt first: ``failed / calls`` when every prompt
      has the same number of samples) with its Wilson interval ``failure_rate_ci_low/_high``.
    - ``cache_hit_rate`` cached rows / ok rows (NaN when no row succeeded: a rate of nothing).
    - ``latency_p50_s``, ``latency_p95_s`` percentiles (linear interpolation) of ok rows'
      latency, each with a seeded bootstrap interval (``latency_p50_s_ci_low`` ...);
      ``n_latency`` rows they rest on.  A cache hit counts with the original call's latency.
    - ``ttft_p50_s`` median time to first token over the ``n_ttft`` ok rows that have one
      (streamed calls); NaN when none.
    - ``output_tokens_per_s`` sum(output_tokens) / sum(latency_s) over the
      ``n_tokens_per_s`` ok rows with both numbers.
    - ``input_tokens``, ``output_tokens`` summed over the ``n_tokens`` ok rows that reported
      both; <NA> when none did (unknown is not 0).
    - ``cost_usd`` what ok rows and billed failures cost; NaN when any ok row's cost is
      unknown (``cost_unknown_calls`` counts them) or no cost is known at all.
    - ``cost_saved_usd`` what cache hits would have cost (0 without hits; NaN if one is unknown).
    - ``cost_per_1k_calls_usd = cost_usd / calls * 1000``.
    - ``top_error`` most common ``error_type`` among failed rows (ties: alphabetical; None if none).

    Raises `InvalidRequestError` (a ValueError) naming any missing column.
    """
    import pandas as pd

    from .intervals import unit_codes

    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise InvalidRequestError("summarize(by=...) needs at least one column to group by")
    missing = [c for c in keys if c not in results.columns]
    if missing:
        raise InvalidRequestError(f"cannot group by {missing}: no such column (columns: {list(results.columns)})")
    missing = [c for c in _REQUIRED if c not in results.columns]
    if missing:
        raise InvalidRequestError(f"summarize() needs a results frame; missing column(s): {', '.join(missing)}")

    scores = score_columns(results)
    columns = stats_columns(scores)
    df = _prepared(results, scores)
    df["_prompt"], df["_cluster"] = unit_codes(results, cluster)
    grouped = df.groupby(keys[0] if len(keys) == 1 else keys, sort=True, dropna=False)
    names, stats = [], []
    for key, group in grouped:
        names.append(key[0] if len(keys) == 1 and isinstance(key, tuple) else key)
        stats.append(_group_stats(group, scores))
    if len(keys) == 1:
        index = pd.Index(names, name=keys[0])
    else:
        index = (
            pd.MultiIndex.from_tuples(names, names=keys)
            if names
            else pd.MultiIndex.from_arrays([[] for _ in keys], names=keys)
        )
    out = pd.DataFrame(stats, index=index, columns=columns)
    counts = [c for c in columns if c in _COUNTS or c.startswith("n_")]
    out[counts] = out[counts].astype("int64")
    for col in _TOKENS:
        out[col] = out[col].astype("Int64")
    floats = [c for c in columns if c not in (*counts, *_TOKENS, "top_error")]
    out[floats] = out[floats].astype("float64")
    out["top_error"] = pd.Series([s["top_error"] for s in stats], index=index, dtype=object)
    return out


def score_columns(results: pd.DataFrame) -> list[str]:
    """``score`` and every ``score_<name>`` column whose values are all numbers (or missing)."""
    import pandas as pd

    found = []
    for name in results.columns:
        if isinstance(name, str) and (name == "score" or name.startswith("score_")):
            column = results[name]
            if pd.to_numeric(column, errors="coerce").notna().sum() == column.notna().sum():
                found.append(name)
    return found


def stats_columns(scores: list[str]) -> list[str]:
    """`STATS_COLUMNS` with each score's mean, interval and count after the call counts."""
    block = [c for s in scores for c in (f"{s}_mean", f"{s}_ci_low", f"{s}_ci_high", f"n_{s}")]
    at = STATS_COLUMNS.index(_SCORE_AFTER) + 1
    return [*STATS_COLUMNS[:at], *block, *STATS_COLUMNS[at:]]


def _prepared(results: pd.DataFrame, scores: list[str]) -> pd.DataFrame:
    """Numeric, NaN-safe copies of the columns the statistics read."""
    import pandas as pd

    df = results.copy()
    df["_ok"] = df["error_type"].isna()
    df["_cached"] = df["cached"].map(truthy).astype(bool) & df["_ok"]
    for col in ("latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd", *scores):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


def _group_stats(g: pd.DataFrame, scores: list[str]) -> dict[str, Any]:
    from .intervals import bootstrap_quantiles, mean_interval

    ok_rows = g[g["_ok"]]
    hits = ok_rows[ok_rows["_cached"]]
    calls, ok = len(g), len(ok_rows)
    failure = mean_interval((~g["_ok"]).to_numpy(dtype=float), g["_prompt"].to_numpy(), g["_cluster"].to_numpy())
    timed = ok_rows[ok_rows["latency_s"].notna()]
    (p50_low, p50_high), (p95_low, p95_high) = bootstrap_quantiles(
        timed["latency_s"].to_numpy(), timed["_cluster"].to_numpy(), (0.50, 0.95)
    )
    streamed = ok_rows["ttft_s"].dropna()
    rated = timed[timed["output_tokens"].notna()]
    seconds = rated["latency_s"].sum()
    counted = ok_rows[ok_rows["input_tokens"].notna() & ok_rows["output_tokens"].notna()]
    cost_unknown = int(ok_rows["cost_usd"].isna().sum())
    cost = g["cost_usd"].sum(min_count=1) if cost_unknown == 0 else math.nan
    stats: dict[str, Any] = {
        "calls": calls,
        "ok": ok,
        "failed": calls - ok,
        "failure_rate": failure.mean,
        "failure_rate_ci_low": failure.low,
        "failure_rate_ci_high": failure.high,
        "cache_hit_rate": len(hits) / ok if ok else math.nan,
        "latency_p50_s": timed["latency_s"].quantile(0.50),
        "latency_p50_s_ci_low": p50_low,
        "latency_p50_s_ci_high": p50_high,
        "latency_p95_s": timed["latency_s"].quantile(0.95),
        "latency_p95_s_ci_low": p95_low,
        "latency_p95_s_ci_high": p95_high,
        "n_latency": len(timed),
        "ttft_p50_s": streamed.quantile(0.50),
        "n_ttft": len(streamed),
        "output_tokens_per_s": rated["output_tokens"].sum() / seconds if seconds > 0 else math.nan,
        "n_tokens_per_s": len(rated),
        "input_tokens": int(counted["input_tokens"].sum()) if len(counted) else None,
        "output_tokens": int(counted["output_tokens"].sum()) if len(counted) else None,
        "n_tokens": len(counted),
        "cost_usd": cost,
        "cost_unknown_calls": cost_unknown,
        "cost_saved_usd": hits["cost_saved_usd"].sum(min_count=len(hits)) if len(hits) else 0.0,
        "cost_per_1k_calls_usd": cost / calls * 1000 if calls else math.nan,
        "top_error": _top_error(g.loc[~g["_ok"], "error_type"]),
    }
    for name in scores:
        score = mean_interval(ok_rows[name].to_numpy(), ok_rows["_prompt"].to_numpy(), ok_rows["_cluster"].to_numpy())
        stats.update({
            f"{name}_mean": score.mean, f"{name}_ci_low": score.low, f"{name}_ci_high": score.high,
            f"n_{name}": score.rows,
        })  # fmt: skip
    return stats


def _top_error(errors: pd.Series) -> str | None:
    counts = errors.astype(str).value_counts()
    if counts.empty:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]
