"""Cache-hit latency and replaying a fully cached 10,000-row compare, in this process and in a fresh one.

Targets (issue 22): median cache hit through ``chat()`` under 0.1 ms; a 10,000-row fully
cached compare replayed in under 0.5 s in the process that filled the cache and under
1.0 s in a fresh process (a new interpreter, Lab and cache, nothing warm but the OS's
file cache).  Prints every figure, the replays with the CPU time they took (on a shared machine
the wall time also counts waiting for a core); the last line is the same-process replay time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import lab_for, spawn

import opencode_lab

ROWS = 10_000
HITS = 2_000
FRESH = """
import json, sys, time
started = time.perf_counter()
from opencode_lab import Lab
lab = Lab.from_file(sys.argv[1])
built = time.perf_counter()
import pandas  # as a notebook's first cell does; timed apart, it is not the cache's
ready, cpu = time.perf_counter(), time.process_time()
frame = lab.compare([f"prompt {i}" for i in range(int(sys.argv[2]))], "m", progress=False, concurrency=50)
replay, cpu = time.perf_counter() - ready, time.process_time() - cpu
assert frame["cached"].all(), "the fresh process missed the cache"
lab.close()
print(json.dumps({"start_s": built - started, "pandas_s": ready - built, "replay_s": replay, "cpu_s": cpu}))
"""


def fresh_replay(toml: Path) -> dict[str, float]:
    """Replay the compare in a new interpreter on the same cache folder (the child's own timings), importing
    opencode_lab from where this process did."""
    here = str(Path(opencode_lab.__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-c", FRESH, str(toml), str(ROWS)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(f"the fresh-process replay failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with spawn() as server:
        lab = lab_for(server.base_url, cache="file")
        prompts = [f"prompt {i}" for i in range(ROWS)]
        started = time.perf_counter()
        first = lab.compare(prompts, "m", progress=False, concurrency=50)
        fill_s = time.perf_counter() - started
        sent = len(server.log)
        hits = []
        for i in range(HITS):
            t = time.perf_counter()
            lab.chat(f"prompt {i}", "m")
            hits.append(time.perf_counter() - t)
        started, cpu = time.perf_counter(), time.process_time()
        replay = lab.compare(prompts, "m", progress=False, concurrency=50)
        replay_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        assert replay["cached"].all() and list(replay["response"]) == list(first["response"])
        lab.close()
        fresh = fresh_replay(lab.settings.cache_dir / "bench.toml")
        assert len(server.log) == sent, "a cached replay must not reach the server"
    hits.sort()
    print(f"filled {ROWS} rows in {fill_s:.1f} s", file=sys.stderr)
    print(
        f"cache hit via chat(): median {statistics.median(hits) * 1e3:.3f} ms, "
        f"p95 {hits[int(0.95 * len(hits))] * 1e3:.3f} ms ({HITS} hits)",
        file=sys.stderr,
    )
    print(f"replay of {ROWS} cached rows, same process: {replay_s:.2f} s ({cpu_s:.2f} s CPU)", file=sys.stderr)
    print(
        f"replay of {ROWS} cached rows, fresh process: {fresh['replay_s']:.2f} s ({fresh['cpu_s']:.2f} s CPU; "
        f"before it: {fresh['start_s']:.2f} s import and Lab start, {fresh['pandas_s']:.2f} s import pandas)",
        file=sys.stderr,
    )
    print(f"{replay_s:.2f}")


if __name__ == "__main__":
    main()
