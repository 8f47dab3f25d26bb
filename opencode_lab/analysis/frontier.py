"""The cost–quality plane's arithmetic: the non-decreasing convex hull, AIQ, APGR and CPT.

Definitions follow RouterBench (Hu et al. 2024) and RouteLLM (Ong et al. 2024):

- A system (a model, a selector at one willingness-to-pay, a cascade) is a point (mean cost, mean
  quality) over the same prompts.  Mixing two systems at random reaches every point of the segment
  between them, so what a family of points offers is its upper convex hull; paying more for less is
  never forced, so the hull stops at its best point: the *non-decreasing convex hull* (NDCH).
- AIQ (average improvement in quality) is the mean height of the NDCH over a common cost range
  ``[lo, hi]``.  Outside its own span a hull is taken flat: right of its last point extra budget buys
  nothing, and left of its first point we credit its cheapest quality (so a single model's AIQ is its
  quality, and systems that cannot reach ``lo`` are not scored as zero; RouterBench leaves this open).
- PGR (performance gap recovered) at a share of calls to the strong model is
  ``(q - q_weak) / (q_strong - q_weak)``; APGR is its mean over shares 0..1 (the area under the curve,
  0.5 for random routing); CPT(x) is the smallest share of strong calls that recovers x of the gap.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def ndch(costs: ArrayLike, qualities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing convex hull of points: its vertices by increasing cost (NaN points ignored)."""
    c = np.asarray(costs, dtype=float)
    q = np.asarray(qualities, dtype=float)
    keep = np.isfinite(c) & np.isfinite(q)
    if not keep.any():
        return np.empty(0), np.empty(0)
    order = np.lexsort((-q[keep], c[keep]))  # by cost; at equal cost the best first
    points = list(zip(c[keep][order], q[keep][order], strict=True))
    hull: list[tuple[float, float]] = []
    for x, y in points:
        if hull and x == hull[-1][0]:
            continue  # a worse point at the same cost
        while len(hull) >= 2 and _turn(hull[-2], hull[-1], (x, y)) >= 0:
            hull.pop()  # the middle point lies on or below the chord: a mixture does at least as well
        hull.append((x, y))
    best = int(np.argmax([y for _, y in hull]))
    xs, ys = zip(*hull[: best + 1], strict=True)
    return np.array(xs), np.array(ys)


def _turn(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    """Positive when a→b→c turns right (b above the chord a–c): the sign test of the upper hull."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def hull_quality(xs: np.ndarray, ys: np.ndarray, cost: float | np.ndarray) -> np.ndarray:
    """The hull's quality at *cost*: linear between vertices, flat beyond both ends."""
    return np.interp(cost, xs, ys, left=ys[0], right=ys[-1])


def aiq(xs: np.ndarray, ys: np.ndarray, lo: float, hi: float) -> float:
    """Mean height of the hull (*xs*, *ys*) over the cost range [*lo*, *hi*]; NaN for an empty hull."""
    if len(xs) == 0 or not (np.isfinite(lo) and np.isfinite(hi)):
        return float("nan")
    if hi <= lo:
        return float(hull_quality(xs, ys, lo))
    inner = xs[(xs > lo) & (xs < hi)]
    grid = np.concatenate(([lo], inner, [hi]))
    return float(np.trapezoid(hull_quality(xs, ys, grid), grid) / (hi - lo))


def pgr_curve(weak: np.ndarray, strong: np.ndarray, advantage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PGR as the share of strong calls grows from 0 to 1, sending prompts in order of *advantage*
    (a selector's predicted gain from the strong model; ties broken by position).

    *weak*, *strong*: each prompt's quality from the two models.  Returns (shares, PGR); PGR is NaN
    throughout when the two models' mean qualities are equal (no gap to recover).
    """
    weak, strong = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    n = len(weak)
    order = np.argsort(-np.asarray(advantage, dtype=float), kind="stable")
    gains = np.concatenate(([0.0], np.cumsum((strong - weak)[order])))
    quality = (weak.sum() + gains) / n
    gap = strong.mean() - weak.mean()
    shares = np.arange(n + 1) / n
    if gap == 0 or not np.isfinite(gap):
        return shares, np.full(n + 1, np.nan)
    return shares, (quality - weak.mean()) / gap


def apgr(shares: np.ndarray, pgr: np.ndarray) -> float:
    """The area under the PGR curve over shares 0..1 (0.5 for routing at random)."""
    if np.isnan(pgr).any():
        return float("nan")
    return float(np.trapezoid(pgr, shares))


def cpt(shares: np.ndarray, pgr: np.ndarray, target: float) -> float:
    """The smallest share of strong calls whose PGR reaches *target* (e.g. 0.5 for CPT(50 %));
    NaN when the gap is undefined."""
    if np.isnan(pgr).any():
        return float("nan")
    reached = np.nonzero(pgr >= target - 1e-12)[0]
    return float(shares[reached[0]]) if len(reached) else float("nan")
