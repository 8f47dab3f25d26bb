"""runlog: the SQLite run log survives restarts, kills and concurrent writers without losing rows."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from opencode_lab.core import secrets
from opencode_lab.core.errors import ConfigError, InvalidRequestError
from opencode_lab.core.schema import results_frame
from opencode_lab.session.runlog import FORMAT_VERSION, Claim, RunLog

ROOT = Path(__file__).resolve().parents[2]


def _row(prompt_id: int, model: str, sample: int = 0, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "prompt_id": prompt_id, "prompt": f"prompt {prompt_id}", "model": model, "served_by": model,
        "sample": sample, "response": f"answer {prompt_id}", "finish_reason": "stop", "latency_s": 0.5,
        "ttft_s": 0.1, "input_tokens": 7, "output_tokens": 11, "cost_usd": 0.001, "cost_source": "catalog",
        "cost_saved_usd": 0.0, "cached": False, "attempts": 1, "error_type": None, "error": None,
    }  # fmt: skip
    row.update(values)
    return row


def _failed(prompt_id: int, model: str, sample: int = 0, error_type: str = "timeout") -> dict[str, object]:
    return _row(
        prompt_id, model, sample, response=None, finish_reason=None, error_type=error_type, error="no answer",
        cost_usd=math.nan, cost_source="unknown", input_tokens=None, output_tokens=None, attempts=3,
    )  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> Iterator[RunLog]:
    runlog = RunLog(tmp_path / "sub" / "runs.sqlite")
    yield runlog
    runlog.close()


def test_results_round_trip_with_extra_columns(log: RunLog) -> None:
    run = log.start_run("exp")
    rows = [
        _row(1, "m/b", score=0.25, tag="x"),
        _row(0, "m/b", cost_usd=math.nan, cost_source="unknown"),
        _row(0, "m/a", sample=1, cached=True, cost_usd=0.0, cost_saved_usd=0.002, score=1.0),
        _row(0, "m/a", sample=0, tag="y"),
        _failed(1, "m/a"),
    ]
    log.save_results(run, rows)
    # by prompt_id, then models in the order first seen (m/b before m/a), then sample
    expected = results_frame([{**rows[i], "run_id": run} for i in (1, 3, 2, 0, 4)])
    pd.testing.assert_frame_equal(log.load_run("exp"), expected, check_like=False)
    pd.testing.assert_frame_equal(log.load_run(run), expected)


def test_nan_is_stored_as_null(log: RunLog) -> None:
    run = log.start_run()
    log.save_results(run, [_row(0, "m", cost_usd=math.nan)])
    with closing(sqlite3.connect(log.path)) as con:
        assert con.execute("SELECT cost_usd FROM results").fetchone() == (None,)
    assert math.isnan(log.load_run(run).loc[0, "cost_usd"])


def test_a_log_from_an_older_schema_gains_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with RunLog(path) as log:
        run = log.start_run("old")
        log.save_results(run, [_row(0, "m")])
    with closing(sqlite3.connect(path)) as con:
        con.execute("ALTER TABLE results DROP COLUMN ttft_s")  # as if written before ttft_s existed
        con.commit()
    with RunLog(path) as log:
        log.save_results(run, [_row(1, "m", ttft_s=0.3)])
        assert log.load_run("old")["ttft_s"].tolist() == pytest.approx([math.nan, 0.3], nan_ok=True)


def _format_1_log(path: Path) -> None:
    """A run log as format 1 wrote it: the same tables, ``user_version`` 1, none of format 2's indexes."""
    with RunLog(path) as log:
        log.save_results(log.start_run("old"), [_row(0, "m")])
    with closing(sqlite3.connect(path)) as con:
        con.execute("DROP INDEX results_updated")
        con.execute("DROP INDEX attempts_time")
        con.execute("DROP TABLE labels")
        con.execute("PRAGMA user_version = 1")
        con.commit()


def _indexes(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as con:
        return {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_new_log_is_written_in_the_current_format(tmp_path: Path) -> None:
    with RunLog(tmp_path / "runs.sqlite") as log, closing(sqlite3.connect(log.path)) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION == 4
    assert {"results_updated", "attempts_time"} <= _indexes(tmp_path / "runs.sqlite")


def test_an_older_format_is_migrated_on_open_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    _format_1_log(path)
    with RunLog(path) as log:
        assert log.load_run("old")["prompt_id"].tolist() == [0]
    with closing(sqlite3.connect(path)) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
    assert {"results_updated", "attempts_time", "labels_run"} <= _indexes(path)


def test_a_newer_format_is_refused_untouched_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunLog(path) as log:
        log.save_results(log.start_run("future"), [_row(0, "m")])
    with closing(sqlite3.connect(path)) as con:
        con.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
        con.commit()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=rf"format {FORMAT_VERSION + 1}, written by a newer opencode_lab.*upgrade"):
        RunLog(path)
    assert path.read_bytes() == before


def test_named_run_resumes_its_run_id(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunLog(path) as first:
        run = first.start_run("sweep", meta={"models": ["a", "b"]})
        assert first.start_run("sweep") == run
        assert first.start_run() != first.start_run()  # unnamed runs are always new
    with RunLog(path) as again:  # a restarted kernel
        assert again.start_run("sweep") == run
        assert again.find_run("sweep") == again.find_run(run) == run
        assert again.find_run("other") is None
        assert run.startswith("r-") and len(run) == 14


def test_completed_returns_only_successes(log: RunLog) -> None:
    run = log.start_run("exp")
    log.save_results(run, [_row(0, "m/a"), _failed(0, "m/b"), _row(1, "m/a", sample=2, tag="t")])
    done = log.completed(run)
    assert set(done) == {(0, "m/a", 0), (1, "m/a", 2)}
    assert done[(1, "m/a", 2)]["tag"] == "t"
    assert done[(0, "m/a", 0)]["response"] == "answer 0"
    assert log.completed(log.start_run("empty")) == {}


def test_failure_never_overwrites_a_success(log: RunLog) -> None:
    run = log.start_run()
    log.save_results(run, [_row(0, "m", response="first")])
    log.save_results(run, [_failed(0, "m")])
    assert log.load_run(run).loc[0, "response"] == "first"
    log.save_results(run, [_failed(1, "m", error_type="timeout")])
    log.save_results(run, [_failed(1, "m", error_type="rate_limit")])  # a failure updates a failure
    assert log.load_run(run).loc[1, "error_type"] == "rate_limit"
    log.save_results(run, [_row(1, "m", response="retried")])  # and a success replaces it
    frame = log.load_run(run)
    assert frame["response"].tolist() == ["first", "retried"]
    assert frame["error_type"].isna().all()


def test_runs_summary(log: RunLog) -> None:
    a = log.start_run("a", meta={"note": "x"})
    b = log.start_run("b")
    log.save_results(a, [_row(0, "m", cost_usd=0.25), _row(1, "m", cost_usd=math.nan), _failed(2, "m")])
    runs = log.runs()
    assert list(runs.columns) == ["run_id", "name", "created_at", "rows", "ok", "failed", "cost_usd"]
    assert runs["run_id"].tolist() == [a, b]
    assert runs[["rows", "ok", "failed"]].values.tolist() == [[3, 2, 1], [0, 0, 0]]
    assert runs.loc[0, "cost_usd"] == pytest.approx(0.25)
    assert math.isnan(runs.loc[1, "cost_usd"])
    assert pd.api.types.is_datetime64_any_dtype(runs["created_at"])
    assert abs(runs.loc[0, "created_at"].timestamp() - time.time()) < 60


def test_attempts_round_trip(log: RunLog) -> None:
    run = log.start_run("exp")
    log.append_attempts(
        [
            {"run_id": run, "request_id": "q1", "timestamp": 10.0, "model": "m", "served_by": "p/m",
             "provider": "p", "attempt": 1, "status": "error", "error_type": "rate_limit", "http_status": 429,
             "latency_s": 0.2, "cached": False, "headers": {"Authorization": "Bearer x"}},
            {"run_id": run, "request_id": "q1", "timestamp": 11.0, "model": "m", "served_by": "p/m",
             "provider": "p", "attempt": 2, "status": "ok", "cost_usd": math.nan, "cached": False},
            {"run_id": "other", "request_id": "q2", "timestamp": 12.0, "status": "ok"},
        ]
    )  # fmt: skip
    mine = log.attempts("exp")
    assert mine["attempt"].tolist() == [1, 2]
    assert mine.loc[0, "http_status"] == 429 and mine.loc[0, "error_type"] == "rate_limit"
    assert math.isnan(mine.loc[1, "cost_usd"])
    assert "headers" not in mine.columns  # only the attempt columns are stored
    assert len(log.attempts()) == 3


def test_registered_secrets_never_reach_the_file(log: RunLog) -> None:
    key = "sk-or-v1-" + "f" * 24
    secrets.register(key)
    run = log.start_run()
    log.save_results(run, [_failed(0, "m") | {"error": f"401 for key {key}"}])
    for suffix in ("", "-wal"):
        stored = Path(f"{log.path}{suffix}")
        assert not stored.exists() or key.encode() not in stored.read_bytes()
    assert key not in log.load_run(run).loc[0, "error"]


def test_file_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        log = RunLog(tmp_path / "private.sqlite")
    finally:
        os.umask(old)
    log.save_results(log.start_run(), [_row(0, "m")])
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{log.path}{suffix}")
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    log.close()


def test_unknown_run_raises_a_clear_error(log: RunLog) -> None:
    log.start_run("known")
    with pytest.raises(InvalidRequestError, match=r"'missing'.*known"):
        log.load_run("missing")
    with pytest.raises(ValueError, match="start_run"):
        log.save_results("r-000000000000", [_row(0, "m")])


def _write_rows(path: str, run: str, model: str, count: int, ready: Any, go: Any) -> None:
    """Writer for the concurrency test; at module level so a spawned process can import it."""
    with RunLog(path) as log:
        if ready is not None:
            ready.set()
        go.wait(30)  # every writer starts at once
        for start in range(0, count, 10):
            log.save_results(run, [_row(i, model) for i in range(start, min(count, start + 10))])
            log.append_attempts([{"run_id": run, "request_id": f"{model}-{start}", "status": "ok"}])


@pytest.mark.slow
def test_concurrent_writers_lose_no_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    with RunLog(path) as log:
        run = log.start_run("shared")
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_write_rows, args=(path, run, "proc", 200, ready, go))
    child.start()
    try:
        assert ready.wait(60), "writer process did not start"
        threads = [threading.Thread(target=_write_rows, args=(path, run, f"t{i}", 200, None, go)) for i in range(2)]
        for thread in threads:
            thread.start()
        go.set()
        reader = RunLog(path)
        while any(t.is_alive() for t in threads):
            reader.runs()  # a reader in this thread meanwhile must neither block nor fail
            time.sleep(0.005)
        for thread in threads:
            thread.join(10)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
            child.join(5)
    assert child.exitcode == 0
    frame = reader.load_run("shared")
    assert frame.groupby("model").size().to_dict() == {"proc": 200, "t0": 200, "t1": 200}
    assert len(reader.attempts(run)) == 60
    reader.close()


def test_one_log_shared_by_threads(log: RunLog) -> None:
    run = log.start_run()

    def write(model: str) -> None:
        for i in range(50):
            log.save_results(run, [_row(i, model)])

    threads = [threading.Thread(target=write, args=(f"m{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(log.load_run(run)) == 200


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from opencode_lab.session.runlog import RunLog
    log = RunLog(sys.argv[1])
    run = log.start_run("killed")
    i = 0
    while True:
        log.save_results(run, [{"prompt_id": i, "model": "m", "sample": 0, "response": "x" * 2000}])
        log.append_attempts([{"run_id": run, "request_id": str(i), "status": "ok"}])
        i += 1
    """
)


@pytest.mark.slow
def test_readable_after_writer_is_sigkilled(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        written = 0
        while written < 50:  # wait until it is well into its loop
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "writer made no progress"
            time.sleep(0.05)
            if path.exists():
                with closing(sqlite3.connect(path, timeout=30)) as con:
                    try:
                        written = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                    except sqlite3.OperationalError:  # schema not created yet
                        written = 0
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    with RunLog(path) as log:
        frame = log.load_run("killed")
        assert len(frame) >= 50
        assert frame["prompt_id"].tolist() == list(range(len(frame)))  # committed batches only, no holes
        assert len(log.attempts()) in (len(frame) - 1, len(frame))  # killed between the two writes, or not
        with closing(sqlite3.connect(path)) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- claims: one named run shared by several processes ----------------------------------------------------------

_CLAIMER = textwrap.dedent(
    """
    import sys, time
    from opencode_lab.session.runlog import RunLog
    log = RunLog(sys.argv[1])
    owner = log.claimant()
    print(log.claim(sys.argv[2], (0, "m", 0), owner, since=time.time(), lease_s=60).granted, flush=True)
    sys.stdin.readline()  # hold the claim, alive, until told to exit
    """
)


@pytest.fixture
def claimed_by_child(tmp_path: Path) -> Iterator[tuple[RunLog, str, subprocess.Popen[str]]]:
    """A run log, a run, and a live child process holding a 60 s claim on row (0, "m", 0) of it."""
    log = RunLog(tmp_path / "shared.sqlite")
    run = log.start_run("shared")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", _CLAIMER, str(log.path), run], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "True"
        yield log, run, child
    finally:
        child.kill()
        child.wait(10)
        log.close()


def test_a_row_claimed_by_a_live_process_is_not_granted(claimed_by_child: Any) -> None:
    log, run, _ = claimed_by_child
    mine = log.claimant()
    assert log.claim(run, (0, "m", 0), mine, since=time.time()) == Claim(False)
    assert log.claim(run, (1, "m", 0), mine, since=time.time()) == Claim(True)


def test_the_claims_of_a_process_that_died_lapse_at_once(claimed_by_child: Any) -> None:
    """A crashed kernel blocks no one for the rest of its lease."""
    log, run, child = claimed_by_child
    child.kill()
    child.wait(10)
    assert log.claim(run, (0, "m", 0), log.claimant(), since=time.time()) == Claim(True)


def test_an_expired_lease_frees_the_row_and_renewal_keeps_it(log: RunLog) -> None:
    run = log.start_run("shared")
    first, second = log.claimant(), log.claimant()
    assert log.claim(run, (0, "m", 0), first, since=0.0, lease_s=0.0).granted
    assert log.claim(run, (0, "m", 0), second, since=0.0).granted  # the first owner's lease ran out
    log.renew(second, lease_s=60.0)
    assert log.claim(run, (0, "m", 0), first, since=0.0) == Claim(False)


def test_a_released_owner_no_longer_holds_its_rows(log: RunLog) -> None:
    run = log.start_run("shared")
    first, second = log.claimant(), log.claimant()
    assert log.claim(run, (0, "m", 0), first, since=0.0).granted
    assert log.claim(run, (0, "m", 0), second, since=0.0) == Claim(False)
    log.release(first)
    assert log.claim(run, (0, "m", 0), second, since=0.0).granted


def test_a_saved_row_releases_its_claim_and_is_read_back_instead_of_granted(log: RunLog) -> None:
    run = log.start_run("shared")
    first, second = log.claimant(), log.claimant()
    assert log.claim(run, (0, "m", 0), first, since=0.0).granted
    log.save_results(run, [_row(0, "m", response="sent once")], owner=first)
    with closing(sqlite3.connect(log.path)) as con:
        assert con.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    claim = log.claim(run, (0, "m", 0), second, since=0.0)
    assert not claim.granted and claim.row is not None and claim.row["response"] == "sent once"


def test_a_failure_saved_since_the_claimant_began_is_read_back_an_older_one_is_retried(log: RunLog) -> None:
    """A failure from an earlier attempt at the run is what a resume retries; one from a process running the
    run alongside is its answer for that row."""
    run = log.start_run("shared")
    log.save_results(run, [_failed(0, "m")])
    began = time.time()
    log.save_results(run, [_failed(1, "m")])
    assert log.claim(run, (0, "m", 0), log.claimant(), since=began).granted
    claim = log.claim(run, (1, "m", 0), log.claimant(), since=began)
    assert not claim.granted and claim.row is not None and claim.row["error_type"] == "timeout"
