"""How a selector turns predicted qualities and costs into one model per prompt: the three rules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import InvalidRequestError


@dataclass(frozen=True)
class Rule:
    """How to trade predicted quality against cost; exactly one of the fields is set (or none: best)."""

    target: float | None = None
    budget: float | None = None
    willingness_to_pay: float | None = None


def rule(target: float | None, budget: float | None, willingness_to_pay: float | None) -> Rule:
    given = {
        k: v
        for k, v in (("target", target), ("budget", budget), ("willingness_to_pay", willingness_to_pay))
        if v is not None
    }
    if len(given) > 1:
        raise InvalidRequestError(f"give one of target, budget or willingness_to_pay, not {' and '.join(given)}")
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise InvalidRequestError(f"{key} must be a number, got {value!r}")
        if key != "target" and value < 0:
            raise InvalidRequestError(f"{key} must not be negative, got {value!r}")
    return Rule(**given)


def choose(predicted: np.ndarray, cost: np.ndarray, how: Rule, eligible: np.ndarray | None = None) -> np.ndarray:
    """The chosen model index per prompt (row of *predicted*); ties go to the cheaper model, then the first.
    A prompt no model is eligible for is refused (it would be sent to a model that cannot take it)."""
    n, m = predicted.shape
    ok = np.ones((n, m), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if not ok.any(axis=1).all():
        raise InvalidRequestError(f"prompt {int(np.argmin(ok.any(axis=1)))} fits none of the selector's models")
    pred = np.where(np.isfinite(predicted), predicted, -np.inf)
    cost = np.broadcast_to(cost, (n, m))
    if how.target is not None:
        reaches = ok & (pred >= how.target)  # none reaches it: the best predicted
        score = np.where(
            reaches.any(axis=1, keepdims=True), np.where(reaches, -cost, -np.inf), np.where(ok, pred, -np.inf)
        )
    elif how.budget is not None:
        within = ok & (cost <= how.budget)
        score = np.where(
            within.any(axis=1, keepdims=True), np.where(within, pred, -np.inf), np.where(ok, -cost, -np.inf)
        )
    elif how.willingness_to_pay is not None:
        wtp = how.willingness_to_pay
        score = np.where(ok, -cost if wtp == 0 else pred - cost / wtp, -np.inf)
    else:
        score = np.where(ok, pred, -np.inf)
    best = score.max(axis=1, keepdims=True)
    tied = (score == best) & ok
    return np.argmin(np.where(tied, cost, np.inf), axis=1)
