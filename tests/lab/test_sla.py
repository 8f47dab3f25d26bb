"""SLA figures over a run log with known outages: availability, error budget, burn rates and incidents
checked against values computed by hand (and the intervals against statsmodels and scipy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import quantile_test
from statsmodels.stats.proportion import proportion_confint

from opencode_lab import InvalidRequestError
from opencode_lab.core.objectives import Objective, Objectives
from opencode_lab.lab.sla import incidents, sla
from opencode_lab.session.runlog import RunLog

NOW = 1_800_000_000.0
MINUTE = 60.0
#: a/x: one attempt a minute for three days; failing for minutes 1000..1019 back (recovered at 999) and
#: for the last ten minutes (0..9, still failing)
A_FAILING = {*range(0, 10), *range(1000, 1020)}
#: b/y: one attempt a minute for 100 minutes, two failures in a row (a blip, no incident); latency 0.01 x (j + 1)
B_FAILING = {50, 51}
OBJECTIVES = Objectives(Objective(availability=0.99), {"b": Objective(availability=0.9, latency_p95_s=0.5)})


def _record(deployment: str, minutes_ago: int, failed: bool, latency_s: float, **extra: object) -> dict:
    return {
        "run_id": "s-sla", "request_id": f"{deployment}-{minutes_ago}", "timestamp": NOW - minutes_ago * MINUTE,
        "model": deployment, "served_by": deployment, "provider": deployment.split("/")[0], "attempt": 1,
        "status": "error" if failed else "ok", "error_type": "server_error" if failed else None,
        "latency_s": latency_s, "cached": False, **extra,
    }  # fmt: skip


@pytest.fixture
def runlog(tmp_path):
    log = RunLog(tmp_path / "runs.sqlite")
    records = [_record("a/x", k, k in A_FAILING, 0.2) for k in range(4320)]
    records += [_record("b/y", j, j in B_FAILING, 0.01 * (j + 1)) for j in range(100)]
    records.append({**_record("a/x", 3, True, 0.0), "request_id": "hit", "cached": True})  # an old hit record
    records.append(_record("a/x", -5, True, 0.2))  # after NOW: not yet
    log.append_attempts(records)
    yield log
    log.close()


@pytest.fixture
def report(runlog):
    return sla(runlog, OBJECTIVES, "3d", now=NOW)


def test_availability_counts_real_attempts_in_the_span(report):
    a = report.loc["a/x"]
    assert (a.attempts, a.ok, a.failed) == (4320, 4290, 30)
    assert a.availability == pytest.approx(4290 / 4320)
    low, high = proportion_confint(4290, 4320, alpha=0.05, method="wilson")
    assert (a.availability_ci_low, a.availability_ci_high) == pytest.approx((low, high))


def test_objectives_come_from_the_most_specific_scope(report):
    assert report.loc["a/x", "availability_objective"] == 0.99
    assert pd.isna(report.loc["a/x", "latency_p95_objective_s"]) and pd.isna(report.loc["a/x", "latency_met"])
    assert (report.loc["b/y", "availability_objective"], report.loc["b/y", "latency_p95_objective_s"]) == (0.9, 0.5)


def test_the_error_budget_is_the_share_of_allowed_failures_left(report):
    # a/x: 1 % of 4320 attempts may fail (43.2), 30 did; b/y: 10 % of 100 (10), 2 did
    assert report.loc["a/x", "error_budget_remaining"] == pytest.approx(1 - 30 / 43.2)
    assert report.loc["b/y", "error_budget_remaining"] == pytest.approx(0.8)
    assert report.loc["a/x", "availability_met"] and report.loc["b/y", "availability_met"]


def test_burn_rates_over_each_window_by_hand(report):
    a = report.loc["a/x"]
    # window (NOW - w, NOW]: attempts at minutes 0..w-1 back; failures among them over the allowed 1 %
    expected = {"5m": (5, 5), "30m": (10, 30), "1h": (10, 60), "2h": (10, 120), "6h": (10, 360),
                "1d": (30, 1440), "3d": (30, 4320)}  # fmt: skip
    for window, (failed, attempts) in expected.items():
        assert a[f"burn_{window}"] == pytest.approx(failed / attempts / 0.01), window


def test_a_fast_burn_in_the_long_and_the_short_window_pages(report):
    # 1h burns 16.7 and 5m 100, both above 14.4
    assert report.loc["a/x", "alert"] == "page"
    assert report.loc["b/y", "alert"] == "none"


def test_a_window_without_attempts_has_no_burn_rate(runlog):
    later = sla(runlog, OBJECTIVES, "3d", now=NOW + 40 * MINUTE)  # nothing asked in the last 30 minutes
    assert pd.isna(later.loc["a/x", "burn_5m"]) and pd.isna(later.loc["a/x", "burn_30m"])
    # minutes 0..19 back of NOW (10 failed) and the failure 5 minutes after it
    assert later.loc["a/x", "burn_1h"] == pytest.approx(11 / 21 / 0.01)
    assert later.loc["a/x", "alert"] == "none"  # the short window no longer confirms the burn


def test_latency_p95_and_its_interval_match_scipy(report):
    ok = np.array([0.01 * (j + 1) for j in range(100) if j not in B_FAILING])
    b = report.loc["b/y"]
    assert b.latency_p95_s == pytest.approx(np.quantile(ok, 0.95))
    ci = quantile_test(ok, q=np.quantile(ok, 0.95), p=0.95).confidence_interval(0.95)
    assert (b.latency_p95_ci_low, b.latency_p95_ci_high) == pytest.approx((ci.low, ci.high))
    assert not b.latency_met  # 0.95 s against 0.5 s


def test_incidents_are_runs_of_failures_until_the_next_success(runlog):
    found = incidents(runlog, "3d", now=NOW)
    assert found.served_by.tolist() == ["a/x", "a/x"]  # b/y's two failures in a row are a blip
    ended, ongoing = found.iloc[0], found.iloc[1]
    assert ended.start == pd.Timestamp(NOW - 1019 * MINUTE, unit="s", tz="UTC")
    assert ended.end == pd.Timestamp(NOW - 999 * MINUTE, unit="s", tz="UTC")
    assert (ended.duration_s, ended.failures, ended.errors, ended.ongoing) == (1200.0, 20, "server_error 20", False)
    assert pd.isna(ongoing.end) and ongoing.ongoing and (ongoing.duration_s, ongoing.failures) == (540.0, 10)


def test_the_report_sums_incidents_and_downtime(report):
    assert (report.loc["a/x", "incidents"], report.loc["a/x", "downtime_s"]) == (2, 1740.0)
    assert (report.loc["b/y", "incidents"], report.loc["b/y", "downtime_s"]) == (0, 0.0)


def test_a_deployment_without_objectives_has_figures_but_no_budget(runlog):
    bare = sla(runlog, Objectives(), "3d", now=NOW)
    assert bare.loc["a/x", "attempts"] == 4320
    assert bare[["error_budget_remaining", "burn_1h"]].isna().all().all() and bare.alert.isna().all()


def test_an_empty_span_is_an_empty_frame(runlog):
    assert sla(runlog, OBJECTIVES, "1h", now=NOW - 30 * 86400).empty


def test_min_failures_below_one_is_refused(runlog):
    with pytest.raises(InvalidRequestError, match="min_failures"):
        incidents(runlog, min_failures=0)
