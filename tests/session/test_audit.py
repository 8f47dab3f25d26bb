"""audit: the run log's hash chain and signed checkpoints catch every kind of tampering by someone without
the key; an untouched log, several writer processes and a prune all verify."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from opencode_lab.core.errors import ConfigError, InvalidRequestError
from opencode_lab.session.audit import Auditor, digests, entry_link, mac, row_digest
from opencode_lab.session.audit_check import AuditReport
from opencode_lab.session.audit_key import AuditKey
from opencode_lab.session.runlog import RunLog

KEY = AuditKey.of(b"the key of these tests")


def _auditor(config: str = "cfg-1") -> Auditor:
    return Auditor(lambda: KEY, config)


def _row(prompt_id: int, model: str = "m", **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "prompt_id": prompt_id, "prompt": f"prompt {prompt_id}", "model": model, "served_by": f"{model}@d1",
        "sample": 0, "response": f"answer {prompt_id}", "latency_s": 0.5, "cost_usd": 0.001 * (prompt_id + 1),
        "input_tokens": 7, "output_tokens": 11, "cached": False, "attempts": 1, "error_type": None,
    }  # fmt: skip
    row.update(values)
    return row


def _attempt(run: str, request: str, number: int = 1) -> dict[str, object]:
    return {"run_id": run, "request_id": request, "attempt": number, "status": "ok", "cost_usd": 0.001}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A run log with a named run of four rows (one failed, then answered), its attempts, and a session run."""
    file = tmp_path / "runs.sqlite"
    with RunLog(file, auditor=_auditor()) as log:
        run = log.start_run("exp", {"spec": {"params": {"temperature": 0.2}}})
        log.save_results(run, [_row(0), _row(1), _row(2, error_type="timeout", response=None)])
        log.append_attempts([_attempt(run, f"q{i}") for i in range(3)])
        log.save_results(run, [_row(2), _row(3)])  # the failure is answered on resume: the row changes
        log.save_results(run, [_row(3, error_type="timeout", response=None)])  # never replaces a success
        session = log.start_run(run_id="s-1")
        log.save_results(session, [_row(9, model="n")])
    return file


def _verify(path: Path, key: AuditKey = KEY, **kwargs: Any) -> AuditReport:
    with RunLog(path) as log:
        return log.verify(key, **kwargs)


def _sql(path: Path, *statements: str) -> None:
    """Someone with the file and sqlite3, but not the key."""
    with closing(sqlite3.connect(path)) as con:
        for statement in statements:
            con.execute(statement)
        con.commit()


def _seq(path: Path, prompt_id: int) -> int:
    with closing(sqlite3.connect(path)) as con:
        return int(con.execute("SELECT seq FROM results WHERE prompt_id = ?", (prompt_id,)).fetchone()[0])


def test_an_untouched_log_verifies(path: Path) -> None:
    report = _verify(path)
    assert report.ok, report.findings
    # 2 runs + 6 row versions (rows 0-3, row 2 again, session row) + 3 attempts; the refused upsert adds none
    assert report.entries == 11
    assert report.checkpoints == 6  # one per write transaction
    pos, link = report.head.split(":")
    assert pos == "11" and len(link) == 64


def test_each_entry_says_who_what_and_when(path: Path) -> None:
    with closing(sqlite3.connect(path)) as con:
        who, what, at = con.execute("SELECT who, what, at FROM audit ORDER BY pos LIMIT 1").fetchone()
    assert set(json.loads(who)) == {"user", "host", "pid"}
    assert json.loads(what)["config"] == "cfg-1" and json.loads(what)["version"]
    assert abs(at - time.time()) < 3600


def test_an_edited_answer_is_named(path: Path) -> None:
    seq = _seq(path, 1)
    _sql(path, f"UPDATE results SET response = 'a better answer' WHERE seq = {seq}")
    first = _verify(path).first
    assert first is not None and first.kind == "edited"
    assert f"results row {seq}" in first.where and "prompt 1" in first.where


def test_an_edited_cost_is_named(path: Path) -> None:
    _sql(path, "UPDATE attempts SET cost_usd = 0 WHERE request_id = 'q1'")
    first = _verify(path).first
    assert first is not None and first.kind == "edited" and "attempts row" in first.where and "q1" in first.where


def test_a_deleted_row_is_named(path: Path) -> None:
    seq = _seq(path, 0)
    _sql(path, f"DELETE FROM results WHERE seq = {seq}")
    first = _verify(path).first
    assert first is not None and first.kind == "deleted" and f"results row {seq}" in first.where


def test_an_inserted_row_is_named(path: Path) -> None:
    _sql(path, "INSERT INTO attempts (run_id, request_id, status, cost_usd) VALUES ('s-1', 'forged', 'ok', 0)")
    report = _verify(path)
    assert [f.kind for f in report.findings] == ["inserted"]
    assert "forged" in report.findings[0].where


def test_swapped_rows_are_named(path: Path) -> None:
    a, b = _seq(path, 0), _seq(path, 1)
    _swap(path, a, b)
    report = _verify(path)
    assert {f.kind for f in report.findings} == {"swapped"}
    assert report.first is not None and f"logged as row {b}" in report.first.detail


def _swap(path: Path, a: int, b: int) -> None:
    """Exchange everything but the row ids of results rows *a* and *b*."""
    with closing(sqlite3.connect(path)) as con:
        con.row_factory = sqlite3.Row
        rows = {r["seq"]: dict(r) for r in con.execute(f"SELECT * FROM results WHERE seq IN ({a}, {b})")}
        columns = [c for c in rows[a] if c != "seq"]
        con.execute(f"DELETE FROM results WHERE seq IN ({a}, {b})")
        for seq, other in ((a, b), (b, a)):
            values = [rows[other][c] for c in columns]
            con.execute(
                f"INSERT INTO results (seq, {', '.join(columns)}) VALUES (?, {', '.join('?' for _ in columns)})",
                (seq, *values),
            )
        con.commit()


def test_a_truncated_tail_is_named_even_with_its_entries_removed(path: Path) -> None:
    with closing(sqlite3.connect(path)) as con:
        last = con.execute("SELECT ref FROM audit WHERE kind = 'result' ORDER BY pos DESC LIMIT 1").fetchone()[0]
    _sql(path, f"DELETE FROM results WHERE seq = {last}", "DELETE FROM audit WHERE pos = (SELECT MAX(pos) FROM audit)")
    first = _verify(path).first
    assert first is not None and first.kind == "truncated" and "cut from the tail" in first.detail


def test_a_cut_tail_with_its_checkpoints_gone_is_caught_by_the_published_head(path: Path) -> None:
    head = _verify(path).head
    _sql(
        path,
        "DELETE FROM results WHERE seq = (SELECT ref FROM audit WHERE pos = 11)",
        "DELETE FROM audit WHERE pos = 11",
        "DELETE FROM audit_checkpoints WHERE pos = 11",
    )
    assert _verify(path).ok  # without anything kept outside the file, a clean cut is a shorter log
    first = _verify(path, head=head).first
    assert first is not None and first.kind == "truncated"


def _rechain(path: Path, key: AuditKey | None) -> None:
    """Edit row 1's answer, then recompute its digest and every link after it, as one who knows the algorithm
    would; with *key*, also re-sign every checkpoint with it."""
    seq = _seq(path, 1)
    with closing(sqlite3.connect(path)) as con:
        con.row_factory = sqlite3.Row
        con.execute(f"UPDATE results SET response = 'rewritten' WHERE seq = {seq}")
        row = dict(con.execute(f"SELECT * FROM results WHERE seq = {seq}").fetchone())
        con.execute("UPDATE audit SET digest = ? WHERE kind = 'result' AND ref = ?", (row_digest(row, "seq"), seq))
        link = "0" * 64
        for e in con.execute("SELECT * FROM audit ORDER BY pos").fetchall():
            link = entry_link(link, (e["pos"], e["kind"], e["ref"], e["at"], e["who"], e["what"], e["digest"]))
            con.execute("UPDATE audit SET link = ? WHERE pos = ?", (link, e["pos"]))
            if key is not None:
                cp = con.execute("SELECT * FROM audit_checkpoints WHERE pos = ?", (e["pos"],)).fetchone()
                if cp is not None:
                    signature = mac(key, "checkpoint", e["pos"], link, cp["at"], KEY.key_id)  # claims the real key
                    con.execute(
                        "UPDATE audit_checkpoints SET link = ?, mac = ? WHERE pos = ?", (link, signature, e["pos"])
                    )
        con.commit()


def test_a_rechained_edit_contradicts_the_signed_checkpoints(path: Path) -> None:
    _rechain(path, key=None)
    first = _verify(path).first
    assert first is not None and first.kind == "rewritten"


def test_checkpoints_replaced_without_the_key_are_named(path: Path) -> None:
    _rechain(path, key=AuditKey.of(b"a guess"))
    first = _verify(path).first
    assert first is not None and first.kind == "forged checkpoint" and "without the key" in first.detail


def test_entries_appended_without_a_checkpoint_are_named(path: Path) -> None:
    with closing(sqlite3.connect(path)) as con:
        pos, link = con.execute("SELECT pos, link FROM audit ORDER BY pos DESC LIMIT 1").fetchone()
        con.execute("INSERT INTO attempts (run_id, request_id, status) VALUES ('s-1', 'extra', 'ok')")
        seq, *_ = con.execute("SELECT seq FROM attempts WHERE request_id = 'extra'").fetchone()
        con.row_factory = sqlite3.Row
        row = dict(con.execute(f"SELECT * FROM attempts WHERE seq = {seq}").fetchone())
        entry = (pos + 1, "attempt", seq, time.time(), "{}", "{}", row_digest(row, "seq"))
        con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*entry, entry_link(link, entry)))
        con.commit()
    report = _verify(path)
    assert [f.kind for f in report.findings] == ["inserted"]
    assert report.findings[0].where == f"entries {pos + 1}..{pos + 1}"


def test_verifying_with_another_key_fails_every_checkpoint(path: Path) -> None:
    report = _verify(path, AuditKey.of(b"not it"))
    assert {f.kind for f in report.findings} == {"forged checkpoint"} and len(report.findings) == 6
    assert report.first is not None and f"not this key ({AuditKey.of(b'not it').key_id})" in report.first.detail


def _write_rows(path: str, model: str, count: int, go: Any) -> None:
    go.wait(60)
    with RunLog(path, auditor=_auditor(model)) as log:
        run = log.start_run("shared")
        for start in range(0, count, 5):
            log.save_results(run, [_row(i, model) for i in range(start, start + 5)])
            log.append_attempts([_attempt(run, f"{model}-{start}")])


@pytest.mark.slow
def test_two_writer_processes_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with RunLog(path, auditor=_auditor()) as log:
        log.start_run("shared")
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    writers = [ctx.Process(target=_write_rows, args=(str(path), model, 60, go)) for model in ("p", "q")]
    for writer in writers:
        writer.start()
    go.set()
    for writer in writers:
        writer.join(120)
    assert [w.exitcode for w in writers] == [0, 0]
    report = _verify(path)
    assert report.ok, report.findings
    assert report.entries == 1 + 2 * (60 + 12)
    with closing(sqlite3.connect(path)) as con:
        pids = {json.loads(w)["pid"] for (w,) in con.execute("SELECT who FROM audit")}
        configs = {json.loads(w)["config"] for (w,) in con.execute("SELECT what FROM audit")}
    assert len(pids) == 3 and configs == {"cfg-1", "p", "q"}


def test_prune_keeps_what_is_left_verifiable(path: Path) -> None:
    cut = time.time()
    with RunLog(path, auditor=_auditor()) as log:
        run = log.start_run("later")
        log.save_results(run, [_row(5)])
        done = log.prune(cut)
        assert done.upto == 11 and done.counts == {"results": 5, "attempts": 3}
        assert log.load_run("later")["prompt_id"].tolist() == [5]
        assert len(log.load_run("exp")) == 0  # the run is kept, its rows are gone
        assert log.verify(KEY).ok, log.verify(KEY).findings
        log.save_results(run, [_row(6)])  # the chain goes on after a prune
        assert log.verify(KEY).ok
    _sql(path, "UPDATE results SET cost_usd = 0 WHERE prompt_id = 5")
    first = _verify(path).first
    assert first is not None and first.kind == "edited"


def test_a_forged_prune_record_is_named(path: Path) -> None:
    with RunLog(path, auditor=_auditor()) as log:
        log.prune(time.time())
    _sql(path, "UPDATE audit_pruned SET counts = '{}'")
    first = _verify(path).first
    assert first is not None and first.kind == "forged checkpoint" and "prune record" in first.where


def test_prune_refuses_a_damaged_trail(path: Path) -> None:
    _sql(path, "UPDATE results SET response = 'x' WHERE prompt_id = 0")
    with RunLog(path, auditor=_auditor()) as log, pytest.raises(InvalidRequestError, match=r"does not verify.*edited"):
        log.prune(time.time())


def test_a_log_from_before_the_trail_enters_it_on_first_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with RunLog(path) as log:  # no auditor: as an older opencode_lab wrote it
        run = log.start_run("old")
        log.save_results(run, [_row(0), _row(1)])
    with closing(sqlite3.connect(path)) as con:
        con.execute("DROP TABLE audit")
        con.execute("PRAGMA user_version = 2")
        con.commit()
    with RunLog(path, auditor=_auditor()) as log:
        log.save_results(run, [_row(2)])
        report = log.verify(KEY)
    assert report.ok and report.entries == 4


def test_a_stored_row_is_digested_as_row_digest_digests_its_columns_whatever_their_order() -> None:
    with closing(sqlite3.connect(":memory:")) as con:  # columns out of order, text, numbers, NULL and a BLOB
        con.execute("CREATE TABLE attempts (zeta TEXT, seq INTEGER PRIMARY KEY, alpha REAL, mid BLOB, été INT)")
        con.executemany(
            "INSERT INTO attempts VALUES (?, ?, ?, ?, ?)",
            [("zürich", 1, 0.1, None, 3), (None, 2, 2.0, b"\x00\xff", None), ("\"q\"\n", 3, None, None, -1)],
        )
        rows = [dict(zip(("zeta", "seq", "alpha", "mid", "été"), r, strict=True)) for r in con.execute(
            "SELECT * FROM attempts ORDER BY seq")]  # fmt: skip
        assert digests(con, "attempt") == [(r["seq"], row_digest(r, "seq")) for r in rows]


def test_a_new_result_column_leaves_old_digests_valid(path: Path) -> None:
    _sql(path, "ALTER TABLE results ADD COLUMN of_a_later_format TEXT")  # what a later format adds: NULL in old rows
    assert _verify(path).ok


@pytest.fixture
def exported(path: Path) -> list[dict[str, Any]]:
    with RunLog(path) as log:
        return [json.loads(json.dumps(item)) for item in log.export_audit()]


def test_the_export_holds_the_chain_its_checkpoints_and_the_latest_records(exported: list[dict[str, Any]]) -> None:
    entries = [e for e in exported if e["type"] == "entry"]
    assert [e["pos"] for e in entries] == list(range(1, 12))
    assert sum(e["type"] == "checkpoint" for e in exported) == 6
    link = "0" * 64
    for e in entries:  # anyone can recompute the chain from the export alone
        link = entry_link(link, (e["pos"], e["kind"], e["ref"], e["at"], json.dumps(e["who"], sort_keys=True),
                                 json.dumps(e["what"], sort_keys=True), e["digest"]))  # fmt: skip
        assert link == e["link"]
        if e.get("record") is not None:
            column = "rowid" if e["kind"] == "run" else "seq"
            assert row_digest(e["record"], column) == e["digest"]
    superseded = [e for e in entries if e["kind"] == "result" and "record" not in e]
    assert len(superseded) == 1  # row 2's failure, answered later


def test_a_log_missing_its_last_rows_is_not_written_to_so_the_gap_stays_visible(path: Path) -> None:
    _sql(path, "DELETE FROM attempts WHERE seq = (SELECT MAX(seq) FROM attempts)")
    with RunLog(path, auditor=_auditor()) as log:
        with pytest.raises(ConfigError, match=r"attempts row 3 .* was chained but is gone"):
            log.append_attempts([_attempt("s-1", "later")])  # it would take row 3's id and hide the deletion
        log.save_results("s-1", [_row(10, model="n")])  # no results row is missing: those are still written
    first = _verify(path).first
    assert first is not None and first.kind == "deleted" and "attempts row 3" in first.where


def test_a_lab_chains_its_calls_and_with_audit_off_chains_nothing(fault, fault_toml, make_lab) -> None:
    audited = make_lab(fault_toml(fault))
    audited.compare(["a", "b"], "m", run="on")
    assert audited.runlog is not None
    report = audited.runlog.verify(AuditKey.of(os.environ["OC_AUDIT_KEY"].encode()))
    assert report.ok and report.entries == 1 + 2 + 2  # the run, its rows, their attempts
    plain = make_lab(fault_toml(fault, extra="\n[lab]\naudit = false\nrunlog = 'plain.sqlite'\n"))
    plain.compare(["a"], "m", run="off", cache=False)
    assert plain.runlog is not None
    with closing(sqlite3.connect(plain.runlog.path)) as con:
        assert con.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 0
    with pytest.raises(ConfigError, match="OC_AUDIT is off"):
        plain.runlog.prune(time.time())
