"""Which model is better, and how sure: every pair of models compared on the same prompts.

After Miller (2024), "Adding Error Bars to Evals" (arXiv 2411.00640): the per-prompt
difference removes how hard each prompt is from the noise, so a paired comparison detects
smaller gaps than two separate intervals would.  Samples of one prompt are averaged first
and ``cluster=`` groups prompts sharing a source, as in `opencode_lab.analysis.intervals`.

One analysis whose parts agree: for each pair, the test gives the p-value and the interval
is the set of differences that same test does not reject, so an interval excluding 0 and a
p-value below alpha always go together, and the verdict is read from the interval.

- 0/1 outcomes per prompt (one sample, or samples that agree), no clusters: McNemar's
  asymptotic test with Tango's score interval (`opencode_lab.analysis.mcnemar`);
- otherwise: the paired t test on per-prompt differences (cluster-robust SE, t on G - 1
  degrees of freedom) with its t interval, kept inside [-1, 1] for [0, 1] scores.

Several pairs: Bonferroni for both, p-values multiplied by the number of pairs and intervals
at level 1 - alpha / pairs (Holm's p-values have no matching intervals, so they could
contradict them).  Failures follow `opencode_lab.analysis.failures`.  numpy, pandas and
scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.errors import InvalidRequestError
from ..core.schema import tagged
from .failures import check_failures, listing, prompt_labels, values_under
from .intervals import NAN, PROMPT_KEYS, clip, clustered_se, is_binary, t_interval, unit_codes
from .mcnemar import mcnemar_p, tango_interval

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: metrics where a smaller value is the better one (every other metric: larger is better)
LOWER_IS_BETTER: frozenset[str] = frozenset({"latency_s", "ttft_s", "cost_usd"})
PAIRED_COLUMNS: tuple[str, ...] = (
    "n_prompts", "lost", "failed_a", "failed_b", "mean_a", "mean_b", "difference", "se", "ci_low", "ci_high",
    "ci_level", "only_a", "only_b", "p_value", "p_adjusted", "test", "verdict", "note",
)  # fmt: skip
NO_DIFFERENCE = "no detectable difference"
TOO_FEW = "too few paired prompts"
MCNEMAR = "McNemar"
PAIRED_T = "paired t"
T = TypeVar("T")
_WORDS = {"latency_s": ("faster", " s"), "ttft_s": ("faster", " s"), "cost_usd": ("cheaper", " USD")}


def paired(
    results: pd.DataFrame,
    metric: str = "score",
    *,
    by: str = "model",
    cluster: str | None = None,
    confidence: float = 0.95,
    higher_is_better: bool | None = None,
    failures: str = "count",
) -> pd.DataFrame:
    """Every pair of models compared on the same prompts, one row per pair (a, b) in the models' order of
    first appearance (the order they were given to ``compare``).

    A failed row counts as a score of 0 for a [0, 1] score (``failures="count"``, the default) or is left
    out (``failures="drop"``: "when it answers"); other metrics always leave failures out.  Columns:

    - ``n_prompts`` prompts the comparison rests on; ``lost`` prompts both models were asked but left out
      because a call failed; ``failed_a``, ``failed_b`` prompts on which each model failed;
    - ``mean_a``, ``mean_b`` means on those prompts; ``difference`` mean of (a - b) per prompt, ``se`` its
      standard error (cluster-robust with ``cluster=``);
    - ``ci_low``, ``ci_high`` the interval of the difference at ``ci_level`` = 1 - (1 - confidence) / pairs
      (Bonferroni): Tango's score interval (McNemar) or the t interval (paired t), named in ``test``;
    - ``only_a``, ``only_b`` discordant prompts of 0/1 outcomes (only a right, only b right);
    - ``p_value`` of the test; ``p_adjusted`` = min(1, p x pairs), below 1 - confidence exactly when the
      interval excludes 0;
    - ``verdict``: "<model> better by 40.0 points [3.1, 76.9]" (``faster``/``cheaper`` for latency and cost)
      when the interval excludes 0, else "no detectable difference" ("too few paired prompts" under two);
    - ``note``: the failures and who had them, prompts left out, and the verdict under the other failure
      policy when it differs.

    Better means higher, except for `LOWER_IS_BETTER` metrics such as ``latency_s``; ``higher_is_better``
    overrides.
    """
    import pandas as pd

    failures = check_failures(failures)
    if not 0 < confidence < 1:
        raise InvalidRequestError(f"confidence must be between 0 and 1, got {confidence!r}")
    table = PromptTable.of(results, metric, by, cluster, failures)
    lower_wins = metric in LOWER_IS_BETTER if higher_is_better is None else not higher_is_better
    pairs = list(combinations(range(len(table.models)), 2))
    tested = sum(table.shared(a, b, table.values).sum() >= 2 for a, b in pairs)
    level = 1 - (1 - confidence) / max(1, tested)
    rows = []
    for a, b in pairs:
        names = table.models[a], table.models[b]
        row = table.compare(a, b, table.values, level)
        row["p_adjusted"] = min(1.0, row["p_value"] * tested) if row["p_value"] == row["p_value"] else NAN
        winner = _winner(*names, row, lower_wins)
        row["verdict"] = _verdict(winner, row, metric, table.bounded)
        notes = table.notes(a, b, row["n_prompts"])
        if table.alternative is not None:
            other = table.compare(a, b, table.alternative, level)
            other_winner = _winner(*names, other, lower_wins)
            if other_winner != winner:
                policy = "with failures='drop' (when they answer)" if failures == "count" else "counting failures as 0"
                notes.append(f"{policy}: {_verdict(other_winner, other, metric, table.bounded)}")
        row["note"] = "; ".join(notes)
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    for name in ("n_prompts", "lost", "failed_a", "failed_b"):
        out[name] = out[name].astype("int64")
    for name in ("only_a", "only_b"):
        out[name] = out[name].astype("Int64")
    levels = ["model_a", "model_b"]
    named = [(table.models[a], table.models[b]) for a, b in pairs]
    empty = pd.MultiIndex.from_arrays([[], []], names=levels)
    out.index = pd.MultiIndex.from_tuples(named, names=levels) if named else empty
    tagged(out, "paired")
    out.attrs["failures"] = failures
    out.attrs["points"] = table.bounded  # differences of a [0, 1] score: the verdicts read them as points
    return out


@dataclass
class PromptTable:
    """Per-prompt means of one metric (rows: prompts, columns: models in order of appearance) under the chosen
    failure policy, under the other one when it differs (``alternative``), and which prompts each model was
    asked and failed on."""

    models: list[Any]
    values: np.ndarray
    alternative: np.ndarray | None
    asked: np.ndarray
    failed: np.ndarray
    clusters: np.ndarray
    labels: list[str]
    errors: list[str]
    bounded: bool
    counted: bool
    clustered: bool

    @classmethod
    def of(cls, results: pd.DataFrame, metric: str, by: str, cluster: str | None, failures: str) -> PromptTable:
        import numpy as np
        import pandas as pd

        missing = [c for c in (metric, by) if c not in results.columns]
        if missing:
            raise InvalidRequestError(f"no column {missing[0]!r} in the results (columns: {list(results.columns)})")
        if not any(c in results.columns for c in PROMPT_KEYS):
            raise InvalidRequestError("pairing needs a prompt_id or prompt column to match each model's answers")
        prompt_codes, clusters = unit_codes(results, cluster)
        counted_values, failed, bounded = values_under(results, metric, "count")
        dropped, _, _ = values_under(results, metric, "drop")
        model, models = pd.factorize(results[by], use_na_sentinel=False)  # in order of first appearance
        _, first, prompt = np.unique(prompt_codes, return_index=True, return_inverse=True)
        shape = (len(first), len(models))

        def total(weights: np.ndarray) -> np.ndarray:
            return np.bincount(prompt * shape[1] + model, weights, minlength=shape[0] * shape[1]).reshape(shape)

        def means(values: np.ndarray) -> np.ndarray:
            known = ~np.isnan(values)
            with np.errstate(invalid="ignore"):
                return total(np.where(known, values, 0.0)) / total(known.astype(float))

        counted = bounded and failures == "count"
        policies = {"count": means(counted_values), "drop": means(dropped)}
        labels = prompt_labels(results)
        kinds = results["error_type"].to_numpy() if "error_type" in results.columns else np.full(len(results), None)
        return cls(
            models=list(models),
            values=policies["count" if counted else "drop"],
            alternative=policies["drop" if counted else "count"] if bounded and failed.any() else None,
            asked=total(np.ones(len(results))) > 0,
            failed=total(failed.astype(float)) > 0,
            clusters=clusters[first],
            labels=[labels[i] for i in first],
            errors=[_error_mix(kinds[(model == k) & failed]) for k in range(len(models))],
            bounded=bounded,
            counted=counted,
            clustered=cluster is not None,
        )

    def shared(self, a: int, b: int, values: np.ndarray) -> np.ndarray:
        """Which prompts both models (by position) have a value for."""
        import numpy as np

        return ~np.isnan(values[:, a]) & ~np.isnan(values[:, b])

    def compare(self, a: int, b: int, values: np.ndarray, level: float) -> dict[str, Any]:
        """The numbers of one pair (everything but the adjusted p-value, verdict and note)."""
        both = self.shared(a, b, values)
        asked = self.asked[:, a] & self.asked[:, b]
        failed_a, failed_b = self.failed[:, a] & asked, self.failed[:, b] & asked
        x, y = values[both, a], values[both, b]
        row: dict[str, Any] = {
            "n_prompts": int(both.sum()), "lost": int((asked & ~both & (failed_a | failed_b)).sum()),
            "failed_a": int(failed_a.sum()), "failed_b": int(failed_b.sum()),
            "mean_a": float(x.mean()) if len(x) else NAN, "mean_b": float(y.mean()) if len(y) else NAN,
            "ci_level": level, "only_a": None, "only_b": None,
        }  # fmt: skip
        row.update(_test(x, y, self.clusters[both], not self.clustered, self.bounded, level))
        return row

    def notes(self, a: int, b: int, n: int) -> list[str]:
        """What a reader must know about this pair's prompts: failures (counted or left out), prompts without a
        score, and prompts the pair was not compared on."""
        notes = []
        asked = self.asked[:, a] & self.asked[:, b]
        for k in (a, b):
            failed = self.failed[:, k] & asked
            if failed.any():
                how = "counted as 0" if self.counted else "left out"
                which = listing([self.labels[i] for i in failed.nonzero()[0]])
                count = int(failed.sum())
                notes.append(f"{self.models[k]} failed on {count} prompt(s) ({self.errors[k]}), {how}: {which}")
        unscored = asked & ~self.shared(a, b, self.values) & ~(self.failed[:, a] | self.failed[:, b])
        if unscored.any():
            notes.append(f"{int(unscored.sum())} prompt(s) without a score left out")
        if 0 < n < len(self.labels):
            notes.append(f"compared on {n} of the {len(self.labels)} prompts")
        return notes


def _test(
    x: np.ndarray, y: np.ndarray, clusters: np.ndarray, unclustered: bool, bounded: bool, level: float
) -> dict[str, Any]:
    """Difference, SE, interval, discordant counts and p-value of one pair's per-prompt values."""
    from scipy.stats import t

    n = len(x)
    if n < 2:
        return {"difference": float((x - y).mean()) if n else NAN, "se": NAN, "ci_low": NAN, "ci_high": NAN,
                "p_value": NAN, "test": ""}  # fmt: skip
    d = x - y
    diff, se = float(d.mean()), clustered_se(d, clusters)
    out: dict[str, Any] = {"difference": diff, "se": se}
    if unclustered and is_binary(x) and is_binary(y):
        only_a, only_b = int((d > 0).sum()), int((d < 0).sum())
        low, high = tango_interval(only_a, only_b, n, level)
        return {**out, "ci_low": low, "ci_high": high, "only_a": only_a, "only_b": only_b,
                "p_value": mcnemar_p(only_a, only_b), "test": MCNEMAR}  # fmt: skip
    groups = len(set(clusters.tolist()))
    if math.isnan(se):
        p_value = NAN
    elif se == 0:  # every prompt differs by the same amount: the t statistic is 0 or infinite
        p_value = 1.0 if diff == 0 else 0.0
    else:
        p_value = 2 * float(t.sf(abs(diff) / se, groups - 1))
    low, high = clip(t_interval(diff, se, groups, level), (-1.0, 1.0) if bounded else None)
    return {**out, "ci_low": low, "ci_high": high, "p_value": p_value, "test": PAIRED_T}


def _winner(a: T, b: T, row: dict[str, Any], lower_wins: bool) -> T | None:
    """The better model when the interval excludes 0, else None."""
    if row["ci_low"] > 0:
        larger, smaller = a, b
    elif row["ci_high"] < 0:
        larger, smaller = b, a
    else:
        return None
    return smaller if lower_wins else larger


def _verdict(winner: object, row: dict[str, Any], metric: str, bounded: bool) -> str:
    if row["n_prompts"] < 2 or math.isnan(row["ci_low"]):
        return TOO_FEW
    if winner is None:
        return NO_DIFFERENCE
    diff, low, high = row["difference"], row["ci_low"], row["ci_high"]
    size, low, high = (diff, low, high) if low > 0 else (-diff, -high, -low)  # the larger one's lead
    word, unit = _WORDS.get(metric, ("better", ""))
    if bounded:
        return f"{winner} better by {100 * size:.1f} points [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{winner} {word} by {size:.3g}{unit} [{low:.3g}, {high:.3g}]"


def _error_mix(kinds: pd.Series) -> str:
    """``"schema_mismatch"`` or ``"timeout 3, server_error 1"``: a model's failures by kind, most common first."""
    counts = Counter(str(k) for k in kinds)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
