"""audit_key: the key lives outside the run log, is made once owner-only with a note, and a key file
others can read is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opencode_lab import Lab
from opencode_lab.core.errors import ConfigError
from opencode_lab.core.secrets import Secret
from opencode_lab.session.audit_key import load_key


def test_the_key_file_is_made_on_first_use_owner_only_with_a_note(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config" / "audit.key"
    first = load_key(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    note = capsys.readouterr().err
    assert str(path) in note and "keep a copy" in note
    assert load_key(None, path) == first and capsys.readouterr().err == ""  # read back, no second note


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    load_key(None, path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=rf"other users.*chmod 600 {path}"):
        load_key(None, path)


def test_the_variable_wins_over_the_file_and_the_key_never_shows(tmp_path: Path) -> None:
    from_variable = load_key(Secret("a key given in OC_AUDIT_KEY"), tmp_path / "absent.key")
    assert not (tmp_path / "absent.key").exists()
    assert "given" not in repr(from_variable) and from_variable.key_id in repr(from_variable)
    assert from_variable != load_key(None, tmp_path / "other.key")


def test_checking_never_makes_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no audit key.*cannot be checked"):
        load_key(None, tmp_path / "absent.key", create=False)
    assert not (tmp_path / "absent.key").exists()


def test_a_lab_makes_its_key_at_its_first_logged_call(fault, fault_toml, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OC_AUDIT_KEY")
    monkeypatch.setenv("OC_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    toml = tmp_path / "lab.toml"
    toml.write_text(fault_toml(fault))
    with Lab.from_file(toml) as lab:
        assert not (tmp_path / "audit.key").exists()  # nothing logged yet: no key
        lab.chat("hello", "m")
        lab.flush()
        assert (tmp_path / "audit.key").exists() and "created the audit key" in capsys.readouterr().err
        assert lab.runlog is not None
        assert lab.runlog.verify(load_key(None, tmp_path / "audit.key", create=False)).ok
