"""``opencode-lab audit``: verify exits 0 on an intact trail and 1 naming the damage; export writes JSON Lines;
prune keeps what is left verifiable."""

from __future__ import annotations

import json
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from opencode_lab import Lab
from opencode_lab.frontends.cli import main


@pytest.fixture
def config(fault, fault_toml, tmp_path: Path) -> Path:
    """A lab config whose run log holds a compare of two prompts and one chat."""
    path = tmp_path / "lab.toml"
    path.write_text(fault_toml(fault))
    with Lab.from_file(path) as lab:
        lab.compare(["first", "second"], "m", run="audited")
        lab.chat("third", "m")
    return path


def _runlog(config: Path) -> Path:
    with Lab.from_file(config) as lab:
        assert lab.settings.runlog is not None
        return lab.settings.runlog


def test_verify_says_intact_and_prints_the_head_to_publish(config: Path, capsys) -> None:
    assert main(["--config", str(config), "audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit trail intact" in out and "checkpoints" in out
    head = out.split("head ")[1].split()[0]
    assert main(["--config", str(config), "audit", "verify", "--head", head]) == 0


def test_verify_fails_naming_the_first_bad_record_and_the_kind(config: Path, capsys) -> None:
    with closing(sqlite3.connect(_runlog(config))) as con:
        con.execute("UPDATE results SET response = 'edited' WHERE prompt = 'second'")
        con.commit()
    assert main(["--config", str(config), "audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "audit trail damaged" in err and "edited: results row" in err and "prompt 1" in err


def test_a_malformed_published_head_is_refused(config: Path, capsys) -> None:
    assert main(["--config", str(config), "audit", "verify", "--head", "nonsense"]) == 1
    assert "position:link" in capsys.readouterr().err


def test_export_writes_an_owner_only_json_lines_file(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "trail.jsonl"
    assert main(["--config", str(config), "audit", "export", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = {line["kind"] for line in lines if line["type"] == "entry"}
    assert kinds == {"run", "result", "attempt"}
    assert lines[-1]["type"] == "checkpoint"
    prompts = {line["record"]["prompt"] for line in lines if line.get("kind") == "result"}
    assert prompts == {"first", "second", "third"}


def test_prune_then_verify(config: Path, capsys) -> None:
    assert main(["--config", str(config), "audit", "prune", "--before", "2999-01-01"]) == 0
    assert "pruned entries up to" in capsys.readouterr().out
    assert main(["--config", str(config), "audit", "verify"]) == 0
    assert "pruned up to entry" in capsys.readouterr().out
    with Lab.from_file(config) as lab:
        assert lab.history().empty


def test_prune_before_anything_was_logged_changes_nothing(config: Path, capsys) -> None:
    assert main(["--config", str(config), "audit", "prune", "--before", "2001-01-01T00:00+02:00"]) == 0
    assert "nothing pruned" in capsys.readouterr().out


def test_a_date_that_is_not_one_is_refused(config: Path, capsys) -> None:
    assert main(["--config", str(config), "audit", "prune", "--before", "last week"]) == 1
    assert "ISO date" in capsys.readouterr().err
