"""privacy mode: prompts and answers leave no plain text on disk, statistics still work, and every view of
the run log says plainly that the text was not kept."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from opencode_lab import Lab
from opencode_lab.session.audit_key import AuditKey
from opencode_lab.session.privacy import NOT_KEPT, conceal

MARKER = "zebra-quartz-7731"
PRIVACY = "\n[lab]\nprivacy = true\n"


def _files_holding(folder: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def private_lab(fault, fault_toml, make_lab) -> Lab:
    lab: Lab = make_lab(fault_toml(fault, extra=PRIVACY))
    return lab


def test_no_plain_text_of_a_prompt_reaches_the_cache_folder_or_the_run_log(private_lab: Lab) -> None:
    frame = private_lab.compare([f"say {MARKER} please", "second"], "m", run="private")
    private_lab.chat(f"chat {MARKER}", "m", system=f"system {MARKER}")
    private_lab.flush()
    assert frame["response"].str.contains(MARKER).tolist() == [True, False]  # the caller still gets the text
    folder = private_lab.settings.cache_dir
    assert private_lab.settings.runlog is not None and private_lab.settings.runlog.is_relative_to(folder)
    assert _files_holding(folder, MARKER) == []
    assert _files_holding(folder, "second") == []


def test_log_probabilities_spell_out_no_answer_on_disk(private_lab: Lab) -> None:
    """Their tokens are the answer's: the column is private, and the cache keeps answers in memory only."""
    frame = private_lab.compare([f"say {MARKER}"], "m", run="probed", top_logprobs=2)
    private_lab.flush()
    assert MARKER in frame["logprobs"].iloc[0]  # the caller still gets them
    assert _files_holding(private_lab.settings.cache_dir, MARKER) == []


def test_a_private_run_keeps_its_statistics_and_says_the_text_was_not_kept(private_lab: Lab) -> None:
    private_lab.compare([f"one {MARKER}", "two", "three"], "m", run="kept")
    logged = private_lab.load_run("kept")
    assert logged["prompt"].str.startswith(NOT_KEPT).all() and logged["response"].str.startswith(NOT_KEPT).all()
    stats = private_lab.stats(logged)
    assert stats.loc["m", "calls"] == 3 and stats.loc["m", "ok"] == 3
    history = private_lab.history()
    assert history["prompt"].str.startswith(NOT_KEPT).all()


def test_a_resumed_private_run_replays_rows_that_say_the_text_was_not_kept(private_lab: Lab, fault) -> None:
    private_lab.compare(["a question"], "m", run="again")
    sent = fault.count()
    again = private_lab.compare(["a question"], "m", run="again", cache=False)
    assert fault.count() == sent  # read back from the run log, not asked again
    assert again["response"].iloc[0].startswith(NOT_KEPT)


def test_privacy_mode_keeps_answers_in_memory_only(private_lab: Lab, fault) -> None:
    first = private_lab.chat("cached in memory", "m")
    again = private_lab.chat("cached in memory", "m")
    assert again.cached and again.text == first.text and fault.count() == 1
    assert private_lab.cache.mode == "memory"


def test_the_keyed_hash_tells_whether_a_given_text_was_sent_only_to_the_key_holder(private_lab: Lab) -> None:
    private_lab.compare([MARKER], "m", run="check")
    stored = private_lab.load_run("check")["prompt"].iloc[0]
    key = AuditKey.of(os.environ["OC_AUDIT_KEY"].encode())
    assert stored == conceal(key, MARKER)
    assert stored != conceal(AuditKey.of(b"someone else"), MARKER)


def test_without_privacy_the_text_is_kept(fault, fault_toml, make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(fault_toml(fault))
    lab.compare([MARKER], "m", run="plain")
    assert lab.settings.runlog is not None
    with closing(sqlite3.connect(lab.settings.runlog)) as con:
        assert con.execute("SELECT prompt FROM results").fetchone()[0] == MARKER


def test_a_private_runs_system_prompt_and_template_are_not_kept_and_it_still_resumes(private_lab: Lab, fault) -> None:
    options = {"system": f"you are {MARKER}", "template": "Q: {prompt} " + MARKER, "run": "spec"}
    private_lab.compare(["x"], "m", **options)
    sent = fault.count()
    private_lab.compare(["x"], "m", **options)
    assert fault.count() == sent
    assert _files_holding(private_lab.settings.cache_dir, MARKER) == []
