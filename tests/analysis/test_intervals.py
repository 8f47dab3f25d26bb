"""intervals: Wilson, t and cluster-robust intervals and order-statistic quantile intervals; checked against
statsmodels, scipy, a textbook example and coverage simulations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from opencode_lab.analysis.intervals import (
    _effective_n,
    clustered_se,
    fewest_values,
    mean_interval,
    order_ranks,
    quantile_interval,
    unit_codes,
    wilson_interval,
)
from opencode_lab.core.errors import InvalidRequestError

# -- intervals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (7, 20), (20, 20), (1, 1), (62, 100)])
def test_wilson_interval_matches_statsmodels(successes: int, n: int) -> None:
    assert wilson_interval(successes, n) == pytest.approx(proportion_confint(successes, n, method="wilson"))
    low, high = proportion_confint(successes, n, alpha=0.1, method="wilson")
    assert wilson_interval(successes, n, confidence=0.9) == pytest.approx((low, high))


def test_wilson_interval_textbook_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, example: 81/263 -> 0.2553 to 0.3662
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_wilson_interval_of_nothing_is_nan() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_mean_of_independent_values_gets_the_t_interval() -> None:
    x = np.random.default_rng(3).normal(0.6, 0.2, size=40)
    est = mean_interval(x, np.arange(40), np.arange(40))
    assert est.mean == pytest.approx(x.mean())
    assert est.se == pytest.approx(x.std(ddof=1) / math.sqrt(40))
    assert (est.low, est.high) == pytest.approx(DescrStatsW(x).tconfint_mean())
    assert (est.rows, est.prompts, est.clusters) == (40, 40, 40)


def test_mean_of_independent_0_1_values_gets_the_wilson_interval() -> None:
    x = np.array([1.0] * 31 + [0.0] * 19)
    est = mean_interval(x, np.arange(50), np.arange(50))
    assert est.mean == pytest.approx(0.62)
    assert (est.low, est.high) == pytest.approx(proportion_confint(31, 50, method="wilson"))


def test_missing_values_are_ignored_not_counted_as_zero() -> None:
    est = mean_interval(np.array([1.0, np.nan, 0.0, 1.0]), np.arange(4), np.arange(4))
    assert est.mean == pytest.approx(2 / 3)
    assert est.rows == 3


def test_samples_of_one_prompt_are_averaged_first() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(0.5, 0.3, size=(30, 4))  # 30 prompts x 4 samples
    prompts = np.repeat(np.arange(30), 4)
    est = mean_interval(values.ravel(), prompts, prompts)
    per_prompt = values.mean(axis=1)
    assert est.mean == pytest.approx(per_prompt.mean())
    assert (est.low, est.high) == pytest.approx(DescrStatsW(per_prompt).tconfint_mean())
    assert (est.rows, est.prompts, est.clusters) == (120, 30, 30)


def test_copies_of_a_0_1_answer_add_no_evidence() -> None:
    once = np.array([1.0] * 31 + [0.0] * 19)
    prompts = np.repeat(np.arange(50), 4)
    est = mean_interval(np.repeat(once, 4), prompts, prompts)
    naive = proportion_confint(124, 200, method="wilson")
    # effective sample size p(1-p)/SE² with the clustered SE: 49 here, the 50 prompts less one degree of freedom
    se = DescrStatsW(once).std_mean
    effective = 0.62 * 0.38 / se**2
    assert effective == pytest.approx(49.0)
    # Korn & Graubard: Wilson on the effective size shrunk by (z / t(G - 1))², i.e. Wilson with t's critical value
    shrunk = effective * (sps.norm.ppf(0.975) / sps.t.ppf(0.975, 49)) ** 2
    assert (est.low, est.high) == pytest.approx(proportion_confint(0.62 * shrunk, shrunk, method="wilson"))
    assert est.high - est.low > 1.9 * (naive[1] - naive[0])


def test_wilson_with_degrees_of_freedom_is_korn_graubards_interval() -> None:
    shrunk = 30 * (sps.norm.ppf(0.975) / sps.t.ppf(0.975, 4)) ** 2
    assert wilson_interval(21, 30, df=4) == pytest.approx(proportion_confint(0.7 * shrunk, shrunk, method="wilson"))


def _clustered_coverage(prompts: int, use_t: bool, reps: int = 1500) -> float:
    """How often the interval of 0/1 scores (prompts x 10 samples, success rates varying between prompts as
    Beta(2.8, 1.2): mean 0.7, intra-prompt correlation 0.2) covers the mean rate."""
    rng = np.random.default_rng(20)
    codes = np.repeat(np.arange(prompts), 10)
    covered = 0
    for _ in range(reps):
        rate = rng.beta(2.8, 1.2, size=prompts)
        values = (rng.random((prompts, 10)) < rate[:, None]).astype(float).ravel()
        if use_t:
            est = mean_interval(values, codes, codes)
            low, high = est.low, est.high
        else:  # the z interval on the effective sample size this replaced
            y = values.reshape(prompts, 10).mean(axis=1)
            effective = _effective_n(y.mean(), clustered_se(y, np.arange(prompts)), 10 * prompts, prompts)
            low, high = wilson_interval(y.mean() * effective, effective)
        covered += low <= 0.7 <= high
    return covered / reps


def test_clustered_0_1_intervals_keep_their_coverage_with_five_prompts() -> None:
    assert _clustered_coverage(5, use_t=True) >= 0.92
    assert _clustered_coverage(5, use_t=False) < 0.91  # what a z interval gave: too narrow


@pytest.mark.slow
@pytest.mark.parametrize("prompts", [3, 8])
def test_clustered_0_1_intervals_cover_with_three_and_eight_prompts(prompts: int) -> None:
    assert _clustered_coverage(prompts, use_t=True) >= 0.93


def test_a_bounded_score_keeps_its_interval_inside_0_and_1() -> None:
    values = np.array([1.0] * 18 + [0.5, 0.6])  # mean 0.955: mean ± t x SE would run past 1
    open_ended = mean_interval(values, np.arange(20), np.arange(20))
    bounded = mean_interval(values, np.arange(20), np.arange(20), bounds=(0.0, 1.0))
    assert open_ended.high > 1
    assert bounded.high == 1.0 and bounded.low == pytest.approx(open_ended.low)


def test_clustered_se_matches_statsmodels_cluster_robust_ols() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), 5)
    y = rng.normal(size=60) + rng.normal(size=12)[groups]
    fit = OLS(y, np.ones(60)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert clustered_se(y, groups) == pytest.approx(float(fit.bse[0]))
    assert clustered_se(y, np.arange(60)) == pytest.approx(y.std(ddof=1) / math.sqrt(60))


def test_cluster_of_prompts_widens_the_interval_and_uses_clusters_minus_one_df() -> None:
    rng = np.random.default_rng(2)
    sources = np.repeat(np.arange(8), 6)  # 48 questions on 8 passages
    y = 0.5 + 0.1 * rng.normal(size=48) + 0.2 * rng.normal(size=8)[sources]
    alone = mean_interval(y, np.arange(48), np.arange(48))
    grouped = mean_interval(y, np.arange(48), sources)
    fit = OLS(y, np.ones(48)).fit(cov_type="cluster", cov_kwds={"groups": sources})
    assert grouped.se == pytest.approx(float(fit.bse[0]))
    half = sps.t.ppf(0.975, 7) * grouped.se
    assert (grouped.low, grouped.high) == pytest.approx((y.mean() - half, y.mean() + half))
    assert grouped.high - grouped.low > 2 * (alone.high - alone.low)


def test_one_prompt_gives_no_interval() -> None:
    est = mean_interval(np.array([0.2, 0.4, 0.9]), np.zeros(3, int), np.zeros(3, int))
    assert est.mean == pytest.approx(0.5)
    assert math.isnan(est.low) and math.isnan(est.high) and est.clusters == 1


def test_unit_codes_identify_prompts_by_id_and_text() -> None:
    frame = pd.DataFrame(
        {
            "prompt_id": [0, 0, 1, None, None, None],
            "prompt": ["a", "a", "b", "hi", "hi", None],
            "source": ["s", "s", "s", None, "t", "t"],
        }
    )
    prompts, clusters = unit_codes(frame)
    assert prompts[0] == prompts[1] != prompts[2]
    assert prompts[3] == prompts[4]  # the same chat prompt asked twice
    assert prompts[5] not in prompts[:5]  # nothing identifies it: a prompt of its own
    assert (clusters == prompts).all()
    _, by_source = unit_codes(frame, "source")
    assert by_source[0] == by_source[1] == by_source[2] != by_source[3]
    assert by_source[4] == by_source[5] != by_source[3]  # a missing source: its prompt is its own cluster
    with pytest.raises(InvalidRequestError, match="'passage'"):
        unit_codes(frame, "passage")


# -- quantiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 10, 36, 71, 72, 100, 300, 1000])
@pytest.mark.parametrize("q", [0.05, 0.5, 0.9, 0.95])
def test_order_ranks_are_scipys_quantile_test_interval(n: int, q: float) -> None:
    theirs = sps.quantile_test(np.arange(1.0, n + 1), q=0, p=q).confidence_interval(0.95)
    ranks = order_ranks(n, q)
    if ranks is None:
        assert math.isnan(theirs.low) or math.isnan(theirs.high)
    else:
        assert ranks == (theirs.low, theirs.high)


def test_order_ranks_each_miss_the_quantile_with_at_most_two_and_a_half_percent() -> None:
    low, high = order_ranks(100, 0.95)  # type: ignore[misc]
    assert (low, high) == (90, 100)
    assert sps.binom.cdf(low - 1, 100, 0.95) <= 0.025 < sps.binom.cdf(low, 100, 0.95)
    assert sps.binom.sf(high - 1, 100, 0.95) <= 0.025


def test_fewest_values_for_an_interval() -> None:
    assert (fewest_values(0.95), fewest_values(0.5), fewest_values(0.99)) == (72, 6, 368)
    assert order_ranks(71, 0.95) is None and order_ranks(72, 0.95) is not None


def test_too_few_values_give_no_interval_and_say_how_many_it_needs() -> None:
    latencies = np.random.default_rng(1).lognormal(size=6)
    p95 = quantile_interval(latencies, np.arange(6), 0.95)
    assert math.isnan(p95.low) and math.isnan(p95.high)
    assert p95.reason == "needs 72 values, has 6"
    p50 = quantile_interval(latencies, np.arange(6), 0.5)
    assert (p50.low, p50.high) == (latencies.min(), latencies.max()) and p50.reason is None


def test_p95_interval_covers_lognormal_latencies_at_n_100() -> None:
    rng, truth = np.random.default_rng(7), math.exp(sps.norm.ppf(0.95))
    hits = []
    for _ in range(2000):
        interval = quantile_interval(rng.lognormal(size=100), np.arange(100), 0.95)
        hits.append(interval.low <= truth <= interval.high)
    assert np.mean(hits) >= 0.93


def _clustered_latencies(rng: np.random.Generator, prompts: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-latency = a prompt's own level (SD 0.5) + noise (SD 0.3): samples of one prompt are alike."""
    levels = np.repeat(rng.normal(0, 0.5, prompts), samples)
    return np.exp(levels + rng.normal(0, 0.3, prompts * samples)), np.repeat(np.arange(prompts), samples)


def test_clustered_latencies_count_as_fewer_values() -> None:
    x, codes = _clustered_latencies(np.random.default_rng(3), 80, 5)
    alone = quantile_interval(x, np.arange(400), 0.5)
    grouped = quantile_interval(x, codes, 0.5)
    assert grouped.high - grouped.low > 1.5 * (alone.high - alone.low)
    few = quantile_interval(*_clustered_latencies(np.random.default_rng(3), 20, 5), 0.95)
    assert math.isnan(few.low) and few.reason == "needs 72 prompts, has 20"


@pytest.mark.slow
@pytest.mark.parametrize(("q", "prompts"), [(0.5, 20), (0.95, 80)])
def test_clustered_quantile_intervals_cover(q: float, prompts: int) -> None:
    rng, truth = np.random.default_rng(4), math.exp(math.hypot(0.5, 0.3) * sps.norm.ppf(q))
    hits = []
    for _ in range(800):
        interval = quantile_interval(*_clustered_latencies(rng, prompts, 5), q)
        hits.append(interval.low <= truth <= interval.high)
    assert np.mean(hits) >= 0.93
