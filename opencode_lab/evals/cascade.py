"""Cascades (FrugalGPT): ask the cheap model first, escalate to the next when its answer fails a check.

The check is anything that judges one results row (``response``, ``prompt``, ``model`` and the prompt
table's columns): a scorer or judge (accepted at or above *threshold*), a callable returning a bool,
a JSON schema the answer must match, or the name of a row column compared with *threshold*.  A
callable sees the whole row, so checks built on token log-probabilities plug in the same way once
rows carry them.  `simulate` replays a cascade on results already collected (every model asked every
prompt), which is how it is drawn on the cost–quality plane; `Lab.chat`/`compare` run it live.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InvalidRequestError
from .scorers import Score, is_missing, json_schema

if TYPE_CHECKING:
    import pandas as pd

    from .selection import Training

Check = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Cascade:
    """Models in the order they are asked, and the check an answer must pass to stop there."""

    models: tuple[str, ...]
    check: Check
    threshold: float = 1.0
    name: str = "cascade"

    def accepts(self, row: Mapping[str, Any]) -> bool:
        """Does *row* pass the check?  A failed call never does; a check that raises counts as a fail."""
        if not is_missing(row.get("error_type")) or is_missing(row.get("response")):
            return False
        try:
            value = self.check(row)
        except Exception:  # a check is the user's code: its failure escalates, it never loses the row
            return False
        if isinstance(value, Score):
            value = value.value
        if isinstance(value, bool | np.bool_):
            return bool(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return math.isfinite(number) and number >= self.threshold


def cascade(
    models: Sequence[str], accept: Check | Mapping[str, Any] | str, *, threshold: float = 1.0, name: str | None = None
) -> Cascade:
    """A cascade over *models* (cheapest first): each answer is kept when *accept* passes it, else the next
    model is asked; the last model's answer is always kept."""
    if isinstance(models, str) or len(models) < 2 or not all(isinstance(m, str) and m.strip() for m in models):
        raise InvalidRequestError(f"a cascade needs a list of at least two model names, got {models!r}")
    if len(set(models)) != len(models):
        raise InvalidRequestError(f"a cascade names a model twice: {list(models)}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise InvalidRequestError(f"threshold must be a finite number, got {threshold!r}")
    check: Check
    if isinstance(accept, str):
        column = accept

        def check(row: Mapping[str, Any]) -> Any:
            return row.get(column)

        check.__qualname__ = f"column {column!r}"
    elif isinstance(accept, Mapping):
        check = json_schema(dict(accept))
    elif callable(accept):
        check = accept
    else:
        raise InvalidRequestError(
            f"accept must be a scorer or callable, a JSON schema or a column name, not {type(accept).__name__}"
        )
    return Cascade(tuple(models), check, float(threshold), name or "cascade:" + ">".join(models))


@dataclass(frozen=True)
class Replay:
    """A cascade replayed on collected results: per prompt, the kept answer's quality, the summed cost,
    the index of the model kept and how many times it escalated."""

    quality: np.ndarray
    cost: np.ndarray
    kept: np.ndarray
    escalations: np.ndarray


def simulate(plan: Cascade, data: Training, rows: pd.DataFrame | None, quality: str) -> Replay:
    """Replay *plan* on *rows* (results: the first sample of each prompt x model is what is checked; None:
    rows holding only each prompt x model's *quality*), with quality and cost from *data*."""
    missing = [m for m in plan.models if m not in data.models]
    if missing:
        raise InvalidRequestError(f"cascade model {missing[0]!r} is not in the results (models: {list(data.models)})")
    first = None
    if rows is not None:
        ordered = rows.sort_values("sample", kind="stable") if "sample" in rows.columns else rows
        first = ordered.drop_duplicates(["prompt", "model"]).set_index(["prompt", "model"])
    n = len(data.table)
    out = Replay(np.zeros(n), np.zeros(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int))
    for p, prompt in enumerate(data.table["prompt"]):
        for step, model in enumerate(plan.models):
            m = data.models.index(model)
            out.cost[p] += data.cost[p, m] if math.isfinite(data.cost[p, m]) else data.mean_cost[m]
            row: dict[str, Any] = {"prompt": prompt, "model": model, "response": "", quality: data.quality[p, m]}
            if first is not None:
                if (prompt, model) not in first.index:
                    raise InvalidRequestError(f"model {model!r} has no answer to prompt {prompt[:60]!r} to replay")
                row |= first.loc[(prompt, model)].to_dict()
            if step == len(plan.models) - 1 or plan.accepts(row):
                out.quality[p], out.kept[p], out.escalations[p] = data.quality[p, m], m, step
                break
    return out
