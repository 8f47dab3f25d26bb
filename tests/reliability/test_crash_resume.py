"""Crash and resume: a named compare killed with SIGKILL midway resumes without paying twice.

A child process runs ``compare(..., run="soak")`` over 300 rows against a slow fault
server and is killed when the server has seen about half of them.  What is
guaranteed, and asserted: a row whose answer reached the response cache or the run
log before the kill is never sent again; every other row is sent exactly once on
resume; the only answers paid for twice are those the server had sent but the
child had not stored yet, at most one per concurrency slot (requests in flight).
"""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from opencode_lab import ChatRequest
from opencode_lab.session.cache import ResponseCache, canonical_key
from opencode_lab.session.runlog import RunLog

from .conftest import child_env, lab_toml, popen_python, reaped, spawned, wait_until

pytestmark = pytest.mark.slow

ROWS = 300
CONCURRENCY = 8
PROMPTS = [f"resume row {i}" for i in range(ROWS)]
CHILD = f"""
    from opencode_lab import Lab
    lab = Lab.from_env()
    lab.compare({PROMPTS!r}, "m", run="soak", temperature=0, progress=False, concurrency={CONCURRENCY})
    print("FINISHED", flush=True)
"""
SAME = ["prompt_id", "prompt", "model", "sample", "response", "finish_reason", "input_tokens", "output_tokens"]


def stored_in_cache(lab, prompts: list[str]) -> set[str]:
    identities = lab.block_on(lab.aidentities("m"))  # what the cache key names: who may answer, by identity
    keys = {p: canonical_key(ChatRequest.build(p, model="m", temperature=0), identities, 0) for p in prompts}
    return {p for p, key in keys.items() if lab.cache.get(key) is not None}


@pytest.mark.timeout(240)
def test_a_killed_named_run_resumes_sending_only_unstored_rows(tmp_path: Path, make_lab, monkeypatch) -> None:
    """SIGKILL midway: cache and run log stay readable, the resume sends only rows with no stored answer,
    and the resumed frame equals an uninterrupted run's."""
    shared = tmp_path / "shared-cache"
    with spawned({"latency_s": 0.05}) as (server,):
        toml = tmp_path / "lab.toml"
        toml.write_text(lab_toml([server]))
        child = popen_python(CHILD, child_env(OC_CACHE_DIR=str(shared), OC_CONFIG=str(toml)))
        with reaped([child]):
            wait_until(lambda: server.count() >= ROWS // 2 or child.poll() is not None, 90, "half the rows")
            child.send_signal(signal.SIGKILL)
            out, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL and "FINISHED" not in out, f"not killed midway: {err[-2000:]}"
        before = server.log

        # both stores are readable after the kill, the SQLite file intact
        with sqlite3.connect(shared / "runs.sqlite") as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with RunLog(shared / "runs.sqlite") as runlog:
            run_id = runlog.find_run("soak")
            assert run_id is not None
            saved = {PROMPTS[key[0]] for key in runlog.completed(run_id)}
            partial = runlog.load_run("soak")
        assert partial["error_type"].isna().all()
        info = ResponseCache("file", shared).info()
        monkeypatch.setenv("OC_CACHE_DIR", str(shared))
        lab = make_lab(toml.read_text())
        cached = stored_in_cache(lab, PROMPTS)
        assert info["entries"] >= len(cached) > 0
        stored = saved | cached
        assert 0 < len(stored) < ROWS, f"the kill did not land midway ({len(stored)} rows stored)"

        server.reset()
        frame = lab.compare(PROMPTS, "m", run="soak", temperature=0, progress=False, concurrency=CONCURRENCY)
        sent_after = Counter(e["prompt"] for e in server.log)

    answered_before = {e["prompt"] for e in before if e["outcome"] == "ok"}
    print(
        f"\ncrash/resume: server saw {len(before)} requests before SIGKILL; stored then: {len(saved)} rows in the "
        f"run log, {len(cached)} in the cache ({len(stored)} either); resume sent {sum(sent_after.values())}, "
        f"{len(set(sent_after) & answered_before)} of them answered before the kill but not stored"
    )
    assert not set(sent_after) & stored, "a row with a stored answer was sent again"
    assert set(sent_after) == set(PROMPTS) - stored and max(sent_after.values()) == 1
    assert len(set(sent_after) & answered_before) <= CONCURRENCY

    assert list(frame["prompt"]) == PROMPTS and frame["error_type"].isna().all()
    assert set(frame["run_id"]) == {run_id}
    monkeypatch.setenv("OC_CACHE_DIR", str(tmp_path / "fresh-cache"))
    with spawned({}) as (fresh_server,):
        reference = make_lab(lab_toml([fresh_server])).compare(PROMPTS, "m", run="soak", temperature=0, progress=False)
    pd.testing.assert_frame_equal(frame[SAME], reference[SAME], check_dtype=False)
    logged = lab.load_run("soak")
    assert len(logged) == ROWS and logged["error_type"].isna().all()
    assert list(logged["prompt"]) == PROMPTS


INTERRUPTED_CHILD = """
    import pickle, signal, sqlite3, threading, time
    from opencode_lab import Lab
    lab = Lab.from_env()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's Python has it, even when the
    # suite runs as a background job, whose children inherit an ignored SIGINT (the Ctrl-C below did nothing)

    def interrupt_when_answered():
        while sum(1 for row in list(lab.calls) if row["error_type"] is None) < {answered}:
            time.sleep(0.01)
        other = sqlite3.connect(lab.settings.runlog, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the log when Ctrl-C comes: saving must wait
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C, as a terminal sends it
        time.sleep(1.0)
        other.execute("COMMIT")
        other.close()

    threading.Thread(target=interrupt_when_answered, daemon=True).start()
    frame = lab.compare({prompts!r}, "m", run="ctrl-c", progress=False, concurrency=16)
    reader = sqlite3.connect(f"file:{{lab.settings.runlog}}?mode=ro", uri=True)  # a reader waits for no writer
    logged = [p for (p,) in reader.execute("SELECT prompt FROM results ORDER BY prompt_id")]  # the moment it returns
    with open({out!r}, "wb") as file:
        pickle.dump((frame, logged), file)
    print("RETURNED", flush=True)
    lab.close()
"""


@pytest.mark.timeout(120)
def test_ctrl_c_during_a_named_compare_returns_the_finished_rows_already_logged(tmp_path: Path) -> None:
    """A real SIGINT while some requests hang and another writer holds the run log: compare returns the
    answered rows, the hanging ones marked interrupted, and the log read the moment it returns holds exactly
    the answered rows."""
    answered = [f"answered row {i}" for i in range(6)]
    prompts = [*answered, *(f"[[fault:hang]] held row {i}" for i in range(3))]
    out = tmp_path / "frames.pkl"
    with spawned({"hang_s": 90}) as (server,):
        toml = tmp_path / "lab.toml"
        toml.write_text(lab_toml([server]))
        env = child_env(OC_CACHE_DIR=str(tmp_path / "cache"), OC_CONFIG=str(toml))
        child = popen_python(INTERRUPTED_CHILD.format(answered=len(answered), prompts=prompts, out=str(out)), env)
        with reaped([child]):
            stdout, stderr = child.communicate(timeout=90)
        assert child.returncode == 0 and "RETURNED" in stdout, stderr[-3000:]
        assert server.count() == len(prompts)  # every request was out when the interrupt came
    assert "compare interrupted: returning 6 finished of 9 rows" in stderr

    frame, logged_on_return = pd.read_pickle(out)
    assert list(frame["prompt"]) == prompts
    assert frame["error_type"].tolist() == [None] * 6 + ["interrupted"] * 3
    assert logged_on_return == answered
    finished = frame[frame["error_type"].isna()].reset_index(drop=True)
    with RunLog(tmp_path / "cache" / "runs.sqlite") as runlog:
        pd.testing.assert_frame_equal(runlog.load_run("ctrl-c")[SAME], finished[SAME], check_dtype=False)
