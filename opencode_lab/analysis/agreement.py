"""How far a judge agrees with people: Cohen's κ on the rows both graded, with its interval.

κ = (p_o - p_e) / (1 - p_e): the observed share of rows on which the two raters agree,
corrected for the agreement their marginal rates would give by chance.  Its standard error
is the large-sample one of Fleiss, Cohen & Everitt (1969, Psychol Bull 72:323), the one
statsmodels' ``cohens_kappa`` reports, and the interval is κ ± z·SE kept inside [-1, 1].
With few rows that interval is rough: the note says how many rows it rests on.  Where that
standard error is 0 (perfect agreement) there is no interval (NaN), not a zero-width one.  When both
raters always give the same single category κ is undefined (NaN, with the reason); when one
of them does, κ is 0 by construction and has no interval (the note says which rater).

Scores are compared as categories: with ``threshold`` (default 0.5) a score at or above it
is "pass", below it "fail", so a 1-5 judge (scaled to [0, 1]) meets correct/wrong labels;
``threshold=None`` compares the values themselves as categories.  numpy and scipy are
imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Agreement:
    """Cohen's κ of two raters over ``n`` rows, its interval at ``confidence``, and the raw agreement."""

    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    observed: float
    """Share of rows the raters agree on."""
    expected: float
    """Share they would agree on by chance, given how often each gives each category."""
    confidence: float = 0.95
    note: str = ""

    def __repr__(self) -> str:
        if math.isnan(self.kappa):
            return f"Agreement(κ undefined on {self.n} rows: {self.note})"
        if math.isnan(self.ci_low):
            return f"Agreement(κ = {self.kappa:.3g} on {self.n} rows; agree on {self.observed:.0%}; {self.note})"
        return (
            f"Agreement(κ = {self.kappa:.3g} [{self.ci_low:.3g}, {self.ci_high:.3g}] on {self.n} rows; "
            f"agree on {self.observed:.0%}, {self.expected:.0%} by chance{'; ' + self.note if self.note else ''})"
        )


def cohen_kappa(a: list[object], b: list[object], confidence: float = 0.95) -> Agreement:
    """Cohen's κ of two equally long lists of category labels (see the module doc)."""
    import numpy as np
    from scipy.stats import norm

    if len(a) != len(b):
        raise InvalidRequestError(f"two raters need as many labels each, got {len(a)} and {len(b)}")
    n = len(a)
    categories = sorted(set(a) | set(b), key=str)
    if n < 2:
        return Agreement(math.nan, math.nan, math.nan, math.nan, n, math.nan, math.nan, confidence, "fewer than 2 rows")
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    observed, expected = float(np.trace(p)), float(rows @ cols)
    if expected >= 1:
        reason = "both raters gave one and the same category to every row"
        return Agreement(math.nan, math.nan, math.nan, math.nan, n, observed, expected, confidence, reason)
    kappa = (observed - expected) / (1 - expected)
    for name, labels in (("first", a), ("second", b)):
        if len(set(labels)) == 1:  # agreement is then exactly chance's: kappa is 0 by construction
            note = f"the {name} rater gave one category ({labels[0]!r}) to all {n} rows: no interval"
            return Agreement(float(kappa), math.nan, math.nan, math.nan, n, observed, expected, confidence, note)
    diagonal = np.diag(p) * (1 - (rows + cols) * (1 - kappa)) ** 2
    off = p * (cols[:, None] + rows[None, :]) ** 2  # p_ij (p_.i + p_j.)², Fleiss et al.'s off-diagonal term
    np.fill_diagonal(off, 0)
    variance = (diagonal.sum() + (1 - kappa) ** 2 * off.sum() - (kappa - expected * (1 - kappa)) ** 2) / (
        (1 - expected) ** 2 * n
    )
    se = math.sqrt(max(0.0, float(variance)))
    if se == 0:  # e.g. perfect agreement: the large-sample variance vanishes, which is no certainty on few rows
        note = f"no interval: the large-sample standard error is 0 here (perfect agreement?) on {n} rows"
        return Agreement(float(kappa), se, math.nan, math.nan, n, observed, expected, confidence, note)
    z = float(norm.ppf(0.5 + confidence / 2))
    low, high = max(-1.0, kappa - z * se), min(1.0, kappa + z * se)
    note = f"a large-sample interval on only {n} rows" if n < 30 else ""
    return Agreement(float(kappa), se, low, high, n, observed, expected, confidence, note)


def agreement(
    results: pd.DataFrame,
    judge: str,
    human: str = "score_human",
    *,
    threshold: float | None = 0.5,
    confidence: float = 0.95,
) -> Agreement:
    """Cohen's κ between score columns *judge* and *human* of a results frame, over the rows both scored."""
    for column in (judge, human):
        if column not in results.columns:
            scores = [c for c in results.columns if str(c).startswith("score")]
            raise InvalidRequestError(f"no column {column!r} in the results (score columns: {', '.join(scores)})")
    both = results[[judge, human]].apply(lambda s: s.astype("float64")).dropna()

    def category(value: float) -> object:
        return value if threshold is None else ("pass" if value >= threshold else "fail")

    return cohen_kappa([category(v) for v in both[judge]], [category(v) for v in both[human]], confidence)
