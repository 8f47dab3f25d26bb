"""The cost–quality plane's arithmetic, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opencode_lab.analysis.frontier import aiq, apgr, cpt, hull_quality, ndch, pgr_curve


def test_the_hull_keeps_only_points_no_mixture_beats_and_stops_at_the_best() -> None:
    xs, ys = ndch([1, 2, 1.5, 3, 1.2], [0.5, 0.6, 0.9, 0.8, 0.4])
    assert list(xs) == [1, 1.5] and list(ys) == [0.5, 0.9]


def test_a_point_on_the_chord_between_two_others_is_not_a_vertex() -> None:
    xs, ys = ndch([0, 1, 2], [0.0, 0.5, 1.0])
    assert list(xs) == [0, 2] and list(ys) == [0.0, 1.0]


def test_at_equal_cost_the_better_point_counts_and_nan_points_are_ignored() -> None:
    xs, ys = ndch([1, 1, 2, math.nan], [0.2, 0.4, 0.9, 1.0])
    assert list(xs) == [1, 2] and list(ys) == [0.4, 0.9]


def test_aiq_is_the_mean_height_of_the_hull_over_the_cost_range() -> None:
    xs, ys = ndch([1, 1.5], [0.5, 1.0])
    assert aiq(xs, ys, 1, 2) == pytest.approx((0.5 * 0.75 + 0.5 * 1.0) / 1)


def test_a_single_point_is_flat_on_both_sides_so_its_aiq_is_its_quality() -> None:
    xs, ys = ndch([2], [0.6])
    assert aiq(xs, ys, 1, 3) == pytest.approx(0.6)
    assert list(hull_quality(xs, ys, np.array([0.0, 5.0]))) == [0.6, 0.6]


def test_pgr_follows_the_order_of_the_predicted_advantage() -> None:
    weak, strong = np.array([1, 0, 0, 1.0]), np.array([1, 1, 1, 0.0])
    shares, pgr = pgr_curve(weak, strong, strong - weak)
    assert list(shares) == [0, 0.25, 0.5, 0.75, 1]
    assert list(pgr) == pytest.approx([0, 1, 2, 2, 1])
    assert apgr(shares, pgr) == pytest.approx(0.25 * (0 / 2 + 1 + 2 + 2 + 1 / 2))
    assert cpt(shares, pgr, 0.5) == 0.25 and cpt(shares, pgr, 0.8) == 0.25


def test_when_every_prompt_gains_the_same_pgr_is_the_share_of_strong_calls() -> None:
    shares, pgr = pgr_curve(np.zeros(10), np.ones(10), np.zeros(10))
    assert apgr(shares, pgr) == pytest.approx(0.5)
    assert cpt(shares, pgr, 0.5) == 0.5 and cpt(shares, pgr, 0.8) == 0.8


def test_without_a_gap_between_the_models_pgr_apgr_and_cpt_are_undefined() -> None:
    shares, pgr = pgr_curve(np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    assert np.isnan(pgr).all() and math.isnan(apgr(shares, pgr)) and math.isnan(cpt(shares, pgr, 0.5))
