"""Ratings from pairwise battles: Bradley–Terry strengths with bootstrap intervals, and win rates.

A battle frame has one row per judgement with ``model_a``, ``model_b`` and
``winner``: ``"model_a"``/``"a"``, ``"model_b"``/``"b"``, one of the two model
names, or ``"tie"`` (also ``"tie (bothbad)"``, ``"draw"``).  Rows whose winner is
missing (an unparsable verdict) are left out.  Judges (`opencode_lab.pairwise`)
and people make the same frame, so human preferences are rated the same way.

Bradley–Terry: P(i beats j) = p_i / (p_i + p_j).  The strengths are the maximum
likelihood estimate by Hunter's (2004) MM algorithm, a tie counting half a win
each side; ``prior`` adds that many virtual ties between every pair, which keeps
every strength finite (a model that never lost) and the fit defined when the
comparison graph is not connected, at the cost of slight shrinkage toward equal.
Ratings are on the Elo scale Chatbot Arena uses: ``1000 + 400 log10(p_i)`` with
the strengths' geometric mean at 1000, so a 400-point gap means 10:1 odds.

Intervals are percentile-bootstrap intervals over battles (or over ``cluster``,
e.g. ``prompt_id``, so both orders of one judged pair move together), seeded: the
same frame always gives the same numbers.  numpy and pandas are imported inside.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCALE = 400 / math.log(10)  #: Elo points per unit of log-strength
BASE = 1000.0
_TIES = frozenset({"tie", "tie (bothbad)", "draw", "both", "neither"})
_A = frozenset({"model_a", "a"})
_B = frozenset({"model_b", "b"})


def outcomes(battles: pd.DataFrame) -> pd.DataFrame:
    """``model_a``, ``model_b`` and ``score`` (1: a won, 0: b won, 0.5: a tie) of every judged battle,
    plus the frame's other columns; refuses, naming the row, a winner it cannot read."""
    import pandas as pd

    missing = [c for c in ("model_a", "model_b", "winner") if c not in battles.columns]
    if missing:
        raise InvalidRequestError(f"battles need columns model_a, model_b and winner; missing: {', '.join(missing)}")
    judged = battles[battles["winner"].notna()].reset_index(drop=True)
    columns = zip(judged.model_a, judged.model_b, judged.winner, strict=True)
    scores = [_score(i, a, b, w) for i, (a, b, w) in enumerate(columns)]
    out = judged.assign(score=pd.Series(scores, index=judged.index, dtype="float64"))
    if out.empty:
        raise InvalidRequestError("no battle has a winner: nothing to rate")
    return out


def _score(index: int, a: Any, b: Any, winner: Any) -> float:
    if not isinstance(a, str) or not isinstance(b, str) or a == b:
        raise InvalidRequestError(f"battle {index}: model_a and model_b must be two different names, got {a!r}, {b!r}")
    text = str(winner).strip()
    if text == a or text.lower() in _A:
        return 1.0
    if text == b or text.lower() in _B:
        return 0.0
    if text.lower() in _TIES:
        return 0.5
    raise InvalidRequestError(
        f"battle {index}: winner {winner!r} is neither {a!r} nor {b!r}, 'model_a', 'model_b' nor 'tie'"
    )


def ratings(
    battles: pd.DataFrame,
    *,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    cluster: str | None = None,
    prior: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-model Bradley–Terry rating with its bootstrap interval, best first.

    Columns: ``rating``, ``ci_low``, ``ci_high``, ``battles``, ``wins``, ``ties``, ``losses`` and
    ``win_rate`` (ties count half).  ``attrs["win_rates"]`` holds `win_rates` in the same order.
    """
    import numpy as np
    import pandas as pd

    _check(bootstrap, confidence, prior, cluster, battles)
    judged = outcomes(battles)
    models = sorted(set(judged.model_a) | set(judged.model_b))
    units = _units(judged, models, cluster)  # (clusters, K, K) wins of row over column
    _defined(units.sum(axis=0), models, prior)
    rating = SCALE * fit(units.sum(axis=0)[None], prior)[0] + BASE
    rng = np.random.default_rng(seed)
    picks = rng.multinomial(len(units), np.full(len(units), 1 / len(units)), size=bootstrap)
    resampled = np.einsum("bc,ckl->bkl", picks, units)
    if prior == 0:  # a resample in which a model never won or never lost has no finite fit: left out
        resampled = resampled[(resampled.sum(axis=2) > 0).all(axis=1) & (resampled.sum(axis=1) > 0).all(axis=1)]
    replicates = SCALE * fit(resampled, prior) + BASE
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0) if len(replicates) else (np.nan, np.nan)
    table = pd.DataFrame(
        {"rating": rating, "ci_low": low, "ci_high": high, **_tallies(judged, models)},
        index=pd.Index(models, name="model"),
    )
    table = table.sort_values("rating", ascending=False, kind="stable")
    table.attrs["win_rates"] = win_rates(judged).loc[table.index, table.index]
    return table


def win_rates(battles: pd.DataFrame) -> pd.DataFrame:
    """How often the row's model beat the column's (ties half), over the battles between the two; NaN where
    they never met.  Models in name order."""
    import numpy as np
    import pandas as pd

    judged = battles if "score" in battles.columns else outcomes(battles)
    models = sorted(set(judged.model_a) | set(judged.model_b))
    wins = _units(judged, models, None).sum(axis=0)
    met = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(met > 0, wins / met, np.nan)
    return pd.DataFrame(rates, index=pd.Index(models, name="model"), columns=pd.Index(models, name="opponent"))


def position_bias(battles: pd.DataFrame) -> dict[str, float]:
    """How much a judge's verdicts follow the position of an answer rather than the answer, from battles
    judged in both orders (`opencode_lab.pairwise`: columns ``pair``, ``position`` and ``winner``).

    - ``position_bias_rate``: among pairs with a verdict in both orders, the share where the same position
      won both times (so the winning *model* flipped with the order); 0 for a judge that reads the answers.
    - ``consistency``: the share of those pairs where the same model (or a tie) won both times.
    - ``first_position_rate``: the share of decisive verdicts that chose the first answer shown (0.5: none).
    """
    missing = [c for c in ("pair", "position", "winner") if c not in battles.columns]
    if missing:
        raise InvalidRequestError(f"position_bias needs the battles of pairwise(); missing: {', '.join(missing)}")
    decisive = battles.position.isin(["A", "B"])
    first = float((battles.position[decisive] == "A").mean()) if decisive.any() else math.nan
    both = battles[battles.position.notna()].groupby("pair").filter(lambda g: len(g) == 2).groupby("pair")
    positions = both.position.agg(lambda p: p.iloc[0] == p.iloc[1] and p.iloc[0] in ("A", "B"))
    winners = both.winner.agg(lambda w: w.iloc[0] == w.iloc[1])
    pairs = len(positions)
    return {
        "pairs": pairs,
        "position_bias_rate": float(positions.mean()) if pairs else math.nan,
        "consistency": float(winners.mean()) if pairs else math.nan,
        "first_position_rate": first,
    }


def fit(wins: np.ndarray, prior: float = 1.0, *, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    """Log-strengths (mean zero) for a stack of win matrices ``wins[b, i, j]`` (i over j, ties half each),
    fitted together by Hunter's MM iteration ``p_i <- W_i / sum_j n_ij / (p_i + p_j)``."""
    import numpy as np

    k = wins.shape[-1]
    wins = wins + prior / 2 * (1 - np.eye(k))
    games = wins + np.swapaxes(wins, 1, 2)
    total = wins.sum(axis=2)
    log_p = np.zeros(wins.shape[:2])
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(max_iter):
            p = np.exp(log_p)
            denominator = (games / (p[:, :, None] + p[:, None, :])).sum(axis=2)
            new = np.log(total / denominator)
            new -= new.mean(axis=1, keepdims=True)
            change = np.nanmax(np.abs(np.where(np.isfinite(new), new - log_p, 0.0)))
            log_p = new
            if change < tol:
                break
    return log_p


def _defined(wins: np.ndarray, models: list[str], prior: float) -> None:
    """Without a prior, a model that never won (or never lost) has no finite maximum-likelihood strength."""
    if prior > 0:
        return
    for i, model in enumerate(models):
        if wins[i].sum() == 0 or wins[:, i].sum() == 0:
            raise InvalidRequestError(
                f"{model} never {'won' if wins[i].sum() == 0 else 'lost'}: its Bradley–Terry strength is infinite "
                "without a prior; use prior > 0"
            )


def _units(judged: pd.DataFrame, models: list[str], cluster: str | None) -> np.ndarray:
    """Win matrices, one per resampling unit (a battle, or a cluster of battles)."""
    import numpy as np
    import pandas as pd

    position = {m: i for i, m in enumerate(models)}
    a = judged.model_a.map(position).to_numpy()
    b = judged.model_b.map(position).to_numpy()
    score = judged.score.to_numpy(dtype=float)
    unit = np.arange(len(judged)) if cluster is None else pd.factorize(judged[cluster], use_na_sentinel=False)[0]
    k = len(models)
    units = np.zeros((unit.max() + 1, k, k))
    np.add.at(units, (unit, a, b), score)
    np.add.at(units, (unit, b, a), 1 - score)
    return units


def _tallies(judged: pd.DataFrame, models: list[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"battles": [], "wins": [], "ties": [], "losses": [], "win_rate": []}
    for model in models:
        as_a, as_b = judged[judged.model_a == model].score, judged[judged.model_b == model].score
        mine = list(as_a) + [1 - s for s in as_b]
        wins, ties = sum(s == 1 for s in mine), sum(s == 0.5 for s in mine)
        out["battles"].append(len(mine))
        out["wins"].append(wins)
        out["ties"].append(ties)
        out["losses"].append(len(mine) - wins - ties)
        out["win_rate"].append((wins + ties / 2) / len(mine))
    return out


def _check(bootstrap: Any, confidence: Any, prior: Any, cluster: str | None, battles: Any) -> None:
    import pandas as pd

    if not isinstance(battles, pd.DataFrame):
        raise InvalidRequestError(f"battles must be a DataFrame, not {type(battles).__name__}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
        raise InvalidRequestError(f"bootstrap must be a positive number of resamples, got {bootstrap!r}")
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise InvalidRequestError(f"confidence must be between 0 and 1, got {confidence!r}")
    if isinstance(prior, bool) or not isinstance(prior, int | float) or not math.isfinite(prior) or prior < 0:
        raise InvalidRequestError(f"prior must be a non-negative number of virtual ties, got {prior!r}")
    if cluster is not None and cluster not in battles.columns:
        raise InvalidRequestError(f"cluster={cluster!r}: no such column (columns: {list(battles.columns)})")
    if cluster is not None and not battles[cluster].map(lambda v: isinstance(v, Hashable)).all():
        raise InvalidRequestError(f"cluster={cluster!r} must hold one label per battle (text or a number), not lists")
