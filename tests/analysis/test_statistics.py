"""paired(): one analysis whose test, interval and verdict agree; checked against statsmodels, scipy, published
numbers and a property test over random frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from opencode_lab.analysis.statistics import NO_DIFFERENCE, TOO_FEW, paired
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


def _table(both: int, only_a: int, only_b: int, neither: int, seed: int = 11) -> pd.DataFrame:
    """0/1 scores of models a and b with these counts of prompts, shuffled."""
    outcome = np.array([0] * both + [1] * neither + [2] * only_a + [3] * only_b)
    np.random.default_rng(seed).shuffle(outcome)
    return _frame({"a": np.isin(outcome, (0, 2)).astype(float).tolist(), "b": np.isin(outcome, (0, 3)).astype(float)})


def _reversal() -> pd.DataFrame:
    """The issue's example: b fails 15 of 40 prompts (schema_mismatch), exactly those it would get wrong, and is
    right on the 25 it answers; a is right on 30, wrong on 10 of b's 25."""
    rows = []
    for i in range(40):
        rows.append({"prompt_id": i, "model": "a", "score": float(i < 15 or i >= 25), "error_type": None})
        failed = i < 15
        rows.append({"prompt_id": i, "model": "b", "score": math.nan if failed else 1.0,
                     "error_type": "schema_mismatch" if failed else None})  # fmt: skip
    return pd.DataFrame(rows)


# -- continuous scores: the paired t test ----------------------------------------------------


def test_paired_t_reproduces_students_sleep_data() -> None:
    row = paired(_frame({"drug1": SLEEP_1, "drug2": SLEEP_2})).loc[("drug1", "drug2")]
    assert row["n_prompts"] == 10
    assert row["difference"] == pytest.approx(-1.58)
    assert row["p_value"] == pytest.approx(0.002833, abs=1e-6)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-2.4598858, -0.7001142))
    assert row["test"] == "paired t"
    assert row["verdict"] == "drug2 better by 1.58 [0.7, 2.46]"


def test_paired_t_matches_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(1.0, 0.3, size=25), rng.normal(1.1, 0.3, size=25)
    row = paired(_frame({"a": a.tolist(), "b": b.tolist()})).iloc[0]
    theirs = sps.ttest_rel(a, b)
    assert row["p_value"] == pytest.approx(theirs.pvalue)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(theirs.confidence_interval()))
    assert row["se"] == pytest.approx((a - b).std(ddof=1) / 5)
    assert (row["mean_a"], row["mean_b"]) == pytest.approx((a.mean(), b.mean()))
    assert pd.isna(row["only_a"]) and pd.isna(row["only_b"])  # discordance is for 0/1 outcomes


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


def test_cluster_makes_the_paired_se_cluster_robust() -> None:
    rng = np.random.default_rng(8)
    sources = np.repeat(np.arange(6), 5)
    d = 0.1 + 0.3 * rng.normal(size=6)[sources] + 0.1 * rng.normal(size=30)
    b = rng.normal(size=30)
    frame = _frame({"a": (b + d).tolist(), "b": b.tolist()}, source=sources.tolist())
    row = paired(frame, cluster="source").iloc[0]
    fit = OLS(d, np.ones(30)).fit(cov_type="cluster", cov_kwds={"groups": sources})
    assert row["se"] == pytest.approx(float(fit.bse[0]))
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(abs(d.mean()) / float(fit.bse[0]), 5))


def test_a_bounded_score_keeps_its_difference_interval_inside_minus_1_and_1() -> None:
    # [0, 1] scores with several samples: the t interval of a near-certain gap would run past 1
    frame = _frame({"a": [1.0, 1.0, 1.0], "b": [0.0, 0.0, 0.5]}, samples=2)
    row = paired(frame).iloc[0]
    assert row["test"] == "paired t" and row["ci_high"] == 1.0 and row["ci_low"] < 1.0


# -- 0/1 scores: McNemar with Tango's interval -----------------------------------------------


def test_0_1_scores_use_mcnemars_test_and_tangos_interval() -> None:
    # Cavo et al. (2012) in Fagerland, Lydersen & Laake (2017), ch. 8: 59 both, 6 only a, 16 only b, 80 neither.
    # R contingencytables: Tango asymptotic score CI -0.0621 (-0.1240 to -0.0054); McNemar asymptotic P = 0.0330
    row = paired(_table(59, 6, 16, 80)).iloc[0]
    assert row["test"] == "McNemar"
    assert (row["only_a"], row["only_b"]) == (6, 16)
    assert row["difference"] == pytest.approx(-10 / 161)
    assert (round(row["ci_low"], 4), round(row["ci_high"], 4)) == (-0.1240, -0.0054)
    assert row["p_value"] == pytest.approx(mcnemar([[59, 6], [16, 80]], exact=False, correction=False).pvalue)
    assert row["p_value"] == pytest.approx(0.0330, abs=5e-5)
    assert row["verdict"] == "b better by 6.2 points [0.5, 12.4]"


def test_five_to_none_discordant_is_a_difference_by_test_and_interval_alike() -> None:
    # the example: exact McNemar says p = 0.0625 while Newcombe's and Tango's intervals exclude 0
    row = paired(_table(20, 5, 0, 15)).iloc[0]
    assert row["p_value"] < 0.05 and row["ci_low"] > 0
    assert row["verdict"].startswith("a better by 12.5 points [2.6, 26.1]")


def test_samples_that_agree_are_one_0_1_outcome_per_prompt() -> None:
    agreeing = _frame({"a": [1.0, 0.0, 1.0, 1.0], "b": [0.0, 0.0, 1.0, 0.0]}, samples=2)
    assert paired(agreeing).iloc[0]["test"] == "McNemar"
    disagreeing = pd.concat([agreeing, agreeing.iloc[:1].assign(sample=2, score=0.0)], ignore_index=True)
    assert paired(disagreeing).iloc[0]["test"] == "paired t"


def test_a_four_point_gap_on_50_prompts_is_not_detectable_on_1000_it_is() -> None:
    small = paired(_table(28, 4, 2, 16)).iloc[0]
    large = paired(_table(550, 95, 55, 300)).iloc[0]
    assert small["difference"] == pytest.approx(0.04) and large["difference"] == pytest.approx(0.04)
    assert small["verdict"] == NO_DIFFERENCE and small["ci_low"] < 0 < small["ci_high"]
    assert large["verdict"].startswith("a better by 4.0 points")
    assert 0 < large["ci_low"] < 0.04 < large["ci_high"]


# -- several pairs: Bonferroni for p-values and intervals alike -------------------------------


def test_several_pairs_adjust_p_values_and_intervals_the_same_way() -> None:
    rng = np.random.default_rng(10)
    base = rng.normal(size=30)
    models = {m: (base + shift + 0.3 * rng.normal(size=30)) for m, shift in zip("abc", (0, 0.1, 0.3), strict=True)}
    table = paired(_frame({m: v.tolist() for m, v in models.items()}))
    assert list(table.index) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert table["p_adjusted"].tolist() == pytest.approx(multipletests(table["p_value"], method="bonferroni")[1])
    assert table["ci_level"].tolist() == pytest.approx([1 - 0.05 / 3] * 3)
    for (a, b), row in table.iterrows():
        theirs = sps.ttest_rel(models[a], models[b]).confidence_interval(confidence_level=1 - 0.05 / 3)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(theirs))
        assert (row["p_adjusted"] < 0.05) == (row["ci_low"] > 0 or row["ci_high"] < 0)


def test_pairs_keep_the_models_in_the_order_they_were_given() -> None:
    table = paired(_frame({"zeta": [1.0, 0.0, 1.0], "alpha": [0.0, 0.0, 1.0], "mid": [1.0, 1.0, 0.0]}))
    assert list(table.index) == [("zeta", "alpha"), ("zeta", "mid"), ("alpha", "mid")]


def test_lower_latency_is_better_and_says_faster() -> None:
    frame = _frame({"fast": SLEEP_1, "slow": SLEEP_2}).rename(columns={"score": "latency_s"})
    assert paired(frame, "latency_s").iloc[0]["verdict"] == "fast faster by 1.58 s [0.7, 2.46]"
    assert paired(frame.rename(columns={"latency_s": "errors"}), "errors").iloc[0]["verdict"].startswith("slow better")
    flipped = paired(frame.rename(columns={"latency_s": "errors"}), "errors", higher_is_better=False)
    assert flipped.iloc[0]["verdict"].startswith("fast better")


def test_fewer_than_two_shared_prompts_say_so() -> None:
    row = paired(_frame({"a": [1.0], "b": [0.5]})).iloc[0]
    assert row["verdict"] == TOO_FEW
    assert math.isnan(row["p_value"]) and math.isnan(row["p_adjusted"])


# -- failures ---------------------------------------------------------------------------------


def test_by_default_a_failure_counts_as_a_wrong_answer_and_the_verdict_says_whose() -> None:
    row = paired(_reversal()).loc[("a", "b")]
    assert (row["n_prompts"], row["lost"], row["failed_a"], row["failed_b"]) == (40, 0, 0, 15)
    assert (row["mean_a"], row["mean_b"]) == (0.75, 0.625)
    assert (row["only_a"], row["only_b"]) == (15, 10)
    assert row["verdict"] == NO_DIFFERENCE
    assert "b failed on 15 prompt(s) (schema_mismatch), counted as 0: 0, 1, 2, 3, 4, 5 and 9 more" in row["note"]
    assert "with failures='drop' (when they answer): b better by 40.0 points [21.4, 59.3]" in row["note"]


def test_failures_drop_gives_the_when_it_answers_view_with_a_warning() -> None:
    row = paired(_reversal(), failures="drop").loc[("a", "b")]
    assert (row["n_prompts"], row["lost"], row["failed_b"]) == (25, 15, 15)
    assert (row["mean_a"], row["mean_b"]) == (0.6, 1.0)
    assert row["verdict"] == "b better by 40.0 points [21.4, 59.3]"
    assert "left out: 0, 1, 2" in row["note"] and "compared on 25 of the 40 prompts" in row["note"]
    assert "counting failures as 0: no detectable difference" in row["note"]


def test_failures_are_left_out_of_a_metric_that_is_not_a_bounded_score() -> None:
    frame = _frame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.5, 2.0, 3.5, 9.0]})
    frame.loc[(frame["model"] == "b") & (frame["prompt_id"] == 3), "error_type"] = "timeout"
    frame = frame[~((frame["model"] == "a") & (frame["prompt_id"] == 0))]
    row = paired(frame).iloc[0]  # scores up to 9 are not on [0, 1]: a failure cannot count as 0
    assert (row["n_prompts"], row["lost"]) == (2, 1)  # prompt 0: a was never asked; prompt 3: b failed
    assert (row["mean_a"], row["mean_b"]) == pytest.approx((2.5, 2.75))
    assert "b failed on 1 prompt(s) (timeout), left out: 3" in row["note"]


def test_an_unknown_failure_policy_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="failures must be 'count'"):
        paired(_reversal(), failures="zero")


def test_paired_names_a_missing_metric_or_prompt_column() -> None:
    frame = _frame({"a": [1.0, 0.0], "b": [0.0, 1.0]}, label=["x", "y"])
    with pytest.raises(InvalidRequestError, match="'accuracy'"):
        paired(frame, "accuracy")
    with pytest.raises(InvalidRequestError, match="'label' must be numeric"):
        paired(frame, "label")
    with pytest.raises(InvalidRequestError, match="prompt_id or prompt"):
        paired(frame.drop(columns=["prompt_id"]))


# -- the parts agree, whatever the frame ------------------------------------------------------


@st.composite
def results_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, object]]:
    models = draw(st.integers(2, 3))
    prompts = draw(st.integers(2, 14))
    samples = draw(st.integers(1, 2))
    binary = draw(st.booleans())
    value = st.sampled_from([0.0, 1.0]) if binary else st.floats(0, 1, allow_nan=False)
    rows = []
    for m in range(models):
        for p in range(prompts):
            for s in range(samples):
                failed = draw(st.integers(0, 9)) == 0
                rows.append({"prompt_id": p, "model": f"m{m}", "sample": s, "source": p % 3,
                             "score": math.nan if failed else draw(value),
                             "error_type": "timeout" if failed else None})  # fmt: skip
    options = {
        "failures": draw(st.sampled_from(["count", "drop"])),
        "cluster": draw(st.sampled_from([None, "source"])),
        "confidence": draw(st.sampled_from([0.9, 0.95])),
    }
    return pd.DataFrame(rows), options


@settings(max_examples=150, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(results_frames())
def test_no_pair_has_an_interval_and_a_verdict_or_p_value_that_disagree(case: tuple[pd.DataFrame, dict]) -> None:
    frame, options = case
    table = paired(frame, **options)  # type: ignore[arg-type]
    alpha = 1 - options["confidence"]  # type: ignore[operator]
    for (a, b), row in table.iterrows():
        if row["verdict"] == TOO_FEW:
            continue
        excludes_zero = row["ci_low"] > 0 or row["ci_high"] < 0
        assert excludes_zero == (row["verdict"] != NO_DIFFERENCE), row.to_dict()
        assert excludes_zero == (row["p_adjusted"] < alpha), row.to_dict()
        if excludes_zero:
            assert row["verdict"].startswith(f"{a if row['difference'] > 0 else b} better by")
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]
