"""Intervals that treat the prompt as the unit of evidence (after Miller 2024, arXiv 2411.00640).

- Samples of one prompt are averaged first: they are one look at how a model does on that
  prompt, not n independent ones.  Prompts sharing a source (one passage, one template)
  can be grouped further into clusters, which makes the standard errors cluster-robust.
- A mean of 0/1 values gets a Wilson interval (with an effective sample size when clustered,
  after Korn & Graubard 1998); any other mean gets a t interval.
- Quantiles (latency p50, p95) get percentile-bootstrap intervals that resample whole
  prompts (or clusters), seeded: the same data always gives the same numbers.

A prompt is identified by ``prompt_id`` and ``prompt`` together; a row with neither is a
prompt of its own.  numpy, pandas and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROMPT_KEYS: tuple[str, ...] = ("prompt_id", "prompt")
BOOTSTRAP_REPS = 1000  #: as Chatbot Arena's leaderboard intervals
NAN = math.nan


@dataclass(frozen=True)
class Estimate:
    """A mean over prompts, its standard error and interval, and what it rests on."""

    mean: float
    se: float
    low: float
    high: float
    rows: int  #: values used
    prompts: int  #: distinct prompts among them
    clusters: int  #: independent units (prompts, or clusters of prompts)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; ``successes`` may be fractional (an effective count)."""
    from scipy.stats import norm

    if n <= 0:
        return NAN, NAN
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def unit_codes(frame: pd.DataFrame, cluster: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integer (prompt, cluster) codes of every row; without ``cluster`` each prompt is its own cluster.

    A row whose cluster value is missing is a cluster of its own prompt.
    """
    import numpy as np
    import pandas as pd

    if cluster is not None and cluster not in frame.columns:
        raise InvalidRequestError(f"cluster={cluster!r}: no such column (columns: {list(frame.columns)})")
    if frame.empty:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    keys = [c for c in PROMPT_KEYS if c in frame.columns]
    if keys:
        prompts = frame.groupby(keys, dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)
        prompts = _own_codes(prompts, frame[keys].isna().all(axis=1).to_numpy())
    else:
        prompts = np.arange(len(frame), dtype=np.int64)
    if cluster is None:
        return prompts, prompts
    clusters, _ = pd.factorize(frame[cluster])
    missing = clusters < 0
    clusters[missing] = clusters.max() + 1 + prompts[missing]
    return prompts, clusters.astype(np.int64)


def mean_interval(values: np.ndarray, prompts: np.ndarray, clusters: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean of per-prompt means (NaN values ignored) with its cluster-robust SE and interval.

    0/1 values get a Wilson interval: on the raw counts when every value is its own
    cluster, else on the effective sample size p(1-p)/SE² (at most the number of values).
    Other values get mean ± t(clusters - 1) x SE.  Fewer than two clusters: NaN interval.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    known = ~np.isnan(values)
    values, prompts, clusters = values[known], np.asarray(prompts)[known], np.asarray(clusters)[known]
    if not len(values):
        return Estimate(NAN, NAN, NAN, NAN, 0, 0, 0)
    y, prompt_clusters = _per_prompt(values, prompts, clusters)
    mean, se = float(y.mean()), clustered_se(y, prompt_clusters)
    rows, n_clusters = len(values), len(np.unique(prompt_clusters))
    if is_binary(values):
        effective = _effective_n(mean, se, rows, n_clusters)
        low, high = wilson_interval(mean * effective, effective, confidence)
    else:
        low, high = t_interval(mean, se, n_clusters, confidence)
    return Estimate(mean, se, low, high, rows, len(y), n_clusters)


def clustered_se(y: np.ndarray, clusters: np.ndarray) -> float:
    """Cluster-robust standard error of ``mean(y)``: sqrt(G/(G-1) Σ_g (Σ_{i∈g} (y_i - ȳ))²) / n.

    With one value per cluster this is the textbook s / √n.  NaN for fewer than two clusters.
    """
    import numpy as np

    codes, inverse = np.unique(clusters, return_inverse=True)
    g = len(codes)
    if g < 2:
        return NAN
    sums = np.bincount(inverse, weights=y - y.mean())
    return math.sqrt(g / (g - 1) * float(np.sum(sums**2))) / len(y)


def bootstrap_quantiles(
    values: np.ndarray,
    clusters: np.ndarray,
    quantiles: Sequence[float],
    confidence: float = 0.95,
    reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Percentile-bootstrap interval of each quantile (linear interpolation), resampling whole clusters.

    Each replicate draws clusters with replacement and takes the quantile of all their
    values, computed from integer weights on the sorted values (no copies are made).
    Fewer than two clusters: NaN intervals.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    known = ~np.isnan(values)
    values, clusters = values[known], np.asarray(clusters)[known]
    codes, inverse = np.unique(clusters, return_inverse=True)
    g = len(codes)
    if g < 2:
        return [(NAN, NAN) for _ in quantiles]
    order = np.argsort(values, kind="stable")
    x, unit = values[order], inverse[order]
    rng = np.random.default_rng(seed)
    draws = np.empty((len(quantiles), reps))
    chunk = max(1, 2_000_000 // len(x))
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        drawn = rng.integers(0, g, size=(size, g)) + (np.arange(size) * g)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * g).reshape(size, g).astype(np.int32)  # per cluster
        cumulative = np.cumsum(counts[:, unit], axis=1, dtype=np.int64)
        draws[:, start : start + size] = _weighted_quantiles(x, cumulative, quantiles)
    tail = (1 - confidence) / 2
    return [(float(lo), float(hi)) for lo, hi in np.quantile(draws, [tail, 1 - tail], axis=1).T]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), NAN)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted.tolist()


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is 0 or 1 (a right/wrong score, a failure flag): such means get Wilson intervals."""
    import numpy as np

    return bool(len(values)) and bool(np.isin(values, (0.0, 1.0)).all())


def t_interval(mean: float, se: float, clusters: int, confidence: float = 0.95) -> tuple[float, float]:
    """mean ± t(clusters - 1) x se; NaN with fewer than two clusters or an unknown se."""
    from scipy.stats import t

    if clusters < 2 or math.isnan(se):
        return NAN, NAN
    half = float(t.ppf(0.5 + confidence / 2, clusters - 1)) * se
    return mean - half, mean + half


# -- helpers --------------------------------------------------------------------------------


def _own_codes(codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``codes`` with every masked row given a fresh code of its own."""
    import numpy as np

    out = codes.copy()
    out[mask] = out.max() + 1 + np.arange(int(mask.sum()))
    return out


def _per_prompt(values: np.ndarray, prompts: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean value of each prompt, and each prompt's cluster."""
    import numpy as np

    _, first, inverse = np.unique(prompts, return_index=True, return_inverse=True)
    means = np.bincount(inverse, weights=values) / np.bincount(inverse)
    return means, clusters[first]


def _effective_n(mean: float, se: float, rows: int, clusters: int) -> float:
    """How many independent 0/1 values the clustered estimate is worth (the raw count when nothing is clustered)."""
    if rows == clusters or clusters < 2:
        return float(clusters)
    if 0 < mean < 1:
        return rows if se == 0 else min(float(rows), mean * (1 - mean) / se**2)
    return float(clusters)  # every value agrees: only the clusters are independent


def _weighted_quantiles(x: np.ndarray, cumulative: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Linear-interpolation quantiles (one row per quantile) of each replicate's sample: sorted ``x``,
    each value repeated as often as its weight, the weights given as running sums ``cumulative``."""
    import numpy as np

    reps, n = cumulative.shape
    total = cumulative[:, -1]
    step = int(total.max()) + 1
    offsets = np.arange(reps) * step
    flat = (cumulative + offsets[:, None]).ravel()  # one increasing sequence: replicate r shifted by r x step
    starts = np.arange(reps) * n

    def order_statistic(k: np.ndarray) -> np.ndarray:
        """The k-th smallest (0-based) value: x[j] for the first j whose running count exceeds k."""
        j = np.searchsorted(flat, k + offsets, side="right") - starts
        return x[np.minimum(j, n - 1)]

    out = np.empty((len(quantiles), reps))
    for i, q in enumerate(quantiles):
        position = (total - 1) * q
        below = np.floor(position)
        low = order_statistic(below)
        out[i] = low + (position - below) * (order_statistic(below + 1) - low)
    return out
