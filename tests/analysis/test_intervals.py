"""intervals: Wilson, t and cluster-robust intervals, seeded bootstrap quantiles, Holm; checked against statsmodels,
scipy and a textbook example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from opencode_lab.analysis.intervals import (
    _weighted_quantiles,
    bootstrap_quantiles,
    clustered_se,
    holm,
    mean_interval,
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
    assert (est.low, est.high) == pytest.approx(proportion_confint(0.62 * effective, effective, method="wilson"))
    assert est.high - est.low > 1.9 * (naive[1] - naive[0])


def test_clustered_se_matches_statsmodels_cluster_robust_ols() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), 5)
    y = rng.normal(size=60) + rng.normal(size=12)[groups]
    fit = sm.OLS(y, np.ones(60)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert clustered_se(y, groups) == pytest.approx(float(fit.bse[0]))
    assert clustered_se(y, np.arange(60)) == pytest.approx(y.std(ddof=1) / math.sqrt(60))


def test_cluster_of_prompts_widens_the_interval_and_uses_clusters_minus_one_df() -> None:
    rng = np.random.default_rng(2)
    sources = np.repeat(np.arange(8), 6)  # 48 questions on 8 passages
    y = 0.5 + 0.1 * rng.normal(size=48) + 0.2 * rng.normal(size=8)[sources]
    alone = mean_interval(y, np.arange(48), np.arange(48))
    grouped = mean_interval(y, np.arange(48), sources)
    fit = sm.OLS(y, np.ones(48)).fit(cov_type="cluster", cov_kwds={"groups": sources})
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


# -- bootstrap ------------------------------------------------------------------------------


def test_weighted_quantiles_equal_numpy_on_the_expanded_sample() -> None:
    rng = np.random.default_rng(4)
    x = np.sort(rng.lognormal(size=25))
    weights = rng.integers(0, 4, size=(30, 25))
    weights[:, 0] += 1  # never an empty replicate
    got = _weighted_quantiles(x, np.cumsum(weights, axis=1), (0.0, 0.5, 0.95, 1.0))
    for r in range(30):
        expanded = np.repeat(x, weights[r])
        assert got[:, r] == pytest.approx(np.quantile(expanded, [0.0, 0.5, 0.95, 1.0]))


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_bootstrap_interval_agrees_with_scipy(q: float) -> None:
    x = np.random.default_rng(0).lognormal(size=300)
    [(low, high)] = bootstrap_quantiles(x, np.arange(300), (q,))
    theirs = sps.bootstrap(
        (x,), lambda a, axis: np.quantile(a, q, axis=axis), method="percentile", n_resamples=4000, random_state=0
    ).confidence_interval
    point = np.quantile(x, q)
    assert low < point < high
    assert low == pytest.approx(theirs.low, rel=0.03)
    assert high == pytest.approx(theirs.high, rel=0.03)


def test_bootstrap_is_seeded() -> None:
    x = np.random.default_rng(1).lognormal(size=80)
    first = bootstrap_quantiles(x, np.arange(80), (0.5, 0.95))
    assert bootstrap_quantiles(x, np.arange(80), (0.5, 0.95)) == first
    assert bootstrap_quantiles(x, np.arange(80), (0.5, 0.95), seed=1) != first


def test_bootstrap_resamples_whole_prompts() -> None:
    x = np.repeat(np.random.default_rng(2).lognormal(size=30), 5)  # five near-copies of each prompt's latency
    prompts = np.repeat(np.arange(30), 5)
    [(row_low, row_high)] = bootstrap_quantiles(x, np.arange(150), (0.5,))
    [(low, high)] = bootstrap_quantiles(x, prompts, (0.5,))
    assert high - low > 1.5 * (row_high - row_low)


def test_bootstrap_of_one_cluster_is_nan() -> None:
    assert all(math.isnan(v) for v in bootstrap_quantiles(np.array([1.0, 2.0]), np.zeros(2, int), (0.5,))[0])


def test_holm_matches_statsmodels() -> None:
    p = [0.01, 0.04, 0.03, 0.20, 0.005]
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist())
    assert holm([0.02, math.nan, 0.04])[0] == pytest.approx(0.04)  # a NaN is not a test
    assert math.isnan(holm([0.02, math.nan, 0.04])[1])
