"""CircuitBreaker state machine and DeploymentHealth rolling figures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opencode_lab.routing.health import CircuitBreaker, DeploymentHealth, HealthSnapshot


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def breaker(clock, changes) -> CircuitBreaker:
    return CircuitBreaker(
        consecutive_failures=3,
        failure_rate=0.5,
        window=10,
        min_calls=6,
        cooldown_s=30.0,
        clock=clock,
        on_change=lambda old, new: changes.append((old, new)),
    )


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.consecutive_failures):
        breaker.record_failure()
    assert breaker.state == "open"


def test_a_new_breaker_is_closed_and_allows_calls(breaker):
    assert breaker.state == "closed"
    assert breaker.open_until is None
    assert breaker.allow()


def test_opens_after_n_consecutive_failures(breaker, clock, changes):
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.open_until == clock.now() + 30.0
    assert not breaker.allow()
    assert changes == [("closed", "open")]


def test_a_success_resets_the_consecutive_count(clock):
    breaker = CircuitBreaker(consecutive_failures=3, failure_rate=1.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"


def test_opens_when_the_failure_rate_reaches_the_threshold(breaker):
    for _ in range(2):
        breaker.record_success()
        breaker.record_failure()
    assert breaker.state == "closed"  # 2 of 4 failed, but fewer than min_calls=6 calls
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "open"  # 3 of 6 failed: rate 0.5 reached, never 3 in a row


def test_the_failure_rate_only_counts_the_last_window_calls(clock):
    breaker = CircuitBreaker(consecutive_failures=99, failure_rate=0.5, window=4, min_calls=4, clock=clock)
    for outcome in "FFSSS":  # the two failures slide out of the 4-call window
        breaker.record_failure() if outcome == "F" else breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"  # last four: S S S F
    breaker.record_failure()
    assert breaker.state == "open"  # last four: S S F F


def test_state_stays_open_after_the_cooldown_until_allow_is_called(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    assert breaker.state == "open"
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert breaker.open_until is None


def test_open_refuses_calls_until_the_cooldown_passes(breaker, clock):
    trip(breaker)
    clock.advance(29.9)
    assert not breaker.allow()
    assert breaker.state == "open"


def test_half_open_admits_exactly_one_probe(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    assert [breaker.allow() for _ in range(5)] == [True, False, False, False, False]


def test_probe_success_closes_the_breaker(breaker, clock, changes):
    trip(breaker)
    clock.advance(30.0)
    breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_closing_starts_a_fresh_window(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_probe_failure_reopens_and_restarts_the_cooldown(breaker, clock, changes):
    trip(breaker)
    clock.advance(30.0)
    breaker.allow()
    clock.advance(5.0)
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.open_until == 65.0
    clock.advance(29.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()
    assert changes[-2:] == [("half_open", "open"), ("open", "half_open")]


def test_outcomes_recorded_while_open_are_ignored(breaker, clock):
    trip(breaker)
    breaker.record_success()  # a call sent before the breaker opened
    assert breaker.state == "open"
    breaker.record_failure()
    assert breaker.open_until == 30.0


def test_a_lost_probe_is_written_off_after_another_cooldown(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    clock.advance(29.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


@pytest.mark.parametrize(
    "kwargs",
    [{"consecutive_failures": 0}, {"failure_rate": 0.0}, {"failure_rate": 1.5}, {"min_calls": 30}, {"cooldown_s": -1}],
)
def test_breaker_rejects_impossible_settings(kwargs):
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)


def test_health_before_any_call_knows_nothing(clock):
    health = DeploymentHealth(clock=clock)
    assert health.success_rate is None
    assert health.latency_ewma_s is None
    assert health.latency_p50_s is None
    assert health.last_error is None
    assert (health.calls, health.failures) == (0, 0)


def test_success_rate_covers_the_last_window_calls(clock):
    health = DeploymentHealth(window=4, clock=clock)
    health.record_success(1.0)
    health.record_failure("server_error")
    health.record_success(1.0)
    health.record_success(1.0)
    assert health.success_rate == 0.75
    health.record_success(1.0)
    health.record_success(1.0)  # the failure has slid out
    assert health.success_rate == 1.0
    assert (health.calls, health.failures) == (6, 1)


def test_latency_p50_is_the_median_of_recent_successes(clock):
    health = DeploymentHealth(window=5, clock=clock)
    for latency in (4.0, 1.0, 3.0, 2.0):
        health.record_success(latency)
    health.record_failure("timeout")
    assert health.latency_p50_s == 2.5  # (2 + 3) / 2; the failure carries no latency
    health.record_success(10.0)  # 4.0 slides out: 1, 3, 2, 10
    assert health.latency_p50_s == 2.5


def test_latency_ewma_weights_recent_successes_by_alpha(clock):
    health = DeploymentHealth(ewma_alpha=0.5, clock=clock)
    health.record_success(9.0)  # the first success pays for connection set-up: not a latency figure
    assert health.latency_ewma_s is None
    health.record_success(1.0)
    assert health.latency_ewma_s == 1.0
    health.record_success(2.0)
    assert health.latency_ewma_s == 1.5
    health.record_failure("timeout")
    health.record_success(4.0)
    assert health.latency_ewma_s == 2.75


def test_last_error_joins_type_and_message(clock):
    health = DeploymentHealth(clock=clock)
    health.record_failure("timeout")
    assert health.last_error == "timeout"
    health.record_failure("server_error", "HTTP 503")
    assert health.last_error == "server_error: HTTP 503"


def test_failures_feed_the_breaker(clock):
    health = DeploymentHealth(breaker=CircuitBreaker(consecutive_failures=2, clock=clock))
    health.record_failure("server_error")
    health.record_failure("server_error")
    assert health.breaker.state == "open"


def test_non_tripping_failures_count_in_the_rate_but_spare_the_breaker(clock):
    health = DeploymentHealth(breaker=CircuitBreaker(consecutive_failures=2, clock=clock))
    for _ in range(5):
        health.record_failure("rate_limit", trip=False)
    assert health.breaker.state == "closed"
    assert health.success_rate == 0.0


def test_a_non_tripping_probe_failure_lets_another_probe_through(clock):
    health = DeploymentHealth(breaker=CircuitBreaker(consecutive_failures=1, cooldown_s=10.0, clock=clock))
    health.record_failure("server_error")
    clock.advance(10.0)
    assert health.breaker.allow()
    health.record_failure("rate_limit", trip=False)  # says nothing about whether the deployment recovered
    assert health.breaker.state == "half_open"
    assert health.breaker.allow()


def test_a_snapshot_holds_the_figures_at_one_moment(clock):
    health = DeploymentHealth(breaker=CircuitBreaker(consecutive_failures=1, cooldown_s=10.0, clock=clock))
    health.record_success(4.0)
    health.record_success(2.0)
    health.record_failure("server_error", "boom")
    assert health.snapshot("p/m", now=4.0, paused_for_s=0.0, in_flight=1) == HealthSnapshot(
        deployment="p/m",
        state="open",
        success_rate=2 / 3,
        latency_p50_s=3.0,
        latency_ewma_s=2.0,
        calls=3,
        failures=1,
        last_error="server_error: boom",
        open_for_s=6.0,
        paused_for_s=0.0,
        in_flight=1,
    )


def _snapshot(**changes: object) -> HealthSnapshot:
    base = HealthSnapshot("p/m", "closed", None, None, None, 0, 0, None, 0.0, 0.0, 0)
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({}, "ready"),
        ({"success_rate": 0.9, "calls": 10}, "healthy"),
        ({"success_rate": 0.4, "calls": 10}, "failing (40% ok)"),
        ({"paused_for_s": 11.2}, "rate limited, paused for 12 s"),
        ({"state": "open", "open_for_s": 23.5}, "circuit open, next try in 24 s"),
        ({"state": "open", "open_for_s": 0.0}, "circuit open, next call probes it"),
        ({"state": "half_open"}, "circuit half-open, one probe in flight"),
    ],
)
def test_one_phrase_words_every_state(changes, words):
    assert _snapshot(**changes).phrase() == words


def test_only_an_open_circuit_or_a_pause_is_a_caution():
    assert _snapshot(success_rate=0.1).caution() is None
    assert _snapshot(paused_for_s=3.0).caution() == "rate limited, paused for 3 s"


def test_blocked_reads_the_state_without_admitting_a_probe(breaker, clock):
    assert not breaker.blocked()
    trip(breaker)
    assert breaker.blocked()
    clock.advance(30.0)
    assert not breaker.blocked()
    assert breaker.state == "open"  # reading did not start the probe
    assert breaker.allow()
    assert breaker.blocked()  # half-open, its probe is out


def test_a_forced_call_on_an_open_breaker_is_its_half_open_probe(breaker, clock, changes):
    trip(breaker)
    assert not breaker.allow()
    assert breaker.allow(force=True)
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.state == "closed"
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_forced_probe_reopens_and_restarts_the_cooldown(breaker, clock):
    trip(breaker)
    clock.advance(10.0)
    assert breaker.allow(force=True)
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.open_until == 40.0


def test_force_admits_more_calls_while_a_probe_is_out(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    assert not breaker.allow()
    assert breaker.allow(force=True)
    assert breaker.state == "half_open"


def test_reset_closes_the_breaker_and_forgets_its_window(breaker, clock):
    breaker.record_failure()
    breaker.record_failure()
    trip(breaker)
    breaker.reset()
    assert breaker.state == "closed" and breaker.open_until is None
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"  # the streak started again from zero
