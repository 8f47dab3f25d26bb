"""sample_size(): planned for the test paired() runs; checked against statsmodels, exact power and simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestPower

from opencode_lab.analysis.mcnemar import mcnemar_p, mcnemar_power
from opencode_lab.analysis.planning import SampleSize, sample_size
from opencode_lab.analysis.statistics import paired
from opencode_lab.core.errors import InvalidRequestError


def _frame(by_model: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"prompt_id": i, "model": m, "score": v} for m, values in by_model.items() for i, v in enumerate(values)]
    )


# -- continuous scores: the paired t test ----------------------------------------------------


@pytest.mark.parametrize(
    ("effect", "sd", "alpha", "power"), [(0.04, 0.4, 0.05, 0.8), (0.1, 0.3, 0.01, 0.9), (0.5, 1.0, 0.05, 0.8)]
)
def test_t_plans_match_statsmodels_power(effect: float, sd: float, alpha: float, power: float) -> None:
    plan = sample_size(effect, sd=sd, alpha=alpha, power=power)
    theirs = TTestPower()
    assert plan.n == math.ceil(theirs.solve_power(effect_size=effect / sd, alpha=alpha, power=power))
    assert plan.power == pytest.approx(theirs.power(effect_size=effect / sd, nobs=plan.n, alpha=alpha))
    assert (plan.test, plan.sd, plan.discordance) == ("paired t", sd, None)


def test_several_models_share_alpha_across_their_pairs() -> None:
    plan = sample_size(0.5, sd=1.0, models=4)
    assert (plan.pairs, plan.alpha_per_pair) == (6, pytest.approx(0.05 / 6))
    theirs = TTestPower().solve_power(effect_size=0.5, alpha=0.05 / 6, power=0.8)
    assert plan.n == math.ceil(theirs) > sample_size(0.5, sd=1.0).n


# -- 0/1 scores: McNemar ----------------------------------------------------------------------


def test_0_1_plans_reach_the_power_of_the_test_paired_runs() -> None:
    plan = sample_size(0.1, discordance=0.3)
    assert plan.test == "McNemar" and plan.discordance == 0.3
    assert plan.power == pytest.approx(mcnemar_power(plan.n, 0.1, 0.3, 0.05))
    assert plan.power >= 0.8
    assert mcnemar_power(plan.n - 1, 0.1, 0.3, 0.05) < 0.8


def test_the_planned_power_holds_when_paired_runs_on_simulated_prompts() -> None:
    plan = sample_size(0.2, discordance=0.4)
    rng = np.random.default_rng(3)
    detected = []
    for _ in range(300):
        outcome = rng.choice(3, size=plan.n, p=[0.3, 0.1, 0.6])  # only a right, only b right, the same
        a, b = (outcome == 0).astype(float), (outcome == 1).astype(float)
        detected.append(paired(_frame({"a": a.tolist(), "b": b.tolist()})).iloc[0]["verdict"].startswith("a better"))
    assert np.mean(detected) == pytest.approx(plan.power, abs=0.06)  # 300 runs: SE of the share 0.023


@pytest.mark.slow
def test_the_planned_power_agrees_with_a_large_simulation() -> None:
    plan = sample_size(0.04, p=0.6, correlation=0.5)
    rng = np.random.default_rng(4)
    only_a, only_b = (plan.discordance + 0.04) / 2, (plan.discordance - 0.04) / 2  # type: ignore[operator]
    counts = rng.multinomial(plan.n, [only_a, only_b, 1 - only_a - only_b], size=4000)
    simulated = np.mean([mcnemar_p(b, c) < 0.05 for b, c, _ in counts])
    assert plan.power == pytest.approx(simulated, abs=0.02)


def test_accuracies_and_their_correlation_give_the_discordance() -> None:
    # a right with probability 0.64, b 0.60; independent: P(exactly one right) = 0.64 x 0.4 + 0.6 x 0.36
    assert sample_size(0.04, p=0.6).discordance == pytest.approx(0.64 * 0.4 + 0.6 * 0.36)
    both = 0.64 * 0.6 + 0.5 * math.sqrt(0.64 * 0.36 * 0.6 * 0.4)
    correlated = sample_size(0.04, p=0.6, correlation=0.5)
    assert correlated.discordance == pytest.approx(0.64 + 0.6 - 2 * both)
    assert correlated.n < sample_size(0.04, p=0.6).n / 1.8  # models failing the same prompts need fewer


def test_a_0_1_pilot_plans_with_its_largest_discordance() -> None:
    pilot = _frame({
        "a": [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
        "b": [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],  # 1 of 10 apart from a
        "c": [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],  # 5 of 10 apart from a, 4 from b
    })  # fmt: skip
    plan = sample_size(0.2, pilot=pilot)
    assert (plan.discordance, plan.pairs, plan.test) == (0.5, 3, "McNemar")
    assert plan.n == sample_size(0.2, discordance=0.5, models=3).n


def test_a_continuous_pilot_plans_with_its_noisiest_pair() -> None:
    rng = np.random.default_rng(12)
    base = rng.normal(size=40)
    frame = _frame({"a": base.tolist(), "b": (base + 0.1 * rng.normal(size=40)).tolist(),
                    "c": rng.normal(size=40).tolist()})  # fmt: skip
    wide = frame.pivot_table(index="prompt_id", columns="model", values="score")
    noisiest = max(float((wide[x] - wide[y]).std(ddof=1)) for x, y in (("a", "b"), ("a", "c"), ("b", "c")))
    assert sample_size(0.2, pilot=frame) == sample_size(0.2, sd=noisiest, models=3)


def test_the_plan_says_what_it_rests_on() -> None:
    plan = sample_size(0.1, discordance=0.3, models=3)
    assert isinstance(plan, SampleSize) and isinstance(plan.n, int)
    assert repr(plan) == (
        f"SampleSize(n={plan.n}: power {plan.power:.3f} to detect a difference of 0.1 (discordance 0.3) with the "
        "McNemar test at alpha 0.0167, alpha 0.05 shared by 3 pairs)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"effect": 0.0, "sd": 1.0}, "effect must be a positive"),
        ({"effect": 0.1}, "exactly one of pilot=, sd=, p= or discordance="),
        ({"effect": 0.1, "sd": 1.0, "p": 0.5}, "exactly one of"),
        ({"effect": 0.1, "sd": 0.0}, "must be positive"),
        ({"effect": 0.1, "p": 0.95}, "between 0 and 1"),
        ({"effect": 0.1, "sd": 1.0, "power": 1.0}, "alpha and power"),
        ({"effect": 0.1, "p": 0.5, "correlation": 2.0}, "correlation"),
        ({"effect": 0.3, "discordance": 0.2}, "must lie between the effect"),
        ({"effect": 0.1, "sd": 1.0, "models": 1}, "at least 2"),
    ],
)
def test_sample_size_refuses_bad_input(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        sample_size(**kwargs)  # type: ignore[arg-type]


def test_sample_size_refuses_a_pilot_of_one_model_or_of_models_that_always_agree() -> None:
    with pytest.raises(InvalidRequestError, match="two models"):
        sample_size(0.1, pilot=_frame({"a": [1.0, 0.0, 1.0]}))
    with pytest.raises(InvalidRequestError, match="agree on every prompt"):
        sample_size(0.1, pilot=_frame({"a": [1.0, 0.0, 1.0], "b": [1.0, 0.0, 1.0]}))
