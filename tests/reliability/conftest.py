"""Helpers shared by the reliability tests: spawned fault servers, child Python processes, window counts."""

from __future__ import annotations

import bisect
import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from opencode_lab.core.vendors import VENDORS
from opencode_lab.testing import FaultServer, SpawnedFaultServer

REPO = Path(__file__).resolve().parents[2]


def busiest_window(times: Iterable[float], window_s: float) -> int:
    """The largest number of *times* inside any half-open window ``[t, t + window_s)`` (every start time)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0)


@contextlib.contextmanager
def spawned(*settings: Mapping[str, Any]) -> Iterator[list[SpawnedFaultServer]]:
    """One fault server subprocess per settings mapping; all stopped on exit, even after a failure."""
    servers: list[SpawnedFaultServer] = []
    try:
        for each in settings:
            servers.append(FaultServer.spawn(**each))
        yield servers
    finally:
        for server in servers:
            server.stop()


def child_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a child Python: this one, minus provider settings, plus *overrides* (None unsets)."""
    env = dict(os.environ)
    for var in (*VENDORS.variables, "OC_RUNLOG"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def popen_python(code: str, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``python -c code`` (dedented) with pipes for stdout and stderr."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def reaped(children: Iterable[subprocess.Popen[str]]) -> Iterator[None]:
    """Whatever happens inside, no child process outlives the block."""
    try:
        yield
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.02) -> None:
    """Poll *condition* until it holds; fail the test naming *what* after *timeout_s*."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def lab_toml(servers: Iterable[Any], *, model: str = "m", lab: Mapping[str, Any] | None = None, **dep: Any) -> str:
    """TOML for one deployment of *model* per server (providers f0, f1, ...) plus a ``[lab]`` table."""
    servers = list(servers)
    lines: list[str] = []
    for i, server in enumerate(servers):
        lines += [f"[providers.f{i}]", f'base_url = "{server.base_url}"', ""]
    for i in range(len(servers)):
        lines += [f"[[models.{model}.deployments]]", f'provider = "f{i}"', 'upstream = "fault-model"']
        lines += [f"{k} = {_toml(v)}" for k, v in dep.items()]
        lines.append("")
    if lab:
        lines += ["[lab]", *(f"{k} = {_toml(v)}" for k, v in lab.items()), ""]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
