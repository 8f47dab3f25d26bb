"""Throughput against real rate limits: three deployments each allowed N requests per window.

Three spawned fault servers (10 ms each) serve one model ``m``; each deployment has
``rpm = N`` with the window scaled down to 1 s (``rate_window_s = 1``), so the
combined limit is 3N requests per second.  One compare() sends ROWS prompts at
concurrency 64 (cache and run log off).  Reported, from the servers' own logs:

- the steady rate: requests after the first window's burst divided by the time from the
  first to the last request (goal: >= 95 % of the combined limit);
- the most requests any server saw in any 1 s window (over N would have been a 429 upstream:
  goal 0 over), and the 429s the Lab received (goal 0);
- how many requests each server got: an uneven split leaves one deployment a window behind.

Three rounds, each with a fresh Lab and the servers' logs reset; the last line is the median steady
rate as a fraction of the combined limit.
"""

from __future__ import annotations

import bisect
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import spawn

from opencode_lab import Lab

N, WINDOW_S, ROWS, SERVERS, ROUNDS = 30, 1.0, 900, 3, 3


def most_in_window(times: list[float], window_s: float) -> int:
    """The most *times* in any half-open window ``[t, t + window_s)``."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0)


def limited_lab(urls: list[str]) -> Lab:
    folder = Path(tempfile.mkdtemp(prefix="oc-bench-"))
    os.environ["OC_CACHE_DIR"] = str(folder)
    toml = "".join(f'[providers.s{i}]\nbase_url = "{url}"\n' for i, url in enumerate(urls))
    toml += "".join(
        f'[[models.m.deployments]]\nprovider = "s{i}"\nupstream = "fault-model"\nrpm = {N}\n' for i in range(len(urls))
    )
    toml += f'[cache]\nmode = "off"\n[lab]\nrunlog = "off"\nmax_concurrency = 64\nrate_window_s = {WINDOW_S}\n'
    (folder / "bench.toml").write_text(toml)
    return Lab.from_file(folder / "bench.toml")


def one_round(servers: list, combined: float) -> float:
    """One compare through a fresh Lab; prints the round's figures and returns its steady rate / combined."""
    for server in servers:
        server.reset()
    with limited_lab([s.base_url for s in servers]) as lab:
        started = time.perf_counter()
        frame = lab.compare([f"limited {i}" for i in range(ROWS)], "m", concurrency=64, progress=False)
        elapsed = time.perf_counter() - started
    logs = [s.log for s in servers]
    times = sorted(e["t"] for log in logs for e in log)
    steady = (len(times) - SERVERS * N) / (times[-1] - times[0])
    peak = [most_in_window([e["t"] for e in log], WINDOW_S) for log in logs]
    got_429 = int((frame["error_type"] == "rate_limit").sum())
    failed = int(frame["error_type"].notna().sum())
    print(f"compare(): {elapsed:.2f} s; failed rows {failed}; 429s received {got_429}")
    print(f"steady rate {steady:.1f}/s = {steady / combined:.1%} of the combined limit (goal >= 95 %)")
    print(f"requests per server: {[len(log) for log in logs]}")
    print(f"most requests a server saw in any window: {peak} (limit {N}; over the limit: {sum(p > N for p in peak)})")
    return steady / combined


def main() -> None:
    combined = SERVERS * N / WINDOW_S
    print(f"{SERVERS} deployments x rpm={N} per {WINDOW_S:g} s window (combined {combined:g}/s), {ROWS} rows")
    servers = [spawn(latency_s=0.01) for _ in range(SERVERS)]
    try:
        fractions = [one_round(servers, combined) for _ in range(ROUNDS)]
    finally:
        for server in servers:
            server.stop()
    print(f"steady rate over {ROUNDS} rounds: {', '.join(f'{f:.1%}' for f in fractions)}")
    print(f"{statistics.median(fractions):.3f}")


if __name__ == "__main__":
    main()
