"""What a selector learns from: one row per distinct prompt, each model's quality and cost on it.

A compare frame has a row per prompt x model x sample.  Selection is decided per prompt *text*
(the unit a selector sees), so rows are grouped by the prompt as sent: samples are averaged, and
the same text asked under two prompt ids is one prompt (it can never sit on both sides of a
cross-validation split).  A failed row scores 0 when the quality column is a score (a failure is a
result, as in ``stats``); a row nobody could score (NaN without an error) is left out.  Cost is the
per-model mean of the cost column over the rows that report it; with ``cost_usd``, a cache hit counts what
it saved (what the answer costs), not the 0 it paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Training:
    """The per-prompt table (``prompt`` + the feature columns) and quality/cost matrices (prompt x model)."""

    table: pd.DataFrame
    quality: np.ndarray
    cost: np.ndarray
    models: tuple[str, ...]

    @property
    def mean_cost(self) -> np.ndarray:
        """Each model's mean cost over the prompts where it reported one."""
        return np.nanmean(self.cost, axis=0)

    def to_json(self) -> dict[str, Any]:
        """Everything a saved selector needs to be refitted: plain JSON, no pickled objects."""
        return {
            "table": self.table.to_dict(orient="list"),
            "quality": _nan_to_none(self.quality),
            "cost": _nan_to_none(self.cost),
            "models": list(self.models),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Training:
        """The training data of a saved selector, checked as hostile input: ValueError names what is wrong."""
        import pandas as pd

        models = data["models"]
        if not isinstance(models, list) or len(models) < 2 or not all(isinstance(m, str) for m in models):
            raise ValueError("models must be a list of at least two model names")
        if len(set(models)) != len(models):
            raise ValueError("a model is named twice")
        table = pd.DataFrame(data["table"])
        if "prompt" not in table.columns or not all(isinstance(p, str) for p in table["prompt"]) or table.empty:
            raise ValueError("the training table needs a 'prompt' column of strings")
        shape = (len(table), len(models))
        quality, cost = np.array(data["quality"], dtype=float), np.array(data["cost"], dtype=float)
        if quality.shape != shape or cost.shape != shape:
            raise ValueError(f"quality and cost must be {shape[0]} x {shape[1]} (prompts x models)")
        if np.isinf(quality).any() or np.isinf(cost).any():
            raise ValueError("quality and cost must be finite or null")
        return cls(table, quality, cost, tuple(models))


def _nan_to_none(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in matrix]


def training(results: pd.DataFrame, quality: str, cost: str, columns: Sequence[str] = ()) -> Training:
    """Group a results frame into a `Training`; every problem is named before anything is fitted."""
    import pandas as pd

    if not isinstance(results, pd.DataFrame):
        raise InvalidRequestError(f"learn_selector needs a results DataFrame, not {type(results).__name__}")
    for name in ("prompt", "model", quality, cost, *columns):
        if name not in results.columns:
            raise InvalidRequestError(
                f"column {name!r} is not in the results (columns: {', '.join(map(str, results.columns))})"
            )
    for name in (quality, cost):
        if not pd.api.types.is_numeric_dtype(results[name]):
            raise InvalidRequestError(f"column {name!r} must be numeric to learn from, got {results[name].dtype}")
    frame = results.copy()
    failed = frame["error_type"].notna() if "error_type" in frame.columns else pd.Series(False, index=frame.index)
    frame[quality] = frame[quality].astype(float).where(~(failed & frame[quality].isna()), 0.0)
    frame[cost] = frame[cost].astype(float)
    if cost == "cost_usd" and {"cached", "cost_saved_usd"} <= set(frame.columns):
        cached = frame["cached"].fillna(False).astype(bool)  # a hit paid 0: what the answer costs is what it saved
        frame.loc[cached, cost] = frame.loc[cached, "cost_saved_usd"].astype(float)
    if not np.isfinite(frame[quality].dropna()).all() or np.isinf(frame[cost]).any():
        raise InvalidRequestError(f"columns {quality!r} and {cost!r} must not hold infinite values")
    models = tuple(dict.fromkeys(frame["model"].astype(str)))
    if len(models) < 2:
        raise InvalidRequestError(f"a selector chooses between models: the results hold {len(models)} ({models})")
    cells = frame.groupby(["prompt", "model"], sort=False)[[quality, cost]].mean()
    q = cells[quality].unstack("model").reindex(columns=list(models))
    c = cells[cost].unstack("model").reindex(columns=list(models))
    for model in models:
        if not np.isfinite(c[model]).any():
            raise InvalidRequestError(
                f"model {model!r} reports no {cost!r}: choose a cost it has (latency_s, output_tokens, cost_usd)"
            )
        if not np.isfinite(q[model]).any():
            raise InvalidRequestError(f"model {model!r} has no {quality!r} on any prompt")
    table = frame.drop_duplicates("prompt").set_index("prompt").reindex(q.index)[list(columns)].reset_index()
    return Training(table, q.to_numpy(dtype=float), c.to_numpy(dtype=float), models)
