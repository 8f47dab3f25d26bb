"""Chaos soak: 2,000 compare() rows through three misbehaving deployments of one model.

Three fault servers run in subprocesses (so the Lab's event loop owns this process)
and answer at random, with fixed seeds: 15% 429 (half with Retry-After), 10% 5xx,
3% hangs longer than the Lab's timeout, 2% connection resets, 1% malformed JSON and
2% cut streams (a non-stream request treats a cut like a reset).

The fault server's Retry-After is a per-server setting, so the 429s are split by
server: f0 answers 22.5% 429 *with* Retry-After, f1 22.5% 429 *without* it, f2 no
429 at all; with traffic spread over three deployments that is 15% of the requests,
half of them with Retry-After (the realised split is printed and checked).

Time constants are scaled down 60x together: the rate window (60 s -> 1 s) and the
circuit breaker cool-down (30 s -> 0.5 s), so a minute of provider behaviour takes
a second.  RPM is checked on the *server's* receipt times, every window start.
The Lab's ``timeout_s`` is 2 s (hangs last 5 s): small enough to keep the run short,
large enough that a busy event loop on a loaded machine does not time out answers
that did arrive (which would resend a success and blur what this test measures).
It bounds a whole non-streamed attempt, so it needs more room than a per-read timeout did.
"""

from __future__ import annotations

import gc
import time
from collections import Counter

import psutil
import pytest

from .conftest import busiest_window, lab_toml, spawned

pytestmark = pytest.mark.slow

ROWS = 2000
RPM = 60
WINDOW_S = 1.0
TIMEOUT_S = 2.0
DEADLINE_S = 150.0
MAX_RSS_GROWTH_MB = 100.0
COMMON = {"server_error": 0.10, "hang": 0.03, "reset": 0.02, "malformed": 0.01, "cut_stream": 0.02}
SERVERS = (
    {"mix": {"rate_limit": 0.225, **COMMON}, "seed": 101, "retry_after": 0.25, "hang_s": 5.0},
    {"mix": {"rate_limit": 0.225, **COMMON}, "seed": 102, "hang_s": 5.0},
    {"mix": dict(COMMON), "seed": 103, "hang_s": 5.0},
)
KNOWN_ERRORS = {
    "rate_limit",
    "server_error",
    "timeout",
    "connection",
    "malformed_response",
    "stream_interrupted",
    "circuit_open",
}


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1e6


@pytest.mark.timeout(420)
def test_two_thousand_rows_survive_random_faults(make_lab) -> None:
    """Every row comes back once and in order, >= 99.5% succeed, failures are typed, no success is resent,
    RPM holds on every server in every window, the run meets its deadline and memory stays flat."""
    with spawned(*SERVERS) as servers:
        lab = make_lab(
            lab_toml(
                servers,
                rpm=RPM,
                lab={
                    "timeout_s": TIMEOUT_S,
                    "rate_window_s": WINDOW_S,
                    "breaker_cooldown_s": 0.5,
                    "max_concurrency": 48,
                },
            )
        )
        lab.compare([f"warm-up {i}" for i in range(30)], "m", progress=False)  # imports, pools, first cache files
        for server in servers:
            server.reset()  # back to the seeded mix, empty log
        prompts = [f"soak prompt {i}" for i in range(ROWS)]
        rss_before = rss_mb()
        started = time.monotonic()
        frame = lab.compare(prompts, "m", temperature=0, progress=False)
        duration = time.monotonic() - started
        growth = rss_mb() - rss_before
        logs = [server.log for server in servers]

    ok = frame["error_type"].isna()
    outcomes = Counter(e["outcome"] for log in logs for e in log)
    per_server = [Counter(e["outcome"] for e in log) for log in logs]
    successes = Counter(e["prompt"] for log in logs for e in log if e["outcome"] == "ok")
    busiest = [busiest_window((e["t"] for e in log), WINDOW_S) for log in logs]
    errors = Counter(frame.loc[~ok, "error_type"])
    print(
        f"\nchaos soak: {ROWS} rows in {duration:.1f}s, success {ok.mean():.2%}, failures {dict(errors)}, "
        f"RSS growth {growth:.1f} MB, busiest {WINDOW_S:g}s window per server {busiest} (rpm {RPM}), "
        f"{sum(outcomes.values())} requests received: {dict(outcomes)}; "
        f"429 with Retry-After {per_server[0]['rate_limit']}, without {per_server[1]['rate_limit']}; "
        f"attempts per row max {frame['attempts'].max()}"
    )

    problems = []
    if len(frame) != ROWS or list(frame["prompt"]) != prompts or list(frame["prompt_id"]) != list(range(ROWS)):
        problems.append("rows are not the input rows, once each, in input order")
    answered = frame.loc[ok]
    if not (answered["response"] == "echo: " + answered["prompt"]).all():
        problems.append("a successful row does not carry its own prompt's answer")
    if not set(errors) <= KNOWN_ERRORS or frame.loc[~ok, "error"].isna().any():
        problems.append(f"untyped failures: {set(errors) - KNOWN_ERRORS}")
    if ok.mean() < 0.995:
        problems.append(f"success rate {ok.mean():.2%} < 99.5%")
    resent = {p: n for p, n in successes.items() if n > 1}
    if resent:
        problems.append(f"{len(resent)} prompts answered ok more than once, e.g. {list(resent.items())[:3]}")
    if set(answered["prompt"]) - set(successes):
        problems.append("a successful row has no ok answer in any server log")
    if max(busiest) > RPM:
        problems.append(f"RPM exceeded on the server side: busiest {WINDOW_S:g}s windows {busiest} > {RPM}")
    if duration > DEADLINE_S:
        problems.append(f"took {duration:.1f}s > {DEADLINE_S}s")
    if growth >= MAX_RSS_GROWTH_MB:
        problems.append(f"RSS grew by {growth:.1f} MB")
    # the faults really happened, both kinds of 429 included
    for outcome in ("rate_limit", "server_error", "hang", "reset", "malformed", "cut_stream"):
        if outcomes[outcome] < 10:
            problems.append(f"only {outcomes[outcome]} {outcome} faults were injected")
    if min(per_server[0]["rate_limit"], per_server[1]["rate_limit"]) < 50 or per_server[2]["rate_limit"]:
        problems.append("the 429s were not split between Retry-After and no Retry-After as intended")
    assert not problems, "; ".join(problems)


FLAKY_ROWS = 400
FLAKY_DEADLINE_S = 60.0


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("fault_rate", "floor"), [(0.25, 0.995), (0.35, 0.99)])
def test_flaky_deployments_degrade_smoothly_instead_of_tripping_every_breaker(make_lab, fault_rate, floor) -> None:
    """Issue 12 (2): three deployments each failing *fault_rate* of calls at random (5xx), default retries and
    breakers.  The breakers' 50%-over-20-calls rule trips now and then on every one of them; the router still
    sends (an open circuit is probed once per request when nothing healthy is free), so success degrades
    smoothly instead of falling off a cliff of instant ``circuit_open`` rows."""
    settings = [{"mix": {"server_error": fault_rate}, "seed": 350 + i} for i in range(3)]
    with spawned(*settings) as servers:
        lab = make_lab(lab_toml(servers, lab={"runlog": "off"}) + '\n[cache]\nmode = "off"\n')
        started = time.monotonic()
        frame = lab.compare([f"flaky {i}" for i in range(FLAKY_ROWS)], "m", progress=False)
        duration = time.monotonic() - started
        received = sum(server.count() for server in servers)
    ok = frame["error_type"].isna()
    print(
        f"\n{fault_rate:.0%} random 5xx x 3 deployments: {ok.mean():.2%} of {FLAKY_ROWS} rows ok in {duration:.1f}s, "
        f"{received} requests, failures {dict(Counter(frame.loc[~ok, 'error_type']))}"
    )
    assert len(frame) == FLAKY_ROWS
    assert ok.mean() >= floor
    assert "circuit_open" not in set(frame["error_type"].dropna())
    assert duration < FLAKY_DEADLINE_S
