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
        """Does *row* pass the check, at `threshold`?"""
        return bool(self.value(row) >= self.threshold)

    def value(self, row: Mapping[str, Any]) -> float:
        """The check's verdict on *row* as a number (True is 1, False 0); NaN, which never passes, for a failed
        call, an answer the check could not judge, or a check that raised."""
        if not is_missing(row.get("error_type")) or is_missing(row.get("response")):
            return math.nan
        try:
            value = self.check(row)
        except Exception:  # a check is the user's code: its failure escalates, it never loses the row
            return math.nan
        if isinstance(value, Score):
            value = value.value
        try:
            number = float(value)
        except (TypeError, ValueError):
            return math.nan
        return number if math.isfinite(number) else math.nan


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


def checked(plan: Cascade, data: Training, rows: pd.DataFrame | None, quality: str) -> np.ndarray:
    """The check's value (`Cascade.value`) of every prompt's answer from each model of *plan* but the last
    (prompts x steps): on *rows* (the first sample of each prompt x model), or with None on rows holding
    only each prompt x model's *quality* (from *data*)."""
    missing = [m for m in plan.models if m not in data.models]
    if missing:
        raise InvalidRequestError(f"cascade model {missing[0]!r} is not in the results (models: {list(data.models)})")
    first = None
    if rows is not None:
        ordered = rows.sort_values("sample", kind="stable") if "sample" in rows.columns else rows
        first = ordered.drop_duplicates(["prompt", "model"]).set_index(["prompt", "model"])
    values = np.full((len(data.table), len(plan.models) - 1), np.nan)
    for p, prompt in enumerate(data.table["prompt"]):
        for step, model in enumerate(plan.models[:-1]):
            row: dict[str, Any] = {
                "prompt": prompt,
                "model": model,
                "response": "",
                quality: data.quality[p, data.models.index(model)],
            }
            if first is not None:
                if (prompt, model) not in first.index:
                    raise InvalidRequestError(f"model {model!r} has no answer to prompt {prompt[:60]!r} to replay")
                row |= first.loc[(prompt, model)].to_dict()
            values[p, step] = plan.value(row)
    return values


def replay(plan: Cascade, data: Training, values: np.ndarray, threshold: float) -> Replay:
    """*plan* at *threshold* on collected results, given its check's *values* (`checked`): quality and cost
    per prompt from *data*, costs summed over every step taken."""
    columns = [data.models.index(m) for m in plan.models]
    passed = np.column_stack([values >= threshold, np.ones(len(values), dtype=bool)])  # the last answer is kept
    steps = np.argmax(passed, axis=1)
    cost = np.where(np.isfinite(data.cost), data.cost, data.mean_cost)[:, columns]
    taken = np.arange(len(columns))[None, :] <= steps[:, None]
    kept = np.array(columns)[steps]
    rows = np.arange(len(values))
    return Replay(data.quality[rows, kept], (cost * taken).sum(axis=1), kept, steps)


def simulate(plan: Cascade, data: Training, rows: pd.DataFrame | None, quality: str) -> Replay:
    """*plan* replayed on collected results at its own threshold (see `checked` and `replay`)."""
    return replay(plan, data, checked(plan, data, rows, quality), plan.threshold)
