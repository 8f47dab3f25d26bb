"""RetryPolicy: jittered exponential back-off."""

from __future__ import annotations

import random

import pytest

from opencode_lab.routing.backoff import RetryPolicy


def test_retry_policy_defaults():
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_s, policy.cap_s, policy.deadline_s) == (2, 0.5, 8.0, 120.0)


@pytest.mark.parametrize(("retry", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (4, 8.0), (5, 8.0), (10_000, 8.0)])
def test_ceiling_doubles_from_base_up_to_the_cap(retry, ceiling):
    assert RetryPolicy(base_s=0.5, cap_s=8.0).ceiling(retry) == ceiling


@pytest.mark.parametrize("retry", range(8))
def test_backoff_stays_within_zero_and_the_ceiling(retry):
    policy = RetryPolicy(base_s=0.5, cap_s=8.0)
    rng = random.Random(retry)
    ceiling = min(8.0, 0.5 * 2**retry)
    draws = [policy.backoff(retry, rng) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in draws)
    assert min(draws) < 0.1 * ceiling and max(draws) > 0.9 * ceiling  # full jitter spans the whole range


def test_backoff_rejects_a_negative_retry():
    with pytest.raises(ValueError):
        RetryPolicy().backoff(-1, random.Random(0))


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"base_s": -0.1}, {"cap_s": -1.0}, {"deadline_s": 0.0}])
def test_retry_policy_rejects_impossible_settings(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
