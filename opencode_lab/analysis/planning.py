"""How many prompts a comparison needs, planned for the test `paired()` will run.

- 0/1 scores: McNemar's test as `paired()` runs it, with its exact power
  (`opencode_lab.analysis.mcnemar`).  What matters is the *discordance*, the share of prompts
  exactly one of the two models gets right: it is assumed, derived from the accuracies and
  their correlation, or measured on a pilot.
- other scores: the paired t test, with the power of the noncentral t.
- k models: `paired()` tests every pair and adjusts by Bonferroni, so each pair is planned
  at alpha / (k(k - 1) / 2).

numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

from ..core.errors import InvalidRequestError
from .intervals import is_binary
from .mcnemar import connor_n, mcnemar_power
from .statistics import MCNEMAR, PAIRED_T, PromptTable

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SampleSize:
    """A planned number of prompts (``n``) and what it rests on: the power it reaches for ``effect`` with
    ``test`` at ``alpha`` over ``pairs`` comparisons, and the assumed ``discordance`` (0/1 scores) or ``sd``
    of the per-prompt differences."""

    n: int
    power: float
    effect: float
    test: str
    alpha: float
    pairs: int
    discordance: float | None = None
    sd: float | None = None

    @property
    def alpha_per_pair(self) -> float:
        """The level each pair is tested at (Bonferroni)."""
        return self.alpha / self.pairs

    def __repr__(self) -> str:
        spread = f"discordance {self.discordance:.3g}" if self.discordance is not None else f"SD {self.sd:.3g}"
        family = f", alpha {self.alpha:g} shared by {self.pairs} pairs" if self.pairs > 1 else ""
        return (
            f"SampleSize(n={self.n}: power {self.power:.3f} to detect a difference of {self.effect:g} ({spread}) "
            f"with the {self.test} test at alpha {self.alpha_per_pair:.3g}{family})"
        )


def sample_size(
    effect: float,
    *,
    pilot: pd.DataFrame | None = None,
    sd: float | None = None,
    p: float | None = None,
    discordance: float | None = None,
    correlation: float = 0.0,
    models: int | None = None,
    metric: str = "score",
    by: str = "model",
    alpha: float = 0.05,
    power: float = 0.8,
    failures: str = "count",
) -> SampleSize:
    """Prompts needed for `paired()` to detect a true difference of ``effect`` with ``power`` at ``alpha``.

    What the answer rests on comes from exactly one of:

    - ``pilot``: a results frame.  0/1 scores: the largest discordance between two of its models
      (McNemar); other scores: the largest SD of per-prompt differences (t).  Failures follow
      ``failures`` as in `paired`.  ``models`` defaults to the pilot's number of models.
    - ``discordance``: 0/1 scores, the share of prompts exactly one model gets right (McNemar);
    - ``p``: 0/1 scores, the weaker model scoring ``p`` and the other ``p + effect``, their per-prompt
      results correlated by ``correlation`` (0: independent, the cautious default; models tend to fail
      the same hard prompts, which lowers the discordance and the prompts needed);
    - ``sd``: an assumed SD of the per-prompt differences (t).

    ``models`` (default 2) is how many models will be compared: ``alpha`` is shared by their pairs.
    Returns a `SampleSize`; ``.n`` is the number.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise InvalidRequestError(f"alpha and power must be between 0 and 1 (got alpha={alpha}, power={power})")
    if not (effect > 0 and math.isfinite(effect)):
        raise InvalidRequestError(f"effect must be a positive difference to detect, not {effect!r}")
    given = [n for n, v in (("pilot", pilot), ("sd", sd), ("p", p), ("discordance", discordance)) if v is not None]
    if len(given) != 1:
        raise InvalidRequestError(
            f"sample_size() needs exactly one of pilot=, sd=, p= or discordance= (got {given or 'none'})"
        )
    if pilot is not None:
        table = PromptTable.of(pilot, metric, by, None, failures)
        models = len(table.models) if models is None else models
        discordance, sd = _from_pilot(table)
    elif p is not None:
        discordance = _discordance(float(p), effect, correlation)
    k = 2 if models is None else models
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InvalidRequestError(f"models must be a number of models, at least 2, not {models!r}")
    pairs = k * (k - 1) // 2
    per_pair = alpha / pairs
    if discordance is not None:
        if not effect <= discordance <= 1:
            raise InvalidRequestError(
                f"discordance={discordance:g} must lie between the effect ({effect:g}) and 1: a difference in "
                "accuracy of d needs at least d of the prompts answered right by only one model"
            )
        n = _mcnemar_n(effect, discordance, per_pair, power)
        return SampleSize(n, mcnemar_power(n, effect, discordance, per_pair), effect, MCNEMAR, alpha, pairs,
                          discordance=discordance)  # fmt: skip
    spread = float(sd)  # type: ignore[arg-type]
    if not (spread > 0 and math.isfinite(spread)):
        raise InvalidRequestError(f"the SD of the paired differences must be positive and finite, not {spread!r}")
    n = _t_n(effect, spread, per_pair, power)
    return SampleSize(n, _t_power(n, effect, spread, per_pair), effect, PAIRED_T, alpha, pairs, sd=spread)


# -- helpers --------------------------------------------------------------------------------


def _from_pilot(table: PromptTable) -> tuple[float | None, float | None]:
    """(largest discordance, None) for 0/1 outcomes, else (None, largest SD of per-prompt differences)."""
    import numpy as np

    shared = []
    for a, b in combinations(range(len(table.models)), 2):
        both = table.shared(a, b, table.values)
        if both.sum() >= 2:
            shared.append((table.values[both, a], table.values[both, b]))
    if not shared:
        raise InvalidRequestError(
            f"the pilot needs two models with at least two prompts both answered (models: {table.models})"
        )
    if all(is_binary(x) and is_binary(y) for x, y in shared):
        worst = max(float(np.mean(x != y)) for x, y in shared)
        if worst == 0:
            raise InvalidRequestError("the pilot's models agree on every prompt: assume a discordance= instead")
        return worst, None
    return None, max(float(np.std(x - y, ddof=1)) for x, y in shared)


def _discordance(p: float, effect: float, correlation: float) -> float:
    """P(exactly one model right) for accuracies p + effect and p whose outcomes correlate by ``correlation``."""
    if not 0 < p < 1 or not p + effect <= 1:
        raise InvalidRequestError(f"p={p} and p + effect={p + effect} must both be proportions between 0 and 1")
    if not -1 <= correlation <= 1:
        raise InvalidRequestError(f"correlation must be between -1 and 1, not {correlation}")
    high = p + effect
    both = high * p + correlation * math.sqrt(high * (1 - high) * p * (1 - p))
    if not max(0.0, high + p - 1) <= both <= p:
        raise InvalidRequestError(f"correlation={correlation} is impossible for accuracies {high:g} and {p:g}")
    return high + p - 2 * both


def _mcnemar_n(effect: float, discordance: float, alpha: float, power: float) -> int:
    """The smallest n near Connor's approximation whose exact McNemar power reaches ``power``."""
    n = max(2, math.ceil(connor_n(effect, discordance, alpha, power)))
    while n > 2 and mcnemar_power(n - 1, effect, discordance, alpha) >= power:
        n -= 1
    while mcnemar_power(n, effect, discordance, alpha) < power:
        n += 1
    return n


def _t_power(n: int, effect: float, sd: float, alpha: float) -> float:
    """Power of the two-sided paired t test with n prompts (noncentral t)."""
    from scipy.stats import nct, t

    critical = float(t.ppf(1 - alpha / 2, n - 1))
    shift = effect / sd * math.sqrt(n)
    return float(nct.sf(critical, n - 1, shift) + nct.cdf(-critical, n - 1, shift))


def _t_n(effect: float, sd: float, alpha: float, power: float) -> int:
    """Smallest n >= 2 whose two-sided paired t test has at least ``power``."""
    from scipy.stats import norm

    n = max(2, math.ceil(((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / effect) ** 2))
    while _t_power(n, effect, sd, alpha) < power:
        n += 1
    while n > 2 and _t_power(n - 1, effect, sd, alpha) >= power:
        n -= 1
    return n
