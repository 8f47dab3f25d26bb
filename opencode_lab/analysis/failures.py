"""What a failed call counts as: the one failure policy `stats()`, `paired()` and the figures follow.

A failed row (``error_type`` set) has no answer to score.  By default it counts as a
failure of the model: a score of 0 for a bounded score (every scorer's [0, 1] scale), as
evaluation harnesses count a missing or invalid answer as wrong.  Leaving failures out
answers another question, "how good is it when it answers?", and can reverse a comparison:
a model that fails exactly the prompts it would get wrong looks perfect on the rest.
``failures="drop"`` gives that view; the tables then say how many prompts it lost.

Measurements that are not bounded scores (latency, cost, a score column with values outside
[0, 1]) have no value for a failure: failed rows are left out of them under either policy,
and counted.  numpy and pandas are imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FAILURES: tuple[str, ...] = ("count", "drop")
_LABEL_CHARS = 30


def check_failures(failures: object) -> str:
    """``failures`` if it names a policy, else an `InvalidRequestError` listing them."""
    if failures not in FAILURES:
        raise InvalidRequestError(f"failures must be 'count' (a failure scores 0) or 'drop', not {failures!r}")
    return str(failures)


def is_score(name: object) -> bool:
    """Whether a column holds a scorer's output (``score`` or ``score_<name>``), on the scorers' [0, 1] scale."""
    return isinstance(name, str) and (name == "score" or name.startswith("score_"))


def values_under(results: pd.DataFrame, metric: str, failures: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(values, failed, bounded): ``metric`` of every row as floats under the policy, which rows failed, and
    whether the metric is a bounded score (a scorer's column, every answered value in [0, 1]).  A failed row
    is 0 when failures count on a bounded score, else NaN (left out).  Refuses a column that is not numeric."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(results[metric], errors="coerce").to_numpy(dtype=float)
    if results[metric].notna().sum() != (~np.isnan(values)).sum():
        raise InvalidRequestError(f"metric {metric!r} must be numeric")
    has_errors = "error_type" in results.columns
    failed = results["error_type"].notna().to_numpy() if has_errors else np.zeros(len(values), dtype=bool)
    answered = values[~failed & ~np.isnan(values)]
    bounded = is_score(metric) and bool(((answered >= 0) & (answered <= 1)).all())
    out = values.copy()
    out[failed] = 0.0 if bounded and failures == "count" else np.nan
    return out, failed, bounded


def prompt_labels(results: pd.DataFrame) -> list[str]:
    """How a table names each row's prompt: its ``prompt_id``, else its text (cut at 30 characters)."""
    if "prompt_id" in results.columns and results["prompt_id"].notna().all():
        return [str(p) for p in results["prompt_id"]]
    if "prompt" in results.columns:
        return [_cut(" ".join(str(p).split())) for p in results["prompt"]]
    return [f"row {i}" for i in range(len(results))]


def listing(labels: list[str], limit: int = 6) -> str:
    """``"3, 8, 12"`` or ``"3, 8, 12, 15, 17, 20 and 9 more"``."""
    shown = ", ".join(labels[:limit])
    return shown if len(labels) <= limit else f"{shown} and {len(labels) - limit} more"


def _cut(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"
