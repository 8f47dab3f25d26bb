"""Bradley–Terry ratings: a hand-worked example, simulations with known strengths (battles judged in both orders
included), degenerate data marked not estimable, and battle frames whatever the models are called."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from opencode_lab import InvalidRequestError, judge, pairwise, ratings, win_rates
from opencode_lab.evals.ratings import SCALE, fit, outcomes


def battles(*rows: tuple[str, str, str], **columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"]).assign(**columns)


# strengths 4 : 2 : 1 and battles whose win rates are exactly what those strengths predict:
# P beats Q 2 of 3 (4/6), Q beats R 2 of 3 (2/3), P beats R 4 of 5 (4/5); the MLE is then p = (4, 2, 1)
HAND = battles(
    *[("P", "Q", "P")] * 2, ("P", "Q", "Q"),
    *[("Q", "R", "Q")] * 2, ("Q", "R", "R"),
    *[("P", "R", "P")] * 4, ("P", "R", "R"),
)  # fmt: skip


def test_the_fit_recovers_the_hand_worked_strengths() -> None:
    table = ratings(HAND, prior=0, bootstrap=50)
    step = 400 * math.log10(2)  # doubling the strength is worth 120.4 points
    assert list(table.index) == ["P", "Q", "R"]
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


def test_an_undefeated_model_has_no_interval_only_a_prior() -> None:
    table = ratings(battles(*[("x", "y", "x")] * 5), bootstrap=50)
    assert np.isfinite(table.rating).all() and table.rating["x"] > table.rating["y"]  # the prior keeps it finite
    assert table[["ci_low", "ci_high"]].isna().all().all()  # not [1208.3, 1208.3], which only the prior made
    assert (table.note == "not estimable: x never lost to y").all()


def test_without_a_prior_an_undefeated_model_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="x never lost to y: the Bradley–Terry fit does not exist"):
        ratings(battles(*[("x", "y", "x")] * 5), prior=0)


def test_a_group_that_never_lost_to_the_rest_makes_every_rating_not_estimable() -> None:
    frame = battles(("x", "y", "x"), ("y", "x", "y"), ("x", "z", "x"), ("y", "z", "y"), ("z", "y", "y"))
    assert (ratings(frame, bootstrap=50).note == "not estimable: x, y never lost to z").all()


def test_a_disconnected_comparison_graph_is_not_estimable() -> None:
    frame = battles(("w", "x", "w"), ("x", "w", "w"), ("w", "x", "x"), ("y", "z", "y"), ("z", "y", "z"))
    table = ratings(frame, bootstrap=50)
    assert table[["ci_low", "ci_high"]].isna().all().all()
    assert (table.note == "not estimable: the comparison graph is disconnected (w, x / y, z never met)").all()


def test_battles_no_resample_can_move_are_not_estimable() -> None:
    # a judge that always picks the first answer: every prompt's pair splits 1-1, in every resample
    frame = battles(*[("x", "y", "model_a"), ("y", "x", "model_a")] * 6, prompt_id=[i // 2 for i in range(12)])
    table = ratings(frame, bootstrap=50)
    assert table.rating.tolist() == pytest.approx([1000, 1000])
    assert table.ci_low.isna().all() and table.note.str.startswith("not estimable: no resample").all()


def test_an_estimable_rating_has_an_interval_and_no_note() -> None:
    table = ratings(HAND, bootstrap=100)
    assert (table.ci_low < table.rating).all() and (table.rating < table.ci_high).all()
    assert (table.note == "").all()


def test_cluster_names_the_resampling_unit() -> None:
    frame = _simulated(3, np.array([0.0, 0.4, 0.8]), n=200)
    frame["topic"] = np.arange(len(frame)) // 2
    clustered = ratings(frame, cluster="topic", bootstrap=200)
    assert (clustered.ci_low <= clustered.rating).all() and (clustered.rating <= clustered.ci_high).all()
    with pytest.raises(InvalidRequestError, match="cluster='source': no such column"):
        ratings(frame, cluster="source")


def _judged_in_both_orders(seed: int, strengths: np.ndarray, prompts: int = 150) -> pd.DataFrame:
    """A pairwise() frame: each prompt's pair of models judged twice, answers swapped.  The judge reads the prompt
    once: the second verdict repeats the first 70 % of the time, else is drawn afresh."""
    rng = np.random.default_rng(seed)
    k = len(strengths)
    a = rng.integers(0, k, prompts)
    b = (a + rng.integers(1, k, prompts)) % k
    p_a = 1 / (1 + np.exp(strengths[b] - strengths[a]))
    first = rng.random(prompts) < p_a
    second = np.where(rng.random(prompts) < 0.7, first, rng.random(prompts) < p_a)
    rows = []
    for i in range(prompts):
        for swapped, a_won in ((False, first[i]), (True, second[i])):
            x, y = (f"m{b[i]}", f"m{a[i]}") if swapped else (f"m{a[i]}", f"m{b[i]}")
            rows.append({"pair": i, "prompt_id": i, "prompt": f"q{i}", "model_a": x, "model_b": y,
                         "score": float(a_won != swapped)})  # fmt: skip
    return pd.DataFrame(rows)


def _coverage(cluster: str | None, reps: int) -> float:
    strengths = np.array([-0.6, 0.0, 0.6])
    truth = {f"m{i}": 1000 + SCALE * s for i, s in enumerate(strengths)}
    covered = []
    for seed in range(reps):
        frame = _judged_in_both_orders(seed, strengths).assign(battle=lambda f: range(len(f)))
        table = ratings(frame, bootstrap=200, seed=seed, cluster=cluster)
        covered += [table.ci_low[m] <= truth[m] <= table.ci_high[m] for m in truth]
    return float(np.mean(covered))


@pytest.mark.slow
def test_intervals_over_prompts_cover_battles_judged_in_both_orders() -> None:
    assert _coverage(None, 60) >= 0.9  # whole prompts: both orders move together
    assert _coverage("battle", 60) < 0.88  # battle by battle: both orders counted as independent evidence


def test_both_orders_of_one_prompt_are_resampled_together() -> None:
    frame = _judged_in_both_orders(0, np.array([-0.5, 0.0, 0.5]))
    by_prompt = ratings(frame, bootstrap=300)
    by_battle = ratings(frame.assign(battle=range(len(frame))), bootstrap=300, cluster="battle")
    width = lambda t: float((t.ci_high - t.ci_low).mean())  # noqa: E731
    assert width(by_prompt) > 1.15 * width(by_battle)


def test_winners_may_be_positions_model_names_or_ties() -> None:
    frame = battles(
        ("x", "y", "model_a"), ("x", "y", "B"), ("x", "y", "x"), ("x", "y", "y"), ("x", "y", "tie (bothbad)")
    )
    assert outcomes(frame).score.tolist() == [1.0, 0.0, 1.0, 0.0, 0.5]


def test_battles_without_a_winner_are_left_out() -> None:
    frame = battles(("x", "y", "x"), ("x", "y", None))
    assert len(outcomes(frame)) == 1


@pytest.mark.parametrize("names", [("A", "B"), ("b", "a"), ("tie", "x"), ("a", "tie"), ("model_b", "model_a")])
def test_a_score_column_identifies_the_winner_whatever_the_models_are_called(names: tuple[str, str]) -> None:
    strong, weak = names
    frame = pd.DataFrame({"model_a": [strong, weak] * 6, "model_b": [weak, strong] * 6, "score": [1.0, 0.0] * 6,
                          "winner": [strong] * 12})  # fmt: skip
    table = ratings(frame, bootstrap=20)
    assert table.loc[strong, ["wins", "losses", "ties"]].tolist() == [12, 0, 0]


@pytest.mark.parametrize(("a", "b", "winner"), [("x", "a", "a"), ("b", "x", "b"), ("tie", "x", "tie"), ("x", "A", "A")])
def test_a_winner_that_is_a_name_and_a_code_of_another_outcome_is_refused(a: str, b: str, winner: str) -> None:
    with pytest.raises(InvalidRequestError, match=f"battle 0: winner '{winner}' is ambiguous"):
        outcomes(battles((a, b, winner)))


def test_a_winner_that_is_a_name_and_the_same_code_is_read() -> None:
    assert outcomes(battles(("a", "x", "a"), ("x", "b", "b"), ("A", "x", "A"))).score.tolist() == [1.0, 0.0, 1.0]


def test_pairwise_battles_rate_models_named_like_winner_codes(judge_server, make_lab, judge_toml) -> None:
    """Models called "A", "a", "b" and "tie": the judge always prefers the longer answer, which is "tie"'s, then
    "b"'s...; 12 of 12 wins must stay 12 wins, never be read as positions or ties."""
    lengths = {"tie": 8, "b": 5, "a": 3, "A": 1}
    judge_server.reply = lambda body: json.dumps({
        "winner": "A" if len(_shown(body, "A")) > len(_shown(body, "B")) else "B", "reason": "longer",
    })  # fmt: skip
    results = pd.DataFrame([
        {"prompt_id": i, "prompt": f"q{i}", "model": m, "sample": 0, "error_type": None, "response": "w " * n}
        for i in range(2) for m, n in lengths.items()
    ])  # fmt: skip
    frame = pairwise(results, judge("judge", structured=False), lab=make_lab(judge_toml))
    table = ratings(frame, bootstrap=50)
    assert list(table.index) == ["tie", "b", "a", "A"]
    assert table.loc["tie", ["wins", "losses"]].tolist() == [12, 0]
    assert table.loc["A", ["wins", "losses"]].tolist() == [0, 12]


def _shown(body: dict, position: str) -> str:
    text = body["messages"][1]["content"]
    start = text.index(f"Answer {position}:\n") + len(f"Answer {position}:\n")
    return text[start : text.index("\n\n", start)]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"model_a": ["x"], "model_b": ["y"]}), "missing: winner"),
        (battles(("x", "y", "z")), "battle 0: winner 'z' is neither 'x' nor 'y'"),
        (battles(("x", "x", "x")), "battle 0: model_a and model_b must be two different names"),
        (battles(("x", "y", None)), "no battle has a winner"),
        (battles(("x", "y", "x"), score=[0.7]), "score 0.7 must be 1"),
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
    assert list(table.attrs["win_rates"].index) == list(table.index) == ["P", "Q", "R"]
