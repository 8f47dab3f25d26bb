"""Shared set-up for the benchmarks: a spawned loopback fault server and a Lab pointed at it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from opencode_lab import Lab
from opencode_lab.testing import FaultServer


def lab_for(server_url: str, *, cache: str = "off", runlog: bool = True, extra: str = "") -> Lab:
    """A Lab with one deployment ``m`` on *server_url*, its own temporary cache folder and run log."""
    folder = Path(tempfile.mkdtemp(prefix="oc-bench-"))
    os.environ["OC_CACHE_DIR"] = str(folder)
    toml = folder / "bench.toml"
    runlog_line = "" if runlog else 'runlog = "off"'
    toml.write_text(
        f'[providers.bench]\nbase_url = "{server_url}"\n'
        '[models.m]\nprovider = "bench"\nupstream = "fault-model"\n'
        f'[cache]\nmode = "{cache}"\n'
        f"[lab]\nmax_concurrency = 64\n{runlog_line}\n{extra}"
    )
    return Lab.from_file(toml)


def spawn(**settings: object):
    return FaultServer.spawn(**settings)
