"""Grading a results frame: plain scorers row by row, and scorers that ask a model (a judge) through the Lab.

A scorer that asks a model has an ``ascore(lab, rows, run_id=...)`` coroutine
returning one `Graded` per row; every call it makes goes through the Lab's
public API, so it is routed, rate-limited, cached, logged and counted like any
other.  `agrade` runs plain scorers with `opencode_lab.evals.scorers.score_rows`
and adds the judges' cost as ``judge_cost_usd``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from ..core.secrets import get_logger
from .scorers import Score, Scorer, score_rows, scorer_table, with_scores

if TYPE_CHECKING:
    import pandas as pd

    from ..core.asking import Asker

log = get_logger(__name__)


@dataclass(frozen=True)
class Graded:
    """A model-made score and what asking for it cost (0 from the cache or a local model, NaN unknown)."""

    score: Score
    cost_usd: float = 0.0


class ModelScorer(Protocol):
    """A scorer that asks a model (a judge): one `Graded` per row, every call through *lab*."""

    async def ascore(
        self, lab: Asker, rows: Sequence[Mapping[str, Any]], *, run_id: str | None = None
    ) -> list[Graded]: ...


def asks_a_model(scorer: object) -> TypeGuard[ModelScorer]:
    return callable(getattr(scorer, "ascore", None))


async def agrade(
    lab: Asker, frame: pd.DataFrame, scorer: Scorer | Mapping[str, Scorer] | None, *, run_id: str | None = None
) -> pd.DataFrame:
    """*frame* with a score column per scorer (see `opencode_lab.evals.scorers`); judges ask through *lab*
    under *run_id* and their cost lands in ``judge_cost_usd`` (NaN for a row whose judge cost is unknown)."""
    if scorer is None:
        return frame
    table = scorer_table(scorer)
    rows: list[Mapping[str, Any]] = [{str(k): v for k, v in row.items()} for _, row in frame.iterrows()]
    scored: dict[str | None, list[Score]] = {}
    judge_cost: list[float] | None = None
    for name, item in table.items():
        if asks_a_model(item):
            graded = await item.ascore(lab, rows, run_id=run_id)
            scored[name] = [g.score for g in graded]
            judge_cost = [(judge_cost[i] if judge_cost else 0.0) + g.cost_usd for i, g in enumerate(graded)]
        else:
            scored[name] = score_rows(item, rows)
        _warn_raised(name, scored[name])
    out = with_scores(frame, scored)
    titles = {"score" if name is None else f"score_{name}": _title(item) for name, item in table.items()}
    named = {column: title for column, title in titles.items() if title}
    out.attrs["scorers"] = {**frame.attrs.get("scorers", {}), **named}  # what figures call each score column
    if judge_cost is not None:
        out["judge_cost_usd"] = judge_cost
    return out


def _title(scorer: object) -> str | None:
    """A scorer's short name for titles: a judge's model, a function's name, a built-in's class (None for a
    lambda: the column's name says as much)."""
    model = getattr(scorer, "model", None)
    if isinstance(model, str):
        return f"judge {model}"
    name = str(getattr(scorer, "__name__", type(scorer).__name__))
    return None if name.startswith("<") else name


def _warn_raised(name: str | None, scores: list[Score]) -> None:
    raised = [s.reason for s in scores if s.reason and s.reason.startswith("scorer raised")]
    if raised:
        column = "reason" if name is None else f"reason_{name}"
        log.warning("scorer %s raised on %d row(s), e.g. %s; see %s", name or "", len(raised), raised[0], column)

