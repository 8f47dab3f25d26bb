"""Human labels: what a person said about a results row, as a score column and as battles.

A label is either a *verdict* on one row (``correct``, ``wrong``, ``partial``, or a number in
[0, 1]) or a *preference* between two models' answers to one prompt (``better``, ``worse``,
``tie``, with ``over=`` the other model).  The run log keeps every label with who gave it and
when (`opencode_lab.session.runlog.RunLog.add_label`); a later label by the same person on the
same row replaces their earlier one, and several people's verdicts are averaged.

- `human_scores`: the verdicts as a ``score_human`` column of a results frame (NaN where no one
  labelled), so `stats`, `paired`, `diff` and the plots read them like any scorer's.
- `label_battles`: preferences, and verdicts on two models' answers to one prompt, as battles for
  `opencode_lab.ratings` (1: model_a won, 0: lost, 0.5: a tie).

pandas is imported inside the functions.
"""

from __future__ import annotations

import math
from difflib import get_close_matches
from itertools import combinations
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

VERDICTS: dict[str, float] = {"correct": 1.0, "partial": 0.5, "wrong": 0.0}
PREFERENCES: dict[str, float] = {"better": 1.0, "tie": 0.5, "worse": 0.0}
HUMAN = "score_human"
_ROW = ["run", "prompt_id", "model", "sample"]


def label_value(verdict: str | float, over: str | None = None) -> tuple[float, str]:
    """(value, label) of a verdict (no *over*) or a preference over model *over*; refuses, naming the closest
    word, anything else."""
    words = PREFERENCES if over is not None else VERDICTS
    if isinstance(verdict, bool) or not isinstance(verdict, str | int | float):
        raise InvalidRequestError(f"a label is one of {', '.join(words)} or a number in [0, 1], got {verdict!r}")
    if isinstance(verdict, str):
        word = verdict.strip().lower()
        if word not in words:
            close = get_close_matches(word, list(words), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            kind = f"a preference over {over!r}" if over is not None else "a verdict"
            raise InvalidRequestError(f"unknown {kind} {verdict!r}{hint}; use one of {', '.join(words)}")
        return words[word], word
    value = float(verdict)
    if not 0 <= value <= 1 or math.isnan(value):
        raise InvalidRequestError(f"a numeric label is a score in [0, 1], got {verdict!r}")
    return value, f"{value:g}"


def latest(labels: pd.DataFrame) -> pd.DataFrame:
    """Each person's last label per row (and per preference pair)."""
    keys = [*_ROW, "over", "who"]
    return labels.assign(over=labels["over"].fillna("")).drop_duplicates(keys, keep="last")


def human_scores(results: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """*results* with ``score_human``: the mean of the latest verdict of each person on the row, NaN unlabelled.
    Rows are matched by (prompt_id, model, sample); *labels* of other runs than the rows' are ignored."""
    verdicts = latest(labels)
    verdicts = verdicts[verdicts["over"] == ""]
    means = verdicts.groupby(["prompt_id", "model", "sample"], dropna=False)["value"].mean().reset_index()
    lookup = {
        (str(p), str(m), int(s)): v
        for p, m, s, v in zip(means["prompt_id"], means["model"], means["sample"], means["value"], strict=True)
    }
    keys = zip(results["prompt_id"], results["model"], results["sample"].fillna(0), strict=True)
    out = results.copy()
    out[HUMAN] = [lookup.get((str(p), str(m), int(s)), math.nan) for p, m, s in keys]
    return out


def label_battles(labels: pd.DataFrame) -> pd.DataFrame:
    """Battles from human labels (``model_a``, ``model_b``, ``score``, ``prompt_id``, ``run``, ``who``): each
    preference, and each pair of models whose answers to one prompt one person gave verdicts on."""
    import pandas as pd

    last = latest(labels)
    rows: list[dict[str, Any]] = [
        {"model_a": r.model, "model_b": r.over, "score": r.value, "prompt_id": r.prompt_id, "run": r.run, "who": r.who}
        for r in last[last["over"] != ""].itertuples()
    ]
    verdicts = last[last["over"] == ""]
    for (run, prompt_id, who), group in verdicts.groupby(["run", "prompt_id", "who"], sort=False):
        means = group.groupby("model", sort=False)["value"].mean()
        for a, b in combinations(means.index, 2):
            score = 0.5 if means[a] == means[b] else float(means[a] > means[b])
            rows.append({"model_a": a, "model_b": b, "score": score, "prompt_id": prompt_id, "run": run, "who": who})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "score", "prompt_id", "run", "who"])
