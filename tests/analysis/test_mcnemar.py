"""McNemar's test, Tango's interval and the exact power: checked against statsmodels and R, and by exact
enumeration of every outcome of 30 paired prompts (no simulation noise)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

from opencode_lab.analysis.mcnemar import connor_n, mcnemar_p, mcnemar_power, tango_interval

N = 30
OUTCOMES = [(b, c) for b in range(N + 1) for c in range(N + 1 - b)]  # (only a right, only b right)


@cache
def _interval(b: int, c: int, confidence: float = 0.95) -> tuple[float, float]:
    return tango_interval(b, c, N, confidence)


def _probabilities(only_a: float, only_b: float) -> np.ndarray:
    """P(b, c) of every outcome when a prompt is answered right by only a with probability only_a, only b ..."""
    counts = np.array([(b, c, N - b - c) for b, c in OUTCOMES])
    return sps.multinomial.pmf(counts, N, [only_a, only_b, 1 - only_a - only_b])


@pytest.mark.parametrize(("b", "c"), [(6, 16), (5, 0), (12, 3), (1, 9)])
def test_the_p_value_is_statsmodels_mcnemar_without_continuity_correction(b: int, c: int) -> None:
    assert mcnemar_p(b, c) == pytest.approx(mcnemar([[10, b], [c, 10]], exact=False, correction=False).pvalue)


def test_no_discordant_prompt_is_no_evidence() -> None:
    assert mcnemar_p(0, 0) == 1.0  # statsmodels: NaN (0 / 0)
    low, high = tango_interval(0, 0, 30)
    assert low < 0 < high


def test_tangos_interval_matches_the_published_examples() -> None:
    # R contingencytables::Tango_asymptotic_score_CI_paired_2x2 on Cavo et al. (2012): -0.1240 to -0.0054
    assert [round(x, 4) for x in tango_interval(6, 16, 161)] == [-0.1240, -0.0054]


def test_the_interval_excludes_0_exactly_when_the_test_rejects() -> None:
    for confidence in (0.95, 0.99):
        for b, c in OUTCOMES:
            low, high = _interval(b, c, confidence)
            assert (low > 0 or high < 0) == (mcnemar_p(b, c) < 1 - confidence), (b, c, low, high)
            assert low <= (b - c) / N <= high


@pytest.mark.parametrize("discordance", [0.2, 0.4, 0.6])
def test_type_i_error_at_30_prompts_is_between_2_and_7_percent(discordance: float) -> None:
    rejects = np.array([mcnemar_p(b, c) < 0.05 for b, c in OUTCOMES])
    size = float(_probabilities(discordance / 2, discordance / 2) @ rejects)
    assert 0.02 <= size <= 0.07
    exact = np.array([b + c > 0 and sps.binomtest(b, b + c).pvalue < 0.05 for b, c in OUTCOMES])
    assert float(_probabilities(discordance / 2, discordance / 2) @ exact) < size  # the exact test is too cautious


def test_coverage_at_30_prompts_is_at_least_93_percent() -> None:
    worst = 1.0
    for discordance in np.arange(0.05, 1.0, 0.1):
        for share in (0.5, 0.6, 0.7, 0.8, 0.9, 0.97):  # share of the discordant prompts only a gets right
            only_a, only_b = discordance * share, discordance * (1 - share)
            covered = np.array([_interval(b, c)[0] <= only_a - only_b <= _interval(b, c)[1] for b, c in OUTCOMES])
            worst = min(worst, float(_probabilities(only_a, only_b) @ covered))
    assert worst >= 0.93


def test_power_is_the_exact_sum_over_every_outcome() -> None:
    only_a, only_b = 0.3, 0.1  # a difference of 0.2 with discordance 0.4
    rejects = np.array([mcnemar([[0, b], [c, 0]], exact=False, correction=False).pvalue < 0.05 if b + c else False
                        for b, c in OUTCOMES])  # fmt: skip
    assert mcnemar_power(N, 0.2, 0.4, 0.05) == pytest.approx(float(_probabilities(only_a, only_b) @ rejects))


def test_power_agrees_with_a_simulation() -> None:
    rng = np.random.default_rng(5)
    counts = rng.multinomial(120, [0.2, 0.1, 0.7], size=4000)
    simulated = np.mean([mcnemar_p(b, c) < 0.05 for b, c, _ in counts])
    assert mcnemar_power(120, 0.1, 0.3, 0.05) == pytest.approx(simulated, abs=0.02)


def test_connors_approximation_is_close_to_the_exact_answer() -> None:
    approximate = connor_n(0.1, 0.3, 0.05, 0.8)
    assert mcnemar_power(round(approximate), 0.1, 0.3, 0.05) == pytest.approx(0.8, abs=0.01)
