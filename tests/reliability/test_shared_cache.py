"""Kernels sharing a cache: concurrent processes sharing OC_CACHE_DIR and the run log lose and corrupt nothing,
and a kernel that may only read the cache folder is still answered from it.

Each concurrent child imports everything, says it is ready, then waits at a barrier
file so that both build their Lab (and open the cache and the run log) and run their
compare at the same moment, against one slow fault server.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from opencode_lab.session.cache_format import decode
from opencode_lab.session.runlog import RunLog

from .conftest import child_env, lab_toml, popen_python, reaped, spawned, wait_until

CHILD = """
    import pathlib, time
    import pandas
    from opencode_lab import Lab
    pathlib.Path({ready!r}).touch()
    go = pathlib.Path({go!r})
    while not go.exists():
        time.sleep(0.005)
    lab = Lab.from_env()
    frame = lab.compare({prompts!r}, "m", run={run!r}, temperature=0, progress=False, concurrency=8)
    frame.to_pickle({out!r})
    lab.close()
"""


def run_together(tmp_path: Path, server, jobs: list[tuple[str, list[str]]]) -> list[pd.DataFrame]:
    """One compare child per (run name, prompts): wait until all have imported, release them at once, and
    require each to exit cleanly, without a warning from opencode_lab."""
    toml = tmp_path / "lab.toml"
    toml.write_text(lab_toml([server]))
    env = child_env(OC_CACHE_DIR=str(tmp_path / "cache"), OC_CONFIG=str(toml))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(len(jobs))]
    outs = [tmp_path / f"{run}-{i}.pkl" for i, (run, _) in enumerate(jobs)]
    children = [
        popen_python(CHILD.format(ready=str(r), go=str(go), prompts=prompts, run=run, out=str(out)), env)
        for (run, prompts), out, r in zip(jobs, outs, ready, strict=True)
    ]

    def all_ready() -> bool:
        return all(r.exists() or c.poll() is not None for r, c in zip(ready, children, strict=True))

    with reaped(children):
        wait_until(all_ready, 120, "the children's imports")
        go.touch()
        errors = [child.communicate(timeout=120)[1] for child in children]
    for child, err in zip(children, errors, strict=True):
        assert child.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert "WARNING opencode_lab" not in err, f"a child reported a problem: {err[-3000:]}"
    return [pd.read_pickle(out) for out in outs]


def assert_answers(frame: pd.DataFrame, prompts: list[str]) -> None:
    assert list(frame["prompt"]) == prompts
    assert frame["error_type"].isna().all(), frame.loc[frame["error_type"].notna(), "error"].tolist()[:3]
    assert (frame["response"] == "echo: " + frame["prompt"]).all()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_with_overlapping_compares_share_one_cache(tmp_path: Path, make_lab, monkeypatch) -> None:
    """No exception, no lost row, no corrupt entry; a shared prompt costs one provider call, two at most."""
    first = [f"shared cache prompt {i}" for i in range(200)]
    second = [f"shared cache prompt {i}" for i in range(100, 300)]
    with spawned({"latency_s": 0.02, "latency_jitter_s": 0.02, "seed": 5}) as (server,):
        frame_a, frame_b = run_together(tmp_path, server, [("kernel-a", first), ("kernel-b", second)])
        answered = Counter(e["prompt"] for e in server.log if e["outcome"] == "ok")
        calls = server.count()

        monkeypatch.setenv("OC_CACHE_DIR", str(tmp_path / "cache"))
        lab = make_lab((tmp_path / "lab.toml").read_text())
        everything = [f"shared cache prompt {i}" for i in range(300)]
        replay = lab.compare(everything, "m", temperature=0, progress=False)
        assert server.count() == calls, "an entry written by the two kernels could not be read back"

    assert_answers(frame_a, first)
    assert_answers(frame_b, second)
    assert_answers(replay, everything)
    assert replay["cached"].all()
    shared = set(first) & set(second)
    print(
        f"\nshared cache: {calls} provider calls for 300 distinct prompts; shared prompts answered twice: "
        f"{sum(1 for p in shared if answered[p] == 2)} of {len(shared)}"
    )
    assert all(answered[p] == 1 for p in set(first) ^ set(second))
    assert all(1 <= answered[p] <= 2 for p in shared)
    entries = list((tmp_path / "cache" / "responses").rglob("output.json"))
    assert len(entries) == len(everything)
    for path in entries:  # each one whole, checked as a read checks it, and filed under its own key
        entry = json.loads(path.read_bytes())
        assert decode(entry, entry["key_sha256"])["text"] and path.parent.name == entry["key_sha256"][:32]
    with sqlite3.connect(tmp_path / "cache" / "runs.sqlite") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with RunLog(tmp_path / "cache" / "runs.sqlite") as runlog:
        assert list(runlog.load_run("kernel-a")["prompt"]) == first
        assert list(runlog.load_run("kernel-b")["prompt"]) == second


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_running_the_same_named_run_send_each_row_once(tmp_path: Path) -> None:
    """The same run name started in two kernels at once is one run: each row is sent by one of them (the one
    that claimed it) and read back by the other, so both end with every answer and nothing is paid twice."""
    prompts = [f"same run prompt {i}" for i in range(150)]
    with spawned({"latency_s": 0.02, "latency_jitter_s": 0.02, "seed": 6}) as (server,):
        frames = run_together(tmp_path, server, [("together", prompts), ("together", prompts)])
        sent = Counter(e["prompt"] for e in server.log)
        calls = server.count()
    for frame in frames:
        assert_answers(frame, prompts)
    assert frames[0]["run_id"].iloc[0] == frames[1]["run_id"].iloc[0]
    print(f"\nsame named run in two kernels: {calls} provider calls for {len(prompts)} rows")
    assert calls == len(prompts) and set(sent) == set(prompts) and max(sent.values()) == 1
    with RunLog(tmp_path / "cache" / "runs.sqlite") as runlog:
        runs = runlog.runs()
        logged = runlog.load_run("together")
    assert list(runs["name"]) == ["together"]
    assert len(logged) == len(prompts) and logged["error_type"].isna().all()
    assert list(logged["prompt"]) == prompts


OPENER = """
    import pathlib, time
    from opencode_lab.session.runlog import RunLog
    folder = pathlib.Path({folder!r})
    for k in range({rounds}):
        (folder / f"ready-{{k}}-{i}").touch()
        while not (folder / f"go-{{k}}").exists():
            time.sleep(0.001)
        with RunLog(folder / f"runs-{{k}}.sqlite") as log:
            run_id = log.start_run("opened together")
            log.save_results(run_id, [{{"prompt_id": {i}, "model": "m", "sample": 0, "prompt": "p", "response": "r"}}])
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_processes_opening_a_new_run_log_at_the_same_moment_all_succeed(tmp_path: Path) -> None:
    """Four kernels creating the same run log at once (twenty rounds, a fresh file each): every one opens it,
    joins the one run and writes its row; none sees "database is locked"."""
    rounds, kernels = 20, 4
    children = [
        popen_python(OPENER.format(folder=str(tmp_path), rounds=rounds, i=i), child_env()) for i in range(kernels)
    ]
    with reaped(children):
        for k in range(rounds):
            wait_until(
                lambda k=k: all(
                    (tmp_path / f"ready-{k}-{i}").exists() or c.poll() is not None for i, c in enumerate(children)
                ),
                120,
                f"round {k}",
            )
            (tmp_path / f"go-{k}").touch()
        errors = [child.communicate(timeout=120)[1] for child in children]
    failed = [err.strip().splitlines()[-1] for child, err in zip(children, errors, strict=True) if child.returncode]
    assert not failed, failed
    for k in range(rounds):
        with RunLog(tmp_path / f"runs-{k}.sqlite") as runlog:
            assert len(runlog.runs()) == 1 and len(runlog.load_run("opened together")) == kernels


READER = """
    import json, os, pathlib
    from opencode_lab import Lab
    try:
        (pathlib.Path(os.environ["OC_CACHE_DIR"]) / "responses" / "probe").touch()
        read_only = False
    except OSError:
        read_only = True
    lab = Lab.from_env()
    frame = lab.compare({prompts!r}, "m", temperature=0, progress=False)
    new = [lab.chat("never asked before", "m", temperature=0).cached for _ in range(2)]
    lab.close()
    print(json.dumps({{"read_only": read_only, "cached": frame["cached"].tolist(),
                      "responses": frame["response"].tolist(), "new": new}}))
"""


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[list[str]]:
    """The command prefix of a child that sees *folder* read-only.  Root ignores permission bits, so as root
    the child gets a read-only bind mount of it in a mount namespace of its own (as a read-only volume or
    share is mounted); as any other user the folder's write bits are taken away while the block runs."""
    if os.geteuid() == 0:
        remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
        yield ["unshare", "--mount", "--", "sh", "-c", remount, str(folder)]
        return
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [folder, *folder.rglob("*")]}
    for path, mode in modes.items():
        path.chmod(mode & ~0o222)
    try:
        yield []
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_a_read_only_cache_folder_still_answers_and_warns_once_about_writes(
    tmp_path: Path, fault, fault_toml, make_lab
) -> None:
    """Every cached row is served from a folder the kernel cannot write to (none is paid again); a new answer
    is paid once, kept in memory for the session, and the refused write is one warning naming the folder."""
    prompts = [f"read-only prompt {i}" for i in range(20)]
    toml = tmp_path / "lab.toml"
    toml.write_text(fault_toml(fault))
    first = make_lab(toml.read_text()).compare(prompts, "m", temperature=0, progress=False)
    folder = Path(os.environ["OC_CACHE_DIR"]) / "responses"
    paid = fault.count()
    with read_only(folder) as prefix:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", textwrap.dedent(READER.format(prompts=prompts))],
            env=child_env(OC_CONFIG=str(toml)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode and done.stderr.startswith(("unshare:", "mount:")):
        pytest.skip(f"no read-only mount can be made here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["read_only"], "the child could write to the folder: the test proves nothing"
    assert seen["cached"] == [True] * len(prompts) and seen["responses"] == first["response"].tolist()
    assert seen["new"] == [False, True] and fault.count() == paid + 1
    (warning,) = [line for line in done.stderr.splitlines() if line.startswith("WARNING opencode_lab")]
    assert f"cannot store answers in the cache folder {folder}" in warning
