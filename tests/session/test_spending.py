"""The run log as the spending ledger (`RunLog.spent_since`) and as a thing a viewer polls (`RunLog.version`)."""

from __future__ import annotations

import math

import pytest

from opencode_lab.session.runlog import RunLog


def _attempt(at: float, cost: float, *, cached: bool = False, n: int = 0) -> dict:
    return {"run_id": "s", "request_id": f"q{at}-{n}", "timestamp": at, "served_by": "a/x", "provider": "a",
            "status": "ok", "cost_usd": cost, "cached": cached}  # fmt: skip


@pytest.fixture
def runlog(tmp_path):
    log = RunLog(tmp_path / "runs.sqlite")
    yield log
    log.close()


def test_spent_since_sums_what_was_paid_from_then_on(runlog):
    runlog.append_attempts([_attempt(100.0, 0.5), _attempt(200.0, 0.25), _attempt(300.0, 0.125)])
    assert runlog.spent_since(200.0) == 0.375
    assert runlog.spent_since(301.0) == 0.0


def test_an_unknown_cost_and_an_earlier_versions_cache_hit_record_count_nothing(runlog):
    runlog.append_attempts([_attempt(100.0, math.nan), _attempt(100.0, 0.5, cached=True, n=1), _attempt(100.0, 1.0)])
    assert runlog.spent_since(0.0) == 1.0


def test_another_connection_sees_the_same_ledger(runlog, tmp_path):
    with RunLog(tmp_path / "runs.sqlite") as other:
        other.append_attempts([_attempt(100.0, 2.0)])
    assert runlog.spent_since(0.0) == 2.0


def test_the_version_changes_when_a_row_or_an_attempt_is_written(runlog):
    before = runlog.version()
    assert runlog.version() == before
    runlog.append_attempts([_attempt(100.0, 0.0)])
    after_attempt = runlog.version()
    assert after_attempt != before
    run = runlog.start_run("r")
    runlog.save_results(run, [{"prompt_id": 0, "model": "m", "sample": 0, "response": "x"}])
    assert runlog.version() != after_attempt
