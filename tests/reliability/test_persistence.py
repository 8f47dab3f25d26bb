"""Persistence faults never lose an answer: a run log or cache folder that cannot be used costs a warning.

A run log may be another program's file, a damaged or truncated database, a
directory, or sit where nothing can be written.  `RunLog` refuses such a file
untouched with a `ConfigError` naming it and the way out; a Lab then answers
``chat``, ``stream`` and ``compare`` without it and says so once, and refuses only
a named ``compare(run=...)``, which could not resume, before sending anything.

These tests run as root here, so no "unwritable" case relies on permission bits:
a path below a regular file fails for every user, and sysfs refuses new files to
root too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from opencode_lab.core.errors import ConfigError
from opencode_lab.session.runlog import RunLog

ADVICE = "move it away or set OC_RUNLOG"


def _not_sqlite(path: Path) -> Path:
    path.write_bytes(b"these are someone's notes, not a database\n" * 50)
    return path


def _truncated(path: Path) -> Path:
    with RunLog(path) as log:
        log.save_results(log.start_run("big"), [{"prompt_id": i, "model": "m", "sample": 0} for i in range(300)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _foreign(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, payload TEXT)")
        con.execute("INSERT INTO results (payload) VALUES ('theirs')")
        con.commit()
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _damaged_after_opening(path: Path) -> Path:
    """Schema page intact, every table page garbage: the log opens, then fails on first use."""
    with RunLog(path) as log:
        log.start_run("before")
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    return path


def _below_a_file(path: Path) -> Path:
    (path.parent / "notes.txt").write_text("a file, not a folder")
    return path.parent / "notes.txt" / "logs" / "runs.sqlite"


def _in_sysfs(path: Path) -> Path:
    return Path("/sys/opencode-lab-runs.sqlite")  # sysfs refuses new files, to root as well


REFUSED = {"not-sqlite": _not_sqlite, "truncated": _truncated, "foreign": _foreign, "directory": _directory}
UNUSABLE = {**REFUSED, "damaged": _damaged_after_opening, "below-a-file": _below_a_file, "sysfs": _in_sysfs}


def _content(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name.startswith("opencode_lab") and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def broken_runlog(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OC_RUNLOG pointing at the unusable file named by the test's parameter."""
    path = UNUSABLE[request.param](tmp_path / "runs.sqlite")
    monkeypatch.setenv("OC_RUNLOG", str(path))
    return path


# -- the run log itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", REFUSED)
def test_a_file_that_cannot_be_a_run_log_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    path = REFUSED[kind](tmp_path / "runs.sqlite")
    before = _content(path)
    with pytest.raises(ConfigError, match=r"the run log .*runs\.sqlite cannot be used") as caught:
        RunLog(path)
    assert ADVICE in str(caught.value)
    assert _content(path) == before
    assert not Path(f"{path}-wal").exists()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("below-a-file", "Not a directory"), ("sysfs", "Permission denied")],
)
def test_a_run_log_where_nothing_can_be_written_is_refused(tmp_path: Path, kind: str, reason: str) -> None:
    path = UNUSABLE[kind](tmp_path / "runs.sqlite")
    with pytest.raises(ConfigError, match=reason) as caught:
        RunLog(path)
    assert str(path) in str(caught.value) and ADVICE in str(caught.value)


def test_a_run_log_damaged_after_opening_fails_each_use_with_a_config_error(tmp_path: Path) -> None:
    log = RunLog(_damaged_after_opening(tmp_path / "runs.sqlite"))
    uses: list[Callable[[], object]] = [
        lambda: log.start_run("after"),
        lambda: log.append_attempts([{"run_id": "r", "request_id": "q", "status": "ok"}]),
        log.runs,
    ]
    for use in uses:
        with pytest.raises(ConfigError, match=r"cannot be used \(database disk image is malformed\)"):
            use()
    log.close()


# -- a Lab with an unusable run log ------------------------------------------------------------------------------


@pytest.mark.parametrize("broken_runlog", UNUSABLE, indirect=True)
def test_an_unusable_run_log_costs_no_answer_and_one_warning(
    broken_runlog: Path, fault, fault_toml, make_lab, caplog: pytest.LogCaptureFixture
) -> None:
    lab = make_lab(fault_toml(fault))
    assert lab.chat("first", "m").text == "echo: first"
    lab.flush()
    assert "".join(lab.stream("second", "m")) == "echo: second"
    lab.flush()
    frame = lab.compare(["third", "fourth"], "m", progress=False)
    assert frame["response"].tolist() == ["echo: third", "echo: fourth"]
    lab.flush()
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert str(broken_runlog) in warnings[0] and "OC_RUNLOG" in warnings[0]


@pytest.mark.parametrize("broken_runlog", UNUSABLE, indirect=True)
def test_a_named_compare_with_an_unusable_run_log_is_refused_before_sending(
    broken_runlog: Path, fault, fault_toml, make_lab
) -> None:
    lab = make_lab(fault_toml(fault))
    with pytest.raises(ConfigError, match=r"compare\(run='sweep'\) needs its run log to resume") as caught:
        lab.compare(["a", "b"], "m", run="sweep", progress=False)
    assert str(broken_runlog) in str(caught.value) and "OC_RUNLOG" in str(caught.value)
    assert fault.count() == 0


@pytest.mark.parametrize("broken_runlog", ["not-sqlite"], indirect=True)
def test_listing_runs_names_the_unusable_run_log(broken_runlog: Path, fault, fault_toml, make_lab) -> None:
    lab = make_lab(fault_toml(fault))
    with pytest.raises(ConfigError, match=rf"{broken_runlog} cannot be used.*{ADVICE}"):
        lab.runs()


# -- a Lab without a writable cache folder -----------------------------------------------------------------------


@pytest.fixture
def cache_below_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OC_CACHE_DIR below a regular file: no user, root included, can create it."""
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    folder = tmp_path / "notes.txt" / "cache"
    monkeypatch.setenv("OC_CACHE_DIR", str(folder))
    return folder


def test_an_unwritable_cache_folder_leaves_the_memory_cache_and_no_run_log(
    cache_below_a_file: Path, fault, fault_toml, make_lab, caplog: pytest.LogCaptureFixture
) -> None:
    lab = make_lab(fault_toml(fault))
    assert lab.chat("q", "m").text == lab.chat("q", "m").text == "echo: q"
    assert fault.count() == 1  # the second answer came from the memory cache
    assert lab.compare(["a"], "m", progress=False)["response"].tolist() == ["echo: a"]
    lab.flush()
    assert lab.cache.info()["mode"] == "memory" and lab.runlog is None
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert str(cache_below_a_file) in warnings[0] and "in-memory cache and no run log" in warnings[0]


def test_a_user_without_a_writable_home_gets_a_working_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault, fault_toml, make_lab, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "home").write_text("HOME is a file here")
    monkeypatch.delenv("OC_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    lab = make_lab(fault_toml(fault))
    assert lab.chat("q", "m").text == "echo: q"
    assert lab.cache.info()["mode"] == "memory"
    assert len(_warnings(caplog)) == 1


def test_a_run_log_set_outside_the_unwritable_cache_folder_is_kept(
    cache_below_a_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault, fault_toml, make_lab
) -> None:
    monkeypatch.setenv("OC_RUNLOG", str(tmp_path / "elsewhere" / "runs.sqlite"))
    lab = make_lab(fault_toml(fault))
    lab.compare(["a"], "m", run="kept", progress=False)
    assert lab.load_run("kept")["response"].tolist() == ["echo: a"]


def test_a_named_compare_without_a_writable_cache_folder_is_refused_before_sending(
    cache_below_a_file: Path, fault, fault_toml, make_lab
) -> None:
    lab = make_lab(fault_toml(fault))
    with pytest.raises(ConfigError, match=r"needs its run log to resume.*is off: the cache folder .*not writable"):
        lab.compare(["a"], "m", run="sweep", progress=False)
    assert fault.count() == 0
