"""Which model is better, and how many prompts it takes to tell: paired comparisons and sample sizes.

After Miller (2024), "Adding Error Bars to Evals" (arXiv 2411.00640): models are compared
on the prompts both answered.  The per-prompt difference removes how hard each prompt is
from the noise, so a paired test detects smaller gaps than two separate intervals would;
the same spread of differences tells how many prompts a study needs.  Samples of one
prompt are averaged first and ``cluster=`` groups prompts sharing a source, as in
`opencode_lab.analysis.intervals`.  numpy, pandas and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError
from .intervals import NAN, PROMPT_KEYS, clustered_se, holm, is_binary, t_interval, unit_codes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: metrics where a smaller value is the better one (every other metric: larger is better)
LOWER_IS_BETTER: frozenset[str] = frozenset({"latency_s", "ttft_s", "cost_usd"})
PAIRED_COLUMNS: tuple[str, ...] = (
    "n_prompts", "mean_a", "mean_b", "difference", "se", "ci_low", "ci_high", "p_value", "p_holm", "test", "verdict",
)  # fmt: skip


def paired(
    results: pd.DataFrame,
    metric: str = "score",
    *,
    by: str = "model",
    cluster: str | None = None,
    confidence: float = 0.95,
    higher_is_better: bool | None = None,
) -> pd.DataFrame:
    """Every pair of models compared on the prompts both answered, one row per pair (a, b).

    Only successful rows with a value of ``metric`` count; samples of one prompt are
    averaged first.  Index ``(model_a, model_b)`` in sorted order; columns:

    - ``n_prompts`` prompts both models answered; ``mean_a``, ``mean_b`` their means there;
    - ``difference`` mean of (a - b) per prompt; ``se`` its standard error (cluster-robust with
      ``cluster=``); ``ci_low``, ``ci_high`` its interval (t, clusters - 1 degrees of freedom);
    - ``p_value``: McNemar's exact (binomial) test for 0/1 values with one sample per prompt
      and no clusters, the paired t test otherwise (named in ``test``);
    - ``p_holm`` the p-value Holm-adjusted across all pairs;
    - ``verdict`` "A better" / "B better" when ``p_holm < 1 - confidence``, else "no detectable
      difference" ("too few paired prompts" under two).  Better means higher, except for
      `LOWER_IS_BETTER` metrics such as ``latency_s``; ``higher_is_better`` overrides.
    """
    import pandas as pd

    table, prompt_clusters, binary = _prompt_table(results, metric, by, cluster)
    lower_wins = metric in LOWER_IS_BETTER if higher_is_better is None else not higher_is_better
    index, rows = [], []
    for a, b in combinations(sorted(table.columns, key=str), 2):
        both = table[[a, b]].notna().all(axis=1).to_numpy()
        rows.append(
            _pair(table[a].to_numpy()[both], table[b].to_numpy()[both], prompt_clusters[both], binary, confidence)
        )
        index.append((a, b))
    out = pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    out["p_holm"] = holm(out["p_value"].tolist())
    out["verdict"] = [
        _verdict(row.difference, row.p_holm, row.n_prompts, 1 - confidence, lower_wins) for row in out.itertuples()
    ]
    out["n_prompts"] = out["n_prompts"].astype("int64")
    out.index = pd.MultiIndex.from_tuples(index, names=["model_a", "model_b"]) if index else _empty_pairs()
    return out


def sample_size(
    effect: float,
    *,
    pilot: pd.DataFrame | None = None,
    sd: float | None = None,
    p: float | None = None,
    correlation: float = 0.0,
    metric: str = "score",
    by: str = "model",
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Prompts needed for a two-sided paired t test at ``alpha`` to detect a true gap of ``effect`` with ``power``.

    The SD of the per-prompt differences comes from exactly one of:

    - ``pilot``: a results frame; per-prompt differences of ``metric`` between every pair of
      its models, and the largest of their SDs (enough prompts for every pair);
    - ``sd``: an assumed SD of the per-prompt differences;
    - ``p``: 0/1 scores, the weaker model scoring ``p`` and the other ``p + effect``, their
      per-prompt results correlated by ``correlation`` (0: independent, the cautious
      default; models tend to fail the same hard prompts, which makes fewer prompts enough).

    ``alpha`` is per comparison: with several pairs, divide it by their number to stay safe.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise InvalidRequestError(f"alpha and power must be between 0 and 1 (got alpha={alpha}, power={power})")
    if not (effect > 0 and math.isfinite(effect)):
        raise InvalidRequestError(f"effect must be a positive difference to detect, not {effect!r}")
    given = [name for name, value in (("pilot", pilot), ("sd", sd), ("p", p)) if value is not None]
    if len(given) != 1:
        raise InvalidRequestError(f"sample_size() needs exactly one of pilot=, sd= or p= (got {given or 'none'})")
    if pilot is not None:
        spread = _pilot_sd(pilot, metric, by)
    elif sd is not None:
        spread = float(sd)
    else:
        spread = _binary_sd(float(p), effect, correlation)  # type: ignore[arg-type]
    if not (spread > 0 and math.isfinite(spread)):
        raise InvalidRequestError(f"the SD of the paired differences must be positive and finite, not {spread!r}")
    return _prompts_for(effect, spread, alpha, power)


# -- helpers --------------------------------------------------------------------------------


def _prompt_table(
    results: pd.DataFrame, metric: str, by: str, cluster: str | None
) -> tuple[pd.DataFrame, np.ndarray, bool]:
    """Per-prompt means of ``metric`` (rows: prompts, columns: models), each prompt's cluster, and whether
    the values are single 0/1 outcomes (one sample per prompt, no clusters)."""
    import numpy as np
    import pandas as pd

    missing = [c for c in (metric, by) if c not in results.columns]
    if missing:
        raise InvalidRequestError(f"no column {missing[0]!r} in the results (columns: {list(results.columns)})")
    if not any(c in results.columns for c in PROMPT_KEYS):
        raise InvalidRequestError("pairing needs a prompt_id or prompt column to match each model's answers")
    values = pd.to_numeric(results[metric], errors="coerce").astype("float64")
    if results[metric].notna().sum() != values.notna().sum():
        raise InvalidRequestError(f"metric {metric!r} must be numeric")
    prompts, clusters = unit_codes(results, cluster)
    ok = results["error_type"].isna().to_numpy() if "error_type" in results.columns else True
    keep = ok & values.notna().to_numpy()
    long = pd.DataFrame(
        {"model": results[by].to_numpy()[keep], "prompt": prompts[keep], "value": values.to_numpy()[keep]}
    )
    cluster_of = dict(zip(prompts[keep], clusters[keep], strict=True))
    table = long.pivot_table(index="prompt", columns="model", values="value", aggfunc="mean", sort=True)
    samples = long.groupby(["model", "prompt"]).size()
    binary = cluster is None and bool((samples == 1).all()) and is_binary(long["value"].to_numpy())
    return table, np.array([cluster_of[p] for p in table.index], dtype=np.int64), binary


def _pair(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, binary: bool, confidence: float) -> list[object]:
    from scipy.stats import binomtest, t

    n = len(a)
    if n < 2:
        mean_a, mean_b = (float(a.mean()), float(b.mean())) if n else (NAN, NAN)
        return [n, mean_a, mean_b, mean_a - mean_b, NAN, NAN, NAN, NAN, NAN, "", ""]
    d = a - b
    diff, se = float(d.mean()), clustered_se(d, clusters)
    n_clusters = len(set(clusters.tolist()))
    low, high = t_interval(diff, se, n_clusters, confidence)
    if binary:
        wins_a, wins_b = int((d > 0).sum()), int((d < 0).sum())
        p_value = binomtest(wins_a, wins_a + wins_b, 0.5).pvalue if wins_a + wins_b else 1.0
        test = "McNemar exact"
    else:
        if math.isnan(se) or se == 0:
            p_value = 1.0 if diff == 0 or math.isnan(se) else 0.0
        else:
            p_value = 2 * float(t.sf(abs(diff) / se, n_clusters - 1))
        test = "paired t"
    return [n, float(a.mean()), float(b.mean()), diff, se, low, high, float(p_value), NAN, test, ""]


def _verdict(diff: float, p_holm: float, n: int, alpha: float, lower_wins: bool) -> str:
    if n < 2:
        return "too few paired prompts"
    if not p_holm < alpha:
        return "no detectable difference"
    return "A better" if (diff < 0) == lower_wins else "B better"


def _empty_pairs() -> pd.MultiIndex:
    import pandas as pd

    return pd.MultiIndex.from_arrays([[], []], names=["model_a", "model_b"])


def _pilot_sd(pilot: pd.DataFrame, metric: str, by: str) -> float:
    import numpy as np

    table, _, _ = _prompt_table(pilot, metric, by, None)
    spreads = []
    for a, b in combinations(table.columns, 2):
        d = (table[a] - table[b]).dropna().to_numpy()
        if len(d) >= 2:
            spreads.append(float(np.std(d, ddof=1)))
    if not spreads:
        raise InvalidRequestError(
            f"the pilot needs two models with at least two prompts both answered (models: {list(table.columns)})"
        )
    return max(spreads)


def _binary_sd(p: float, effect: float, correlation: float) -> float:
    if not 0 < p < 1 or not p + effect <= 1:
        raise InvalidRequestError(f"p={p} and p + effect={p + effect} must both be proportions between 0 and 1")
    if not -1 <= correlation <= 1:
        raise InvalidRequestError(f"correlation must be between -1 and 1, not {correlation}")
    var_a, var_b = (p + effect) * (1 - p - effect), p * (1 - p)
    return math.sqrt(max(0.0, var_a + var_b - 2 * correlation * math.sqrt(var_a * var_b)))


def _prompts_for(effect: float, sd: float, alpha: float, power: float) -> int:
    """Smallest n >= 2 whose two-sided paired t test has at least ``power`` (noncentral t)."""
    from scipy.stats import nct, norm, t

    def achieved(n: int) -> float:
        critical = float(t.ppf(1 - alpha / 2, n - 1))
        shift = effect / sd * math.sqrt(n)
        return float(nct.sf(critical, n - 1, shift) + nct.cdf(-critical, n - 1, shift))

    n = max(2, math.ceil(((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / effect) ** 2))
    while achieved(n) < power:
        n += 1
    while n > 2 and achieved(n - 1) >= power:
        n -= 1
    return n
