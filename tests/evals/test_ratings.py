"""Bradley–Terry ratings: a hand-worked example, a simulation with known strengths, and battle frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from opencode_lab import InvalidRequestError, ratings, win_rates
from opencode_lab.evals.ratings import SCALE, fit, outcomes


def battles(*rows: tuple[str, str, str], **columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"]).assign(**columns)


# strengths 4 : 2 : 1 and battles whose win rates are exactly what those strengths predict:
# A beats B 2 of 3 (4/6), B beats C 2 of 3 (2/3), A beats C 4 of 5 (4/5); the MLE is then p = (4, 2, 1)
HAND = battles(
    *[("A", "B", "A")] * 2, ("A", "B", "B"),
    *[("B", "C", "B")] * 2, ("B", "C", "C"),
    *[("A", "C", "A")] * 4, ("A", "C", "C"),
)  # fmt: skip


def test_the_fit_recovers_the_hand_worked_strengths() -> None:
    table = ratings(HAND, prior=0, bootstrap=50)
    step = 400 * math.log10(2)  # doubling the strength is worth 120.4 points
    assert list(table.index) == ["A", "B", "C"]
    assert table.rating.to_numpy() == pytest.approx([1000 + step, 1000, 1000 - step])


def test_the_fit_solves_the_likelihood_equations() -> None:
    wins = np.array([[0, 2, 4], [1, 0, 2], [1, 1, 0]], dtype=float)
    p = np.exp(fit(wins[None], prior=0)[0])
    games = wins + wins.T
    expected = (games * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    assert expected == pytest.approx(wins.sum(axis=1))  # observed wins = wins the model predicts


def test_two_models_rate_by_their_odds() -> None:
    table = ratings(battles(*[("x", "y", "x")] * 3, ("x", "y", "y")), prior=0, bootstrap=20)
    assert table.rating["x"] - table.rating["y"] == pytest.approx(400 * math.log10(3))


def test_the_table_counts_battles_wins_ties_and_losses() -> None:
    table = ratings(battles(("x", "y", "x"), ("x", "y", "tie"), ("y", "x", "y")), bootstrap=20)
    assert table.loc["x", ["battles", "wins", "ties", "losses"]].tolist() == [3, 1, 1, 1]
    assert table.win_rate["x"] == pytest.approx(0.5)


def _simulated(seed: int, strengths: np.ndarray, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(len(strengths))]
    a = rng.integers(0, len(strengths), n)
    b = (a + rng.integers(1, len(strengths), n)) % len(strengths)
    a_wins = rng.random(n) < 1 / (1 + np.exp(strengths[b] - strengths[a]))
    return pd.DataFrame({
        "model_a": [names[i] for i in a], "model_b": [names[i] for i in b],
        "winner": np.where(a_wins, "model_a", "model_b"),
    })  # fmt: skip


@pytest.mark.slow
def test_intervals_cover_known_strengths_at_about_the_nominal_rate() -> None:
    strengths = np.array([-0.8, -0.2, 0.3, 0.7])  # log-strengths, mean zero as the fit reports them
    truth = {f"m{i}": 1000 + SCALE * s for i, s in enumerate(strengths)}
    covered, ordered = [], []
    for seed in range(40):
        table = ratings(_simulated(seed, strengths), bootstrap=300, seed=seed)
        covered += [table.ci_low[m] <= truth[m] <= table.ci_high[m] for m in truth]
        ordered.append(list(table.index) == ["m3", "m2", "m1", "m0"])
    assert 0.88 <= np.mean(covered) <= 0.99
    assert np.mean(ordered) >= 0.9


def test_the_same_battles_and_seed_give_the_same_intervals() -> None:
    frame = _simulated(1, np.array([0.0, 0.5]))
    first, again = ratings(frame, bootstrap=100, seed=7), ratings(frame, bootstrap=100, seed=7)
    pd.testing.assert_frame_equal(first, again)


def test_a_prior_keeps_an_undefeated_model_finite() -> None:
    table = ratings(battles(*[("x", "y", "x")] * 5), bootstrap=50)
    assert np.isfinite(table[["rating", "ci_low", "ci_high"]].to_numpy()).all()
    assert table.rating["x"] > table.rating["y"]


def test_without_a_prior_an_undefeated_model_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="x never lost: its Bradley–Terry strength is infinite"):
        ratings(battles(*[("x", "y", "x")] * 5), prior=0)


def test_cluster_resamples_whole_groups_of_battles() -> None:
    frame = _simulated(3, np.array([0.0, 0.4, 0.8]), n=200)
    frame["prompt_id"] = np.arange(len(frame)) // 2
    clustered = ratings(frame, cluster="prompt_id", bootstrap=200)
    assert (clustered.ci_low <= clustered.rating).all() and (clustered.rating <= clustered.ci_high).all()
    with pytest.raises(InvalidRequestError, match="cluster='topic': no such column"):
        ratings(frame, cluster="topic")


def test_winners_may_be_positions_model_names_or_ties() -> None:
    frame = battles(
        ("x", "y", "model_a"), ("x", "y", "B"), ("x", "y", "x"), ("x", "y", "y"), ("x", "y", "tie (bothbad)")
    )
    assert outcomes(frame).score.tolist() == [1.0, 0.0, 1.0, 0.0, 0.5]


def test_battles_without_a_winner_are_left_out() -> None:
    frame = battles(("x", "y", "x"), ("x", "y", None))
    assert len(outcomes(frame)) == 1


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"model_a": ["x"], "model_b": ["y"]}), "missing: winner"),
        (battles(("x", "y", "z")), "battle 0: winner 'z' is neither 'x' nor 'y'"),
        (battles(("x", "x", "x")), "battle 0: model_a and model_b must be two different names"),
        (battles(("x", "y", None)), "no battle has a winner"),
    ],
)
def test_a_bad_battle_frame_is_refused_naming_the_problem(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        ratings(frame)


def test_the_win_rate_matrix_counts_ties_half_and_leaves_unmet_pairs_empty() -> None:
    rates = win_rates(battles(("x", "y", "x"), ("y", "x", "tie"), ("y", "z", "z")))
    assert rates.loc["x", "y"] == pytest.approx(0.75) and rates.loc["y", "x"] == pytest.approx(0.25)
    assert math.isnan(rates.loc["x", "z"]) and math.isnan(rates.loc["x", "x"])
    assert rates.loc["z", "y"] == 1.0


def test_ratings_carry_the_win_rate_matrix_in_rating_order() -> None:
    table = ratings(HAND, bootstrap=20)
    assert list(table.attrs["win_rates"].index) == list(table.index) == ["A", "B", "C"]
