"""Cohen's κ between a judge and people, checked against statsmodels and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

from opencode_lab import InvalidRequestError, agreement
from opencode_lab.analysis.agreement import cohen_kappa


@pytest.fixture(scope="module")
def cohen_kappa_score():
    """scikit-learn's kappa, a second reference, imported only where used: sklearn.metrics takes a second."""
    from sklearn.metrics import cohen_kappa_score

    return cohen_kappa_score


@pytest.mark.parametrize("seed", range(6))
def test_kappa_its_standard_error_and_interval_match_statsmodels(seed: int, cohen_kappa_score) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(12, 80)), int(rng.integers(2, 4))
    a = rng.integers(0, k, n)
    b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, n))
    table = np.zeros((k, k))
    np.add.at(table, (a, b), 1)
    reference = cohens_kappa(table)
    ours = cohen_kappa(a.tolist(), b.tolist())
    assert ours.kappa == pytest.approx(reference.kappa, abs=1e-12)
    assert ours.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert ours.se == pytest.approx(reference.std_kappa, rel=1e-9)
    assert ours.ci_low == pytest.approx(max(-1, reference.kappa_low), rel=1e-9)
    assert ours.ci_high == pytest.approx(min(1, reference.kappa_upp), rel=1e-9)
    assert ours.n == n


def test_perfect_agreement_is_one_without_a_zero_width_interval_and_chance_agreement_is_zero() -> None:
    perfect = cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1])
    assert perfect.kappa == 1.0 and math.isnan(perfect.ci_low) and math.isnan(perfect.ci_high)
    assert "no interval" in repr(perfect)
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1]).kappa == 0.0


def test_kappa_is_undefined_when_both_raters_only_ever_say_one_thing() -> None:
    result = cohen_kappa(["pass"] * 5, ["pass"] * 5)
    assert math.isnan(result.kappa) and "one and the same category" in result.note
    assert "undefined" in repr(result)
    assert math.isnan(cohen_kappa([1], [1]).kappa)


def test_scores_meet_labels_at_a_threshold_over_the_rows_both_graded(cohen_kappa_score) -> None:
    frame = pd.DataFrame({
        "score_judge": [1.0, 0.75, 0.25, 0.0, 1.0, math.nan],
        "score_human": [1.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    })  # fmt: skip
    result = agreement(frame, "score_judge")
    assert result.n == 5 and result.observed == pytest.approx(0.8)
    assert result.kappa == pytest.approx(cohen_kappa_score([1, 1, 0, 0, 1], [1, 1, 0, 0, 0]))
    assert "large-sample interval on only 5 rows" in repr(result)
    with pytest.raises(InvalidRequestError, match=r"no column 'score_j'.*score_judge"):
        agreement(frame, "score_j")


def test_a_rater_who_always_says_one_thing_has_kappa_zero_and_no_interval() -> None:
    result = cohen_kappa(["fail"] * 6, ["pass", "fail", "pass", "fail", "fail", "pass"])
    assert result.kappa == 0.0 and math.isnan(result.ci_low) and math.isnan(result.se)
    assert "the first rater gave one category ('fail') to all 6 rows" in repr(result)
