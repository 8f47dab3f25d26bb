"""statistics: paired comparisons and sample sizes, checked against statsmodels, scipy and textbook numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from opencode_lab.analysis.statistics import paired, sample_size
from opencode_lab.core.errors import InvalidRequestError

# Student's sleep data (Cushny & Peebles 1905): extra hours of sleep of 10 patients under two drugs.
# R: t.test(extra ~ group, data = sleep, paired = TRUE) -> t = -4.0621, df = 9, p = 0.002833,
# 95 % CI -2.4598858 .. -0.7001142, mean difference -1.58.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def _frame(by_model: dict[str, list[float]], samples: int = 1, **columns: list[object]) -> pd.DataFrame:
    """A results-like frame: one row per model x prompt x sample, prompt i answered with values[i]."""
    rows = []
    for model, values in by_model.items():
        for prompt, value in enumerate(values):
            for sample in range(samples):
                extra = {k: v[prompt] for k, v in columns.items()}
                rows.append({"prompt_id": prompt, "model": model, "sample": sample, "score": value, **extra})
    return pd.DataFrame(rows)


def _gap_of_four_points(prompts: int, only_a: int, only_b: int, seed: int = 11) -> pd.DataFrame:
    """0/1 scores of models a and b that agree on most prompts; a wins ``only_a`` more, b ``only_b``."""
    both_right = round(prompts * 0.55)
    outcome = np.array([0] * both_right + [1] * (prompts - both_right - only_a - only_b) + [2] * only_a + [3] * only_b)
    np.random.default_rng(seed).shuffle(outcome)
    a = np.isin(outcome, (0, 2)).astype(float).tolist()
    b = np.isin(outcome, (0, 3)).astype(float).tolist()
    return _frame({"a": a, "b": b})


# -- paired ---------------------------------------------------------------------------------


def test_paired_t_reproduces_students_sleep_data() -> None:
    row = paired(_frame({"drug1": SLEEP_1, "drug2": SLEEP_2})).loc[("drug1", "drug2")]
    assert row["n_prompts"] == 10
    assert row["difference"] == pytest.approx(-1.58)
    assert row["p_value"] == pytest.approx(0.002833, abs=1e-6)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-2.4598858, -0.7001142))
    assert row["test"] == "paired t"
    assert row["verdict"] == "B better"


def test_paired_t_matches_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(1.0, 0.3, size=25), rng.normal(1.1, 0.3, size=25)
    row = paired(_frame({"a": a.tolist(), "b": b.tolist()})).iloc[0]
    theirs = sps.ttest_rel(a, b)
    assert row["p_value"] == pytest.approx(theirs.pvalue)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(theirs.confidence_interval()))
    assert row["se"] == pytest.approx((a - b).std(ddof=1) / 5)
    assert (row["mean_a"], row["mean_b"]) == pytest.approx((a.mean(), b.mean()))


def test_0_1_scores_use_mcnemars_exact_test() -> None:
    # 9 prompts only a gets right, 2 only b: p = 2 x P(X <= 2 | 11, 1/2) = 2 x 67 / 2048
    a = [1.0] * 9 + [0.0] * 2 + [1.0] * 20 + [0.0] * 9
    b = [0.0] * 9 + [1.0] * 2 + [1.0] * 20 + [0.0] * 9
    row = paired(_frame({"a": a, "b": b})).iloc[0]
    assert row["test"] == "McNemar exact"
    assert row["p_value"] == pytest.approx(134 / 2048)
    assert row["p_value"] == pytest.approx(mcnemar([[20, 9], [2, 9]], exact=True).pvalue)
    assert row["difference"] == pytest.approx(7 / 40)


def test_four_point_gap_on_50_prompts_is_not_detectable_on_1000_it_is() -> None:
    small = paired(_gap_of_four_points(50, only_a=4, only_b=2)).iloc[0]
    large = paired(_gap_of_four_points(1000, only_a=95, only_b=55)).iloc[0]
    assert small["difference"] == pytest.approx(0.04) and large["difference"] == pytest.approx(0.04)
    assert small["p_value"] == pytest.approx(sps.binomtest(4, 6).pvalue)  # 0.6875
    assert small["verdict"] == "no detectable difference"
    assert small["ci_low"] < 0 < small["ci_high"]
    assert large["p_value"] == pytest.approx(sps.binomtest(95, 150).pvalue)  # 0.00137
    assert large["verdict"] == "A better"
    assert 0 < large["ci_low"] < 0.04 < large["ci_high"]


def test_pairs_use_only_prompts_both_models_answered() -> None:
    frame = _frame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.5, 2.0, 3.5, 9.0]})
    frame.loc[(frame["model"] == "b") & (frame["prompt_id"] == 3), "error_type"] = "timeout"
    frame = frame[~((frame["model"] == "a") & (frame["prompt_id"] == 0))]
    row = paired(frame).iloc[0]
    assert row["n_prompts"] == 2  # prompt 0: a has no row; prompt 3: b failed
    assert (row["mean_a"], row["mean_b"]) == pytest.approx((2.5, 2.75))


def test_samples_are_averaged_per_prompt_before_pairing() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(20, 3)), rng.normal(0.5, 1, size=(20, 3))
    rows = [
        {"prompt_id": p, "model": m, "sample": s, "score": v[p, s]}
        for m, v in (("a", a), ("b", b))
        for p in range(20)
        for s in range(3)
    ]
    row = paired(pd.DataFrame(rows)).iloc[0]
    assert row["n_prompts"] == 20
    assert row["p_value"] == pytest.approx(sps.ttest_rel(a.mean(axis=1), b.mean(axis=1)).pvalue)


def test_0_1_scores_with_several_samples_use_the_t_test_on_prompt_means() -> None:
    frame = _frame({"a": [1.0, 0.0, 1.0, 1.0], "b": [0.0, 0.0, 1.0, 0.0]}, samples=2)
    assert paired(frame).iloc[0]["test"] == "paired t"


def test_cluster_makes_the_paired_se_cluster_robust() -> None:
    rng = np.random.default_rng(8)
    sources = np.repeat(np.arange(6), 5)
    d = 0.1 + 0.3 * rng.normal(size=6)[sources] + 0.1 * rng.normal(size=30)
    b = rng.normal(size=30)
    frame = _frame({"a": (b + d).tolist(), "b": b.tolist()}, source=sources.tolist())
    row = paired(frame, cluster="source").iloc[0]
    fit = sm.OLS(d, np.ones(30)).fit(cov_type="cluster", cov_kwds={"groups": sources})
    assert row["se"] == pytest.approx(float(fit.bse[0]))
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(abs(d.mean()) / float(fit.bse[0]), 5))


def test_holm_adjusts_across_all_pairs() -> None:
    rng = np.random.default_rng(10)
    base = rng.normal(size=30)
    frame = _frame(
        {m: (base + shift + 0.3 * rng.normal(size=30)).tolist() for m, shift in zip("abc", (0, 0.1, 0.3), strict=True)}
    )
    table = paired(frame)
    assert list(table.index) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert table["p_holm"].tolist() == pytest.approx(multipletests(table["p_value"], method="holm")[1].tolist())


def test_lower_latency_is_better() -> None:
    frame = _frame({"fast": SLEEP_1, "slow": SLEEP_2}).rename(columns={"score": "latency_s"})
    assert paired(frame, "latency_s").iloc[0]["verdict"] == "A better"
    assert paired(frame.rename(columns={"latency_s": "errors"}), "errors").iloc[0]["verdict"] == "B better"
    flipped = paired(frame.rename(columns={"latency_s": "errors"}), "errors", higher_is_better=False)
    assert flipped.iloc[0]["verdict"] == "A better"


def test_fewer_than_two_shared_prompts_say_so() -> None:
    row = paired(_frame({"a": [1.0], "b": [0.5]})).iloc[0]
    assert row["verdict"] == "too few paired prompts"
    assert math.isnan(row["p_value"]) and math.isnan(row["p_holm"])


def test_paired_names_a_missing_metric_or_prompt_column() -> None:
    frame = _frame({"a": [1.0, 0.0], "b": [0.0, 1.0]}, label=["x", "y"])
    with pytest.raises(InvalidRequestError, match="'accuracy'"):
        paired(frame, "accuracy")
    with pytest.raises(InvalidRequestError, match="'label' must be numeric"):
        paired(frame, "label")
    with pytest.raises(InvalidRequestError, match="prompt_id or prompt"):
        paired(frame.drop(columns=["prompt_id"]))


# -- sample size ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effect", "sd", "alpha", "power"), [(0.04, 0.4, 0.05, 0.8), (0.1, 0.3, 0.01, 0.9), (0.5, 1.0, 0.05, 0.8)]
)
def test_sample_size_matches_statsmodels_power(effect: float, sd: float, alpha: float, power: float) -> None:
    theirs = TTestPower().solve_power(effect_size=effect / sd, alpha=alpha, power=power, alternative="two-sided")
    assert sample_size(effect, sd=sd, alpha=alpha, power=power) == math.ceil(theirs)


def test_sample_size_for_0_1_scores_uses_the_sd_of_their_difference() -> None:
    # a scores 0.64, b 0.60: Var(a - b) = 0.64 x 0.36 + 0.6 x 0.4 - 2ρ sqrt(...)
    independent = math.sqrt(0.64 * 0.36 + 0.6 * 0.4)
    assert sample_size(0.04, p=0.6) == sample_size(0.04, sd=independent)
    correlated = math.sqrt(0.64 * 0.36 + 0.6 * 0.4 - 2 * 0.5 * math.sqrt(0.64 * 0.36 * 0.6 * 0.4))
    assert sample_size(0.04, p=0.6, correlation=0.5) == sample_size(0.04, sd=correlated)
    assert sample_size(0.04, p=0.6, correlation=0.5) < sample_size(0.04, p=0.6) / 1.8


def test_sample_size_from_a_pilot_uses_the_sd_of_paired_differences() -> None:
    pilot = _gap_of_four_points(1000, only_a=95, only_b=55)
    wide = pilot.pivot_table(index="prompt_id", columns="model", values="score")
    sd = float((wide["a"] - wide["b"]).std(ddof=1))
    needed = sample_size(0.04, pilot=pilot)
    assert needed == sample_size(0.04, sd=sd)
    assert 50 < needed < 1000  # why 50 prompts could not tell these models apart and 1,000 could


def test_sample_size_from_a_pilot_covers_its_noisiest_pair() -> None:
    rng = np.random.default_rng(12)
    base = rng.normal(size=40)
    frame = _frame(
        {"a": base.tolist(), "b": (base + 0.1 * rng.normal(size=40)).tolist(), "c": rng.normal(size=40).tolist()}
    )
    wide = frame.pivot_table(index="prompt_id", columns="model", values="score")
    noisiest = max(float((wide[x] - wide[y]).std(ddof=1)) for x, y in (("a", "b"), ("a", "c"), ("b", "c")))
    assert sample_size(0.2, pilot=frame) == sample_size(0.2, sd=noisiest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"effect": 0.0, "sd": 1.0}, "effect must be a positive"),
        ({"effect": 0.1}, "exactly one of pilot=, sd= or p="),
        ({"effect": 0.1, "sd": 1.0, "p": 0.5}, "exactly one of"),
        ({"effect": 0.1, "sd": 0.0}, "must be positive"),
        ({"effect": 0.1, "p": 0.95}, "between 0 and 1"),
        ({"effect": 0.1, "sd": 1.0, "power": 1.0}, "alpha and power"),
        ({"effect": 0.1, "p": 0.5, "correlation": 2.0}, "correlation"),
    ],
)
def test_sample_size_refuses_bad_input(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        sample_size(**kwargs)


def test_sample_size_refuses_a_pilot_of_one_model() -> None:
    with pytest.raises(InvalidRequestError, match="two models"):
        sample_size(0.1, pilot=_frame({"a": [1.0, 0.0, 1.0]}))
