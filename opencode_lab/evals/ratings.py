"""Ratings from pairwise battles: Bradley–Terry strengths with bootstrap intervals, and win rates.

A battle frame has one row per judgement with ``model_a``, ``model_b`` and the outcome:
a ``score`` (1: model_a won, 0: model_b won, 0.5: a tie; what `opencode_lab.pairwise`
writes, unambiguous whatever the models are called), or a ``winner``: one of the two model
names, ``"model_a"``/``"a"``, ``"model_b"``/``"b"`` or ``"tie"`` (also ``"tie (bothbad)"``,
``"draw"``).  A winner that is both a model's name and a code meaning something else (a
model called ``b`` or ``tie``) is refused rather than guessed.  Rows without an outcome (an
unparsable verdict) are left out.  Judges and people make the same frame, so human
preferences are rated the same way.

Bradley–Terry: P(i beats j) = p_i / (p_i + p_j).  The strengths are the maximum
likelihood estimate by Hunter's (2004) MM algorithm, a tie counting half a win
each side; ``prior`` adds that many virtual ties between every pair, which keeps
every strength finite (a model that never lost) and the fit defined when the
comparison graph is not connected, at the cost of slight shrinkage toward equal.
Ratings are on the Elo scale Chatbot Arena uses: ``1000 + 400 log10(p_i)`` with
the strengths' geometric mean at 1000, so a 400-point gap means 10:1 odds.

Intervals are percentile-bootstrap intervals that resample whole prompts: both orders of
one judged pair, and every pair of models judged on one prompt, move together (they share
the prompt and the judge's reading of it; resampling battles one by one makes intervals
about a third too narrow).  Seeded: the same frame always gives the same numbers.  When
the data cannot pin a rating down, the maximum likelihood fit does not exist (Ford 1957:
some models never lost to the others, or never met them) or no resample moves it, and the
interval is NaN with the reason in ``note``, never a zero-width interval that only
reflects the prior.  numpy and pandas are imported inside.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.schema import tagged

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCALE = 400 / math.log(10)  #: Elo points per unit of log-strength
BASE = 1000.0
_TIES = frozenset({"tie", "tie (bothbad)", "draw", "both", "neither"})
_A = frozenset({"model_a", "a"})
_B = frozenset({"model_b", "b"})
_CODES = {1.0: "model_a", 0.0: "model_b", 0.5: "a tie"}
_FLAT = 1e-6  #: Elo points: an interval narrower than this did not move in any resample


def outcomes(battles: pd.DataFrame) -> pd.DataFrame:
    """``model_a``, ``model_b`` and ``score`` (1: a won, 0: b won, 0.5: a tie) of every judged battle,
    plus the frame's other columns; refuses, naming the row, an outcome it cannot read unambiguously."""
    import pandas as pd

    outcome = "score" if "score" in battles.columns else "winner"
    missing = [c for c in ("model_a", "model_b", outcome) if c not in battles.columns]
    if missing:
        raise InvalidRequestError(f"battles need columns model_a, model_b and winner; missing: {', '.join(missing)}")
    judged = battles[battles[outcome].notna()].reset_index(drop=True)
    if judged.empty:
        raise InvalidRequestError("no battle has a winner: nothing to rate")
    read = _given_score if outcome == "score" else _score
    columns = zip(judged.model_a, judged.model_b, judged[outcome], strict=True)
    scores = [read(i, a, b, w) for i, (a, b, w) in enumerate(columns)]
    return judged.assign(score=pd.Series(scores, index=judged.index, dtype="float64"))


def _names(index: int, a: object, b: object) -> None:
    if not isinstance(a, str) or not isinstance(b, str) or a == b:
        raise InvalidRequestError(f"battle {index}: model_a and model_b must be two different names, got {a!r}, {b!r}")


def _given_score(index: int, a: object, b: object, score: Any) -> float:
    _names(index, a, b)
    if score not in (0, 0.5, 1):
        raise InvalidRequestError(f"battle {index}: score {score!r} must be 1 (model_a won), 0 (model_b won) or 0.5")
    return float(score)


def _score(index: int, a: object, b: object, winner: object) -> float:
    _names(index, a, b)
    text = str(winner).strip()
    by_name = {a: 1.0, b: 0.0}.get(text)
    code = text.lower()
    by_code = 1.0 if code in _A else 0.0 if code in _B else 0.5 if code in _TIES else None
    if by_name is not None and by_code is not None and by_name != by_code:
        raise InvalidRequestError(
            f"battle {index}: winner {winner!r} is ambiguous: it names a model and is also the code for "
            f"{_CODES[by_code]}; give the outcome as a score column (1: model_a won, 0: model_b won, 0.5: a tie)"
        )
    found = by_name if by_name is not None else by_code
    if found is None:
        raise InvalidRequestError(
            f"battle {index}: winner {winner!r} is neither {a!r} nor {b!r}, 'model_a', 'model_b' nor 'tie'"
        )
    return found


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

    The bootstrap resamples ``cluster`` (a column) when given, else whole prompts (``prompt_id`` and
    ``prompt``, when the frame has them), else judged pairs (``pair``), else battles one by one.
    Columns: ``rating``, ``ci_low``, ``ci_high`` (NaN when not estimable), ``battles``, ``wins``, ``ties``,
    ``losses``, ``win_rate`` (ties count half) and ``note`` (why an interval is not estimable).
    ``attrs["win_rates"]`` holds `win_rates` in the same order.  With ``prior=0`` a frame whose maximum
    likelihood fit does not exist is refused.
    """
    import numpy as np
    import pandas as pd

    _check(bootstrap, confidence, prior, cluster, battles)
    judged = outcomes(battles)
    models = list(dict.fromkeys([*judged.model_a, *judged.model_b]))
    units = _units(judged, models, _resampled(judged, cluster))  # (units, K, K) wins of row over column
    wins = units.sum(axis=0)
    why = _inestimable(wins, models)
    if why is not None and prior == 0:
        raise InvalidRequestError(f"{why}: the Bradley–Terry fit does not exist without a prior; use prior > 0")
    rating = SCALE * fit(wins[None], prior)[0] + BASE
    rng = np.random.default_rng(seed)
    picks = rng.multinomial(len(units), np.full(len(units), 1 / len(units)), size=bootstrap)
    resampled = np.einsum("bc,ckl->bkl", picks, units)
    if prior == 0:  # a resample in which a model never won or never lost has no finite fit: left out
        resampled = resampled[(resampled.sum(axis=2) > 0).all(axis=1) & (resampled.sum(axis=1) > 0).all(axis=1)]
    replicates = SCALE * fit(resampled, prior) + BASE
    tail = (1 - confidence) / 2 * 100
    nowhere = np.full(len(models), np.nan)  # no resample had a finite fit
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0) if len(replicates) else (nowhere, nowhere)
    notes = [f"not estimable: {why}" if why else "" for _ in models]
    for i in range(len(models)):
        if not notes[i] and not high[i] - low[i] > _FLAT:
            notes[i] = "not estimable: no resample of the prompts moves it (e.g. every pair split 1-1)"
    flat = np.array([bool(n) for n in notes])
    table = pd.DataFrame(
        {"rating": rating, "ci_low": np.where(flat, np.nan, low), "ci_high": np.where(flat, np.nan, high),
         **_tallies(judged, models), "note": notes},
        index=pd.Index(models, name="model"),
    )  # fmt: skip
    table = table.sort_values("rating", ascending=False, kind="stable")
    table.attrs["win_rates"] = win_rates(judged).loc[table.index, table.index]
    return tagged(table, "ratings")


def win_rates(battles: pd.DataFrame) -> pd.DataFrame:
    """How often the row's model beat the column's (ties half), over the battles between the two; NaN where
    they never met.  Models in order of first appearance."""
    import numpy as np
    import pandas as pd

    judged = outcomes(battles)
    models = list(dict.fromkeys([*judged.model_a, *judged.model_b]))
    wins = _units(judged, models, np.zeros(len(judged), dtype=np.int64)).sum(axis=0)
    met = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(met > 0, wins / met, np.nan)
    frame = pd.DataFrame(rates, index=pd.Index(models, name="model"), columns=pd.Index(models, name="opponent"))
    return tagged(frame, "win_rates")


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


def _inestimable(wins: np.ndarray, models: list[str]) -> str | None:
    """Why the maximum likelihood fit does not exist, or None: it exists exactly when every model can be
    reached from every other by a chain of wins (Ford 1957).  Names the models that never met the others,
    or a group that never lost to the rest."""
    import numpy as np

    k = len(models)
    beat = (wins > 0) | np.eye(k, dtype=bool)  # ties are half a win each way
    reach = beat.copy()
    for via in range(k):  # transitive closure (Warshall)
        reach |= reach[:, via : via + 1] & reach[via : via + 1, :]
    if reach.all():
        return None
    met = beat | beat.T
    for via in range(k):
        met |= met[:, via : via + 1] & met[via : via + 1, :]
    if not met.all():
        groups = list(dict.fromkeys(tuple(np.flatnonzero(row)) for row in met))
        listed = " / ".join(", ".join(models[i] for i in g) for g in groups)
        return f"the comparison graph is disconnected ({listed} never met)"
    # a group that beats or ties its way to every model but is reached by none outside it never lost to them
    top = next(i for i in range(k) if all(reach[i, j] or not reach[j, i] for j in range(k)))
    group = [j for j in range(k) if reach[top, j] and reach[j, top]]
    rest = [models[j] for j in range(k) if j not in group]
    return f"{', '.join(models[j] for j in group)} never lost to {', '.join(rest)}"


def _resampled(judged: pd.DataFrame, cluster: str | None) -> np.ndarray:
    """The resampling unit of every battle: ``cluster``, else the prompt, else the judged pair, else itself."""
    import numpy as np
    import pandas as pd

    from ..analysis.intervals import PROMPT_KEYS, unit_codes

    if cluster is not None:
        return pd.factorize(judged[cluster], use_na_sentinel=False)[0]
    if any(c in judged.columns for c in PROMPT_KEYS):
        return unit_codes(judged)[0]
    if "pair" in judged.columns:
        return pd.factorize(judged["pair"], use_na_sentinel=False)[0]
    return np.arange(len(judged))


def _units(judged: pd.DataFrame, models: list[str], unit: np.ndarray) -> np.ndarray:
    """Win matrices, one per resampling unit."""
    import numpy as np

    position = {m: i for i, m in enumerate(models)}
    a = judged.model_a.map(position).to_numpy()
    b = judged.model_b.map(position).to_numpy()
    score = judged.score.to_numpy(dtype=float)
    k = len(models)
    _, unit = np.unique(unit, return_inverse=True)
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


def _check(bootstrap: object, confidence: object, prior: object, cluster: str | None, battles: object) -> None:
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
