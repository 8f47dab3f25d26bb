"""Run versus baseline: which prompts got worse or better, and whether the new run is detectably worse.

Rows of the two runs are aligned by the *input* prompt, the row of the prompts table
(``prompt_id``, or a column the caller names), not by the text sent: a changed template or
system prompt is exactly what a diff compares.  Each model is compared with itself across
the runs; when each run holds one model, or the caller names the pair, those two are compared.

The test is `opencode_lab.analysis.statistics.paired` with the runs in place of models
(McNemar's test with Tango's interval for 0/1 scores, else the paired t test, samples of a
prompt averaged first, failures counting as 0 on [0, 1] scores unless ``failures="drop"``),
at a Bonferroni-adjusted level when several models are compared, so ``regressed`` is one
family-wise decision a CI job can gate on.  pandas is imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.schema import tagged
from .failures import check_failures
from .statistics import LOWER_IS_BETTER, PromptTable, paired

if TYPE_CHECKING:
    import pandas as pd

BASELINE, NEW = "baseline", "new"
WORSE, BETTER, SAME = "regression", "improvement", "same"
DIFF_COLUMNS: tuple[str, ...] = (
    "n_prompts", "baseline", "new", "change", "ci_low", "ci_high", "ci_level", "p_value", "test",
    "regressions", "improvements", "verdict", "note",
)  # fmt: skip


@dataclass(frozen=True)
class Diff:
    """A run compared with its baseline on one metric.

    ``summary``: one row per compared model (index ``model``, ``base → new`` for a named pair):
    ``baseline`` and ``new`` means on the shared prompts, ``change`` = new - baseline with its interval,
    the test's ``p_value``, how many prompts went each way and a ``verdict``.  ``prompts``: one row per
    prompt and model, regressions first (largest loss first), then improvements, then the rest.
    """

    metric: str
    summary: pd.DataFrame
    prompts: pd.DataFrame
    lower_is_better: bool

    @property
    def regressed(self) -> bool:
        """Whether the new run is detectably worse than the baseline for any compared model."""
        return bool(self.summary["verdict"].str.startswith("worse").any())

    def regressions(self) -> pd.DataFrame:
        return self.prompts[self.prompts["status"] == WORSE]

    def improvements(self) -> pd.DataFrame:
        return self.prompts[self.prompts["status"] == BETTER]

    def __repr__(self) -> str:
        lines = [f"diff of {self.metric}: new run vs baseline"]
        for model, row in self.summary.iterrows():
            lines.append(
                f"  {model}: {row['verdict']} ({row['regressions']} prompt(s) worse, {row['improvements']} better, "
                f"{row['n_prompts']} compared)"
            )
        return "\n".join(lines)


def diff(
    baseline: pd.DataFrame,
    new: pd.DataFrame,
    metric: str = "score",
    *,
    models: tuple[str, str] | None = None,
    on: str | None = None,
    failures: str = "count",
    confidence: float = 0.95,
    higher_is_better: bool | None = None,
) -> Diff:
    """Compare results frame *new* with *baseline* on *metric* (see the module doc).  *models*: the
    (baseline model, new model) pair to compare; *on*: the column aligning prompts (default ``prompt_id``
    when both frames have it, else ``prompt``)."""
    import pandas as pd

    failures = check_failures(failures)
    for side, frame in ((BASELINE, baseline), (NEW, new)):
        missing = [c for c in ("model", "error_type", metric) if c not in frame.columns]
        if missing:
            hint = " (score both runs: scorer=..., or name another metric)" if metric in missing else ""
            raise InvalidRequestError(f"the {side} run has no column {missing[0]!r}{hint}")
    key = on or ("prompt_id" if "prompt_id" in baseline.columns and "prompt_id" in new.columns else "prompt")
    for side, frame in ((BASELINE, baseline), (NEW, new)):
        if key not in frame.columns:
            raise InvalidRequestError(f"the {side} run has no column {key!r} to align prompts by")
    pairs = _pairs(baseline, new, models)
    level = 1 - (1 - confidence) / len(pairs)
    lower = metric in LOWER_IS_BETTER if higher_is_better is None else not higher_is_better
    summaries, prompt_rows, names = [], [], []
    for base_model, new_model in pairs:
        name = base_model if base_model == new_model else f"{base_model} → {new_model}"
        both = _aligned(baseline[baseline["model"] == base_model], new[new["model"] == new_model], key)
        test = paired(both, metric, by="run", confidence=level, higher_is_better=not lower, failures=failures)
        table = PromptTable.of(both, metric, "run", None, failures)
        per_prompt = _per_prompt(both, table, key, lower).assign(model=name)
        summaries.append(_summary(test, per_prompt, metric, lower, table.bounded))
        prompt_rows.append(per_prompt)
        names.append(name)
    summary = pd.DataFrame(summaries, columns=list(DIFF_COLUMNS), index=pd.Index(names, name="model"))
    for column in ("n_prompts", "regressions", "improvements"):
        summary[column] = summary[column].astype("int64")
    prompts = pd.concat(prompt_rows, ignore_index=True)
    order = prompts["status"].map({WORSE: 0, BETTER: 1}).fillna(2)
    loss = prompts["change"].abs().fillna(0) * -1
    prompts = prompts.assign(_o=order, _l=loss).sort_values(["_o", "_l"], kind="stable").drop(columns=["_o", "_l"])
    columns = ["model", key, "prompt", "baseline", "new", "change", "status", "response_baseline", "response_new"]
    if key == "prompt":
        columns.remove("prompt")
    return Diff(metric, tagged(summary, "diff"), tagged(prompts[columns].reset_index(drop=True), "diff_prompts"), lower)


def _pairs(baseline: pd.DataFrame, new: pd.DataFrame, models: tuple[str, str] | None) -> list[tuple[str, str]]:
    base_models = list(dict.fromkeys(baseline["model"].dropna().astype(str)))
    new_models = list(dict.fromkeys(new["model"].dropna().astype(str)))
    if models is not None:
        if len(models) != 2:
            raise InvalidRequestError(f"models= takes (baseline model, new model), got {models!r}")
        for side, name, have in ((BASELINE, models[0], base_models), (NEW, models[1], new_models)):
            if name not in have:
                raise InvalidRequestError(f"the {side} run has no model {name!r} (it has: {', '.join(have)})")
        return [(models[0], models[1])]
    shared = [m for m in base_models if m in new_models]
    if shared:
        return [(m, m) for m in shared]
    if len(base_models) == 1 and len(new_models) == 1:
        return [(base_models[0], new_models[0])]
    raise InvalidRequestError(
        f"the runs share no model (baseline: {', '.join(base_models)}; new: {', '.join(new_models)}): "
        "name the pair with models=(baseline model, new model)"
    )


def _aligned(base: pd.DataFrame, new: pd.DataFrame, key: str) -> pd.DataFrame:
    """Both runs' rows as one frame whose ``run`` says which and whose prompt identity is *key* alone; the
    ``prompt`` shown is the baseline's text (the new one's for prompts only the new run has)."""
    import pandas as pd

    text = {**dict(zip(new[key], new["prompt"], strict=True)), **dict(zip(base[key], base["prompt"], strict=True))}
    both = pd.concat([base.assign(run=BASELINE), new.assign(run=NEW)], ignore_index=True)
    both["prompt_id"] = both[key]
    both["prompt"] = [text.get(k) for k in both[key]]
    return both


def _per_prompt(both: pd.DataFrame, table: PromptTable, key: str, lower: bool) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    columns = {name: table.models.index(name) if name in table.models else None for name in (BASELINE, NEW)}
    nan = np.full(len(table.labels), np.nan)
    base = table.values[:, columns[BASELINE]] if columns[BASELINE] is not None else nan
    new = table.values[:, columns[NEW]] if columns[NEW] is not None else nan
    change = new - base
    status = [
        None if math.isnan(c) else SAME if c == 0 else WORSE if (c > 0) == lower else BETTER for c in change.tolist()
    ]
    firsts = both.drop_duplicates("prompt_id")
    answers = {
        side: both[both["run"] == side].drop_duplicates("prompt_id").set_index("prompt_id")["response"]
        for side in (BASELINE, NEW)
    }
    keys = list(firsts["prompt_id"])
    return pd.DataFrame({
        key: keys,
        "prompt": list(firsts["prompt"]),
        "baseline": base, "new": new, "change": change, "status": status,
        "response_baseline": [answers[BASELINE].get(k) for k in keys],
        "response_new": [answers[NEW].get(k) for k in keys],
    })  # fmt: skip


def _summary(test: pd.DataFrame, prompts: pd.DataFrame, metric: str, lower: bool, bounded: bool) -> dict[str, Any]:
    row = test.iloc[0] if len(test) else None
    worse, better = int((prompts["status"] == WORSE).sum()), int((prompts["status"] == BETTER).sum())
    if row is None:
        return {"n_prompts": 0, "regressions": worse, "improvements": better, "verdict": "too few paired prompts",
                "note": "the runs share no prompt"}  # fmt: skip
    change, low, high = -row["difference"], -row["ci_high"], -row["ci_low"]  # paired() reports baseline - new
    return {
        "n_prompts": row["n_prompts"], "baseline": row["mean_a"], "new": row["mean_b"], "change": change,
        "ci_low": low, "ci_high": high, "ci_level": row["ci_level"], "p_value": row["p_value"], "test": row["test"],
        "regressions": worse, "improvements": better, "verdict": _verdict(change, low, high, lower, bounded),
        "note": row["note"],
    }  # fmt: skip


def _verdict(change: float, low: float, high: float, lower: bool, bounded: bool) -> str:
    if math.isnan(low):
        return "too few paired prompts"
    if low <= 0 <= high:
        return "no detectable difference"
    worse = (low > 0) if lower else (high < 0)
    scale, unit = (100, " points") if bounded else (1, "")
    size, a, b = (abs(change) * scale, min(abs(low), abs(high)) * scale, max(abs(low), abs(high)) * scale)
    return f"{'worse' if worse else 'better'} by {size:.3g}{unit} [{a:.3g}, {b:.3g}]"
