"""The per-model statistics `stats()` shows: `summarize` turns a results frame into one row per model.

The columns it reads are declared in `opencode_lab.core.schema`; the intervals come from
`opencode_lab.analysis.intervals`, and failures count as `opencode_lab.analysis.failures`
says.  pandas is imported inside the functions: ``import opencode_lab`` stays light.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.schema import LATER_MEASUREMENTS, MEASUREMENTS, tagged, truthy

if TYPE_CHECKING:
    import pandas as pd

STATS_COLUMNS: tuple[str, ...] = (
    "calls", "ok", "failed", "failure_rate", "failure_rate_ci_low", "failure_rate_ci_high", "cache_hit_rate",
    "latency_p50_s", "latency_p50_s_ci_low", "latency_p50_s_ci_high",
    "latency_p95_s", "latency_p95_s_ci_low", "latency_p95_s_ci_high", "n_latency",
    "ttft_p50_s", "n_ttft", "output_tokens_per_s", "n_tokens_per_s", "input_tokens", "output_tokens", "n_tokens",
    "reasoning_tokens", "n_reasoning", "cost_usd", "cost_unknown_calls", "cost_saved_usd", "cache_discount_usd",
    "cost_per_1k_calls_usd", "top_error", "note",
)  # fmt: skip
_COUNTS = ("calls", "ok", "failed", "n_latency", "n_ttft", "n_tokens_per_s", "n_tokens", "cost_unknown_calls")
_TOKENS = ("input_tokens", "output_tokens", "reasoning_tokens")
_TEXT = ("top_error", "note")
_SCORE_AFTER = "failed"  # the score block follows the counts: it is what a comparison is about

_REQUIRED = ("error_type", *(m for m in MEASUREMENTS if m not in LATER_MEASUREMENTS))


def summarize(
    results: pd.DataFrame, by: str | list[str] = "model", *, cluster: str | None = None, failures: str = "count"
) -> pd.DataFrame:
    """One row of comparison numbers per group (index = the ``by`` key(s), in order of first appearance:
    the order the models were given to ``compare``).

    Intervals are 95 %.  Samples of one prompt (same ``prompt_id`` and ``prompt``) are
    one piece of evidence: means are taken per prompt first, and their intervals treat
    prompts, not rows, as independent.  ``cluster`` names a column grouping prompts that
    share a source (one passage, one template): intervals then treat those groups as the
    independent units (cluster-robust standard errors, t on clusters - 1 degrees of freedom).
    A failed row scores 0 on a [0, 1] score (``failures="count"``, the default) or is left out
    (``failures="drop"``: "when it answers"); see `opencode_lab.analysis.failures`.
    Columns, per group:

    - ``calls`` rows; ``ok`` rows without ``error_type``; ``failed = calls - ok``.
    - per score column (``score`` and every ``score_<name>`` holding numbers), e.g. for ``score``:
      ``score_mean`` mean over prompts of the per-prompt mean score;
      ``score_ci_low``, ``score_ci_high`` its interval (Wilson for 0/1 scores, t otherwise, inside
      [0, 1]); ``n_score`` rows it rests on, ``n_score_prompts`` prompts, ``n_score_lost`` prompts
      left out because every call of them failed (0 when failures count).
    - ``failure_rate`` failed share (per prompt first: ``failed / calls`` when every prompt
      has the same number of samples) with its Wilson interval ``failure_rate_ci_low/_high``.
    - ``cache_hit_rate`` cached rows / ok rows (NaN when no row succeeded: a rate of nothing).
    - ``latency_p50_s``, ``latency_p95_s`` percentiles (linear interpolation) of ok rows'
      latency, each with a distribution-free order-statistic interval (``latency_p50_s_ci_low``
      ...; NaN, with the reason in ``note``, when there are too few calls for one);
      ``n_latency`` rows they rest on.  A cache hit counts with the original call's latency.
    - ``ttft_p50_s`` median time to first token over the ``n_ttft`` ok rows that have one
      (streamed calls); NaN when none.
    - ``output_tokens_per_s`` sum(output_tokens) / sum(latency_s) over the
      ``n_tokens_per_s`` ok rows with both numbers.
    - ``input_tokens``, ``output_tokens`` summed over the ``n_tokens`` ok rows that reported
      both; <NA> when none did (unknown is not 0).
    - ``reasoning_tokens`` of those output tokens, the thinking ones, summed over the ``n_reasoning`` ok rows
      that reported them; <NA> when none did.
    - ``cost_usd`` what ok rows and billed failures cost; NaN when any ok row's cost is
      unknown (``cost_unknown_calls`` counts them) or no cost is known at all.
    - ``cost_saved_usd`` what cache hits would have cost (0 without hits; NaN if one is unknown).
    - ``cache_discount_usd`` what the providers' prompt caches took off ``cost_usd`` (cache reads at their
      lower price, less any write premium), summed over the rows where it is known; NaN when it is known for
      none (no cache counts reported, or no cached price).
    - ``cost_per_1k_calls_usd = cost_usd / calls * 1000``.
    - ``top_error`` most common ``error_type`` among failed rows (ties: alphabetical; None if none).
    - ``note`` what a reader must know: failures counted as 0, a score resting on other prompts
      than the other groups' (lost to failures or never asked), an interval there are too few
      calls for.  ``attrs["failures"]`` holds the policy; ``attrs["scorers"]`` the scorers' names,
      when the results recorded them (``compare`` and ``grade`` do).

    Raises `InvalidRequestError` (a ValueError) naming any missing column.
    """
    import pandas as pd

    from .failures import check_failures
    from .intervals import unit_codes

    failures = check_failures(failures)
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
    df, bounded = _prepared(results, scores, failures)
    df["_prompt"], df["_cluster"] = unit_codes(results, cluster)
    grouped = df.groupby(keys[0] if len(keys) == 1 else keys, sort=False, dropna=False)
    names: list[Any] = []
    stats = []
    for key, group in grouped:
        names.append(key[0] if len(keys) == 1 and isinstance(key, tuple) else key)
        stats.append(_group_stats(group, scores, bounded, failures == "count"))
    _write_notes(stats, scores)
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
    floats = [c for c in columns if c not in (*counts, *_TOKENS, *_TEXT)]
    out[floats] = out[floats].astype("float64")
    for col in _TEXT:
        out[col] = pd.Series([s[col] for s in stats], index=index, dtype=object)
    tagged(out, "stats")
    out.attrs["failures"] = failures
    if "scorers" in results.attrs:
        out.attrs["scorers"] = dict(results.attrs["scorers"])
    return out


def score_columns(results: pd.DataFrame) -> list[str]:
    """``score`` and every ``score_<name>`` column whose values are all numbers (or missing)."""
    import pandas as pd

    from .failures import is_score

    found = []
    for name in results.columns:
        if is_score(name):
            column = results[name]
            if pd.to_numeric(column, errors="coerce").notna().sum() == column.notna().sum():
                found.append(name)
    return found


def stats_columns(scores: list[str]) -> list[str]:
    """`STATS_COLUMNS` with each score's mean, interval and counts after the call counts."""
    block = [
        c
        for s in scores
        for c in (f"{s}_mean", f"{s}_ci_low", f"{s}_ci_high", f"n_{s}", f"n_{s}_prompts", f"n_{s}_lost")
    ]
    at = STATS_COLUMNS.index(_SCORE_AFTER) + 1
    return [*STATS_COLUMNS[:at], *block, *STATS_COLUMNS[at:]]


def _prepared(results: pd.DataFrame, scores: list[str], failures: str) -> tuple[pd.DataFrame, dict[str, bool]]:
    """Numeric, NaN-safe copies of the columns the statistics read, each score under the failure policy;
    and, per score, whether it is bounded to [0, 1]."""
    import pandas as pd

    from .failures import values_under

    df = results.copy()
    for col in LATER_MEASUREMENTS:
        if col not in df.columns:
            df[col] = math.nan
    df["_ok"] = df["error_type"].isna()
    df["_cached"] = df["cached"].map(truthy).astype(bool) & df["_ok"]
    for col in MEASUREMENTS:
        if col != "cached":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    bounded = {}
    for name in scores:
        df[name], _, bounded[name] = values_under(results, name, failures)
    return df, bounded


def _group_stats(g: pd.DataFrame, scores: list[str], bounded: dict[str, bool], count: bool) -> dict[str, Any]:
    from .intervals import mean_interval, quantile_interval

    ok_rows = g[g["_ok"]]
    hits = ok_rows[ok_rows["_cached"]]
    calls, ok = len(g), len(ok_rows)
    failure = mean_interval((~g["_ok"]).to_numpy(dtype=float), g["_prompt"].to_numpy(), g["_cluster"].to_numpy())
    timed = ok_rows[ok_rows["latency_s"].notna()]
    notes: list[str] = []
    latency: dict[str, float] = {}
    for q, name in ((0.50, "latency_p50_s"), (0.95, "latency_p95_s")):
        interval = quantile_interval(timed["latency_s"].to_numpy(), timed["_cluster"].to_numpy(), q)
        latency.update({name: float(timed["latency_s"].quantile(q)), f"{name}_ci_low": interval.low,
                        f"{name}_ci_high": interval.high})  # fmt: skip
        if interval.reason and len(timed):
            notes.append(f"no 95 % interval of latency p{round(q * 100)}: {interval.reason}")
    streamed = ok_rows["ttft_s"].dropna()
    rated = timed[timed["output_tokens"].notna()]
    seconds = rated["latency_s"].sum()
    counted_tokens = ok_rows[ok_rows["input_tokens"].notna() & ok_rows["output_tokens"].notna()]
    reasoned = ok_rows["reasoning_tokens"].dropna()
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
        **latency,
        "n_latency": len(timed),
        "ttft_p50_s": streamed.quantile(0.50),
        "n_ttft": len(streamed),
        "output_tokens_per_s": rated["output_tokens"].sum() / seconds if seconds > 0 else math.nan,
        "n_tokens_per_s": len(rated),
        "input_tokens": int(counted_tokens["input_tokens"].sum()) if len(counted_tokens) else None,
        "output_tokens": int(counted_tokens["output_tokens"].sum()) if len(counted_tokens) else None,
        "n_tokens": len(counted_tokens),
        "reasoning_tokens": int(reasoned.sum()) if len(reasoned) else None,
        "n_reasoning": len(reasoned),
        "cost_usd": cost,
        "cost_unknown_calls": cost_unknown,
        "cost_saved_usd": hits["cost_saved_usd"].sum(min_count=len(hits)) if len(hits) else 0.0,
        "cache_discount_usd": ok_rows["cache_discount_usd"].sum(min_count=1),
        "cost_per_1k_calls_usd": cost / calls * 1000 if calls else math.nan,
        "top_error": _top_error(g.loc[~g["_ok"], "error_type"]),
        "_prompt_sets": {},
        "_score_notes": [],
    }
    for name in scores:
        bounds = (0.0, 1.0) if bounded[name] else None
        score = mean_interval(g[name].to_numpy(), g["_prompt"].to_numpy(), g["_cluster"].to_numpy(), bounds=bounds)
        scored = set(g.loc[g[name].notna(), "_prompt"])
        lost = set(g.loc[~g["_ok"], "_prompt"]) - scored
        stats.update({
            f"{name}_mean": score.mean, f"{name}_ci_low": score.low, f"{name}_ci_high": score.high,
            f"n_{name}": score.rows, f"n_{name}_prompts": score.prompts, f"n_{name}_lost": len(lost),
        })  # fmt: skip
        stats["_prompt_sets"][name] = scored
        if bounded[name] and count and calls > ok:
            stats["_score_notes"].append(f"{name} counts {calls - ok} failed call(s) as 0")
    stats["_latency_notes"] = notes
    return stats


def _write_notes(stats: list[dict[str, Any]], scores: list[str]) -> None:
    """Write each group's ``note``: failures counted as 0, a score resting on other prompts than the other
    groups' (some lost to failures, or never asked: means over different prompts are not like for like), and
    latency intervals there were too few calls for."""
    for name in scores:
        sets = [s["_prompt_sets"][name] for s in stats]
        union = set().union(*sets)
        if all(s == union for s in sets):
            continue
        for s, prompts in zip(stats, sets, strict=True):
            if prompts != union:
                lost = s[f"n_{name}_lost"]
                because = f", {lost} lost to failures" if lost else ""
                s["_score_notes"].append(f"{name} on {len(prompts)} of the {len(union)} prompts{because}")
    for s in stats:
        s["note"] = "; ".join([*s.pop("_score_notes"), *s.pop("_latency_notes")])
        del s["_prompt_sets"]


def _top_error(errors: pd.Series) -> str | None:
    counts = errors.astype(str).value_counts()
    if counts.empty:
        return None
    return str(min(counts.items(), key=lambda item: (-item[1], str(item[0])))[0])
