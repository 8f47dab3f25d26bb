"""Faults: which outcome each request meets, the settings that script it, and the log; no sockets needed."""

from __future__ import annotations

import email.utils

import pytest

from opencode_lab.testing.faults import GENERIC, Faults, UnknownOutcome, count
from opencode_lab.testing.transport import Request

OUTCOMES = GENERIC | {"rate_limit", "server_error", "unavailable"}


def faults(**settings: object) -> Faults:
    return Faults(OUTCOMES, settings)


def request(received: float = 0.0) -> Request:
    return Request("POST", "/v1/x?y=1", {"x-request-id": "r-1"}, b"{}", received, 1e9)


def test_a_directive_forces_its_outcome_every_time() -> None:
    f = faults()
    assert [f.choose("hi [[fault:server_error]]") for _ in range(3)] == ["server_error"] * 3


def test_a_counted_directive_plays_k_times_then_ok() -> None:
    f = faults()
    assert [f.choose("retry me [[fault:unavailable*2]]") for _ in range(4)] == ["unavailable"] * 2 + ["ok"] * 2


def test_a_counted_directive_counts_each_prompt_separately() -> None:
    f = faults()
    assert [f.choose(p) for p in ("a [[fault:server_error*1]]", "b [[fault:server_error*1]]")] == ["server_error"] * 2
    assert f.choose("a [[fault:server_error*1]]") == "ok"


def test_a_directive_wins_over_the_queue() -> None:
    f = faults(queue=["rate_limit"])
    assert [f.choose("x [[fault:ok]]"), f.choose("x")] == ["ok", "rate_limit"]


def test_the_queue_plays_in_order_then_ok() -> None:
    f = faults(queue=["rate_limit", "server_error", "ok", "hang"])
    assert [f.choose("x") for _ in range(5)] == ["rate_limit", "server_error", "ok", "hang", "ok"]


def test_a_seeded_mix_is_reproducible_and_leaves_the_remainder_ok() -> None:
    f, g = (faults(mix={"rate_limit": 0.3, "server_error": 0.3}, seed=123) for _ in range(2))
    draws = [[each.choose("x") for _ in range(40)] for each in (f, g)]
    assert draws[0] == draws[1]
    assert set(draws[0]) == {"ok", "rate_limit", "server_error"}


def test_an_unknown_directive_is_refused_by_name() -> None:
    with pytest.raises(UnknownOutcome, match="'explode'"):
        faults().choose("[[fault:explode]]")


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"latency": 1}, TypeError, "unknown fault-server settings"),
        ({"queue": ["explode"]}, ValueError, "unknown outcomes"),
        ({"mix": {"explode": 0.1}}, ValueError, "unknown outcomes"),
        ({"outcome_latency_s": {"explode": 1}}, ValueError, "unknown outcomes"),
        ({"raw": {"stauts": 200}}, TypeError, "unknown raw response keys"),
        ({"mix": {"rate_limit": 0.6, "server_error": 0.6}}, ValueError, "sum to more than 1"),
    ],
)
def test_settings_are_checked_before_anything_changes(settings: dict, error: type, message: str) -> None:
    f = faults(queue=["rate_limit"])
    with pytest.raises(error, match=message):
        f.configure(**settings)
    with pytest.raises(error, match=message):
        faults(**settings)
    assert f.choose("x") == "rate_limit"


def test_reset_returns_to_the_constructors_settings_and_clears_the_record() -> None:
    f = faults(queue=["rate_limit"], models=["a"])
    f.configure(queue=["server_error"], models=["b"])
    f.record(request(), auth=False)
    f.keep({"model": "m"})
    f.reset()
    assert (f.log, f.requests, f.settings["models"], f.choose("x")) == ([], [], ["a"], "rate_limit")


def test_retry_after_is_absent_unless_set_then_seconds_or_an_http_date() -> None:
    f = faults()
    assert f.retry_after() is None
    f.configure(retry_after=2.5)
    retry = f.retry_after()
    assert retry is not None and (retry.seconds, retry.header) == (2.5, "2.5")
    f.configure(retry_after=30, retry_after_http_date=True)
    retry = f.retry_after()
    assert retry is not None and email.utils.parsedate_to_datetime(retry.header).tzinfo is not None


def test_a_log_entry_starts_with_what_the_request_says_and_no_credential() -> None:
    entry = faults().record(request(received=5.0), auth=True)
    assert entry == {
        "t": 5.0,
        "wall": 1e9,
        "path": "/v1/x",
        "model": None,
        "prompt": None,
        "sampling": None,
        "stream": False,
        "outcome": None,
        "status": None,
        "request_id": "r-1",
        "auth": True,
    }


def test_count_filters_by_outcome_and_time() -> None:
    f = faults()
    for t, outcome in enumerate(["rate_limit", "ok", "rate_limit"]):
        f.record(request(received=float(t)), auth=False)["outcome"] = outcome
    assert (count(f.log), count(f.log, "rate_limit"), count(f.log, "rate_limit", since=1.0)) == (3, 2, 1)
