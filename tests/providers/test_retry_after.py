"""Parsing Retry-After and rate-limit reset headers at the HTTP edge."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from opencode_lab.providers.retry_after import parse_ratelimit_reset, parse_retry_after

NOW = parsedate_to_datetime("Wed, 21 Oct 2025 07:28:00 GMT").timestamp()


@pytest.mark.parametrize(("value", "seconds"), [("2", 2.0), ("1.5", 1.5), (" 30 ", 30.0), ("0", 0.0)])
def test_retry_after_in_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_negative_seconds_means_now():
    assert parse_retry_after("-4") == 0.0


def test_retry_after_http_date_is_measured_from_now():
    assert parse_retry_after("Wed, 21 Oct 2025 07:28:30 GMT", now=NOW) == 30.0


def test_retry_after_http_date_in_the_past_means_now():
    assert parse_retry_after("Wed, 21 Oct 2025 07:27:00 GMT", now=NOW) == 0.0


def test_retry_after_http_date_defaults_to_the_wall_clock():
    soon = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=100), usegmt=True)
    assert 95.0 <= parse_retry_after(soon) <= 101.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Wed, 99 Foo 2025", "12 monkeys"])
def test_retry_after_garbage_is_none(value):
    assert parse_retry_after(value) is None


def test_ratelimit_reset_epoch_milliseconds():
    headers = {"X-RateLimit-Reset": str(int((NOW + 12.5) * 1000))}
    assert parse_ratelimit_reset(headers, now=NOW) == pytest.approx(12.5)


def test_ratelimit_reset_epoch_seconds():
    assert parse_ratelimit_reset({"X-RateLimit-Reset": str(int(NOW) + 20)}, now=int(NOW)) == 20.0


def test_ratelimit_reset_small_number_is_seconds_from_now():
    assert parse_ratelimit_reset({"x-ratelimit-reset": "7"}, now=NOW) == 7.0


def test_ratelimit_reset_in_the_past_means_now():
    assert parse_ratelimit_reset({"X-RateLimit-Reset": str(int(NOW - 5) * 1000)}, now=NOW) == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25), ("1h2m3.5s", 3723.5), ("0.5s", 0.5), ("2", 2.0)],
)
def test_ratelimit_reset_requests_duration(value, seconds):
    assert parse_ratelimit_reset({"x-ratelimit-reset-requests": value}) == pytest.approx(seconds)


def test_ratelimit_header_names_are_case_insensitive():
    assert parse_ratelimit_reset({"X-RATELIMIT-RESET-REQUESTS": "3s"}) == 3.0


def test_ratelimit_reset_prefers_tokens_when_tokens_ran_out():
    headers = {
        "x-ratelimit-remaining-requests": "12",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "20s",
    }
    assert parse_ratelimit_reset(headers) == 20.0
    headers["x-ratelimit-remaining-tokens"] = "5000"
    assert parse_ratelimit_reset(headers) == 1.0


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "application/json"}, {"x-ratelimit-reset-requests": "soon"}, {"X-RateLimit-Reset": "x"}],
)
def test_ratelimit_reset_without_a_usable_header_is_none(headers):
    assert parse_ratelimit_reset(headers) is None
