"""Every routing strategy on two equal and two unequal loopback servers: who served how much, and how fast.

Two spawned fault servers per pair: equal (20 ms and 20 ms) and unequal (20 ms and
60 ms).  For each strategy and pair, a fresh Lab sends 40 chats one at a time, then
a compare() of 200 prompts at concurrency 8; three rounds after one warm-up run.  A
row shows the share the first (20 ms) server served (mean over the rounds) and the
median total time of each run.  The last line is least_latency's concurrent time on
the equal pair divided by round_robin's (goal: <= 1.0, within noise).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import spawn

from opencode_lab import Lab
from opencode_lab.routing.strategies import strategy_names

SEQUENTIAL, BATCH, CONCURRENCY, ROUNDS = 40, 200, 8, 3
PAIRS = {"equal 20/20 ms": (0.02, 0.02), "unequal 20/60 ms": (0.02, 0.06)}


def lab_for_pair(urls: tuple[str, str], strategy: str) -> Lab:
    """One model ``m`` with a deployment on each server (``s0/x``, ``s1/x``), cache and run log off."""
    folder = Path(tempfile.mkdtemp(prefix="oc-bench-"))
    os.environ["OC_CACHE_DIR"] = str(folder)
    toml = "".join(f'[providers.s{i}]\nbase_url = "{url}"\n' for i, url in enumerate(urls))
    toml += "".join(f'[[models.m.deployments]]\nprovider = "s{i}"\nupstream = "x"\n' for i in range(2))
    toml += f'[cache]\nmode = "off"\n[lab]\nrunlog = "off"\nmax_concurrency = 64\nstrategy = "{strategy}"\n'
    (folder / "bench.toml").write_text(toml)
    return Lab.from_file(folder / "bench.toml")


def run(urls: tuple[str, str], strategy: str) -> tuple[float, float, float, float]:
    """(first server's share, seconds) one at a time, then the same for a concurrent compare()."""
    with lab_for_pair(urls, strategy) as lab:
        started = time.perf_counter()
        served = Counter(lab.chat(f"one {i}", "m").served_by for i in range(SEQUENTIAL))
        sequential_s = time.perf_counter() - started
        started = time.perf_counter()
        frame = lab.compare([f"many {i}" for i in range(BATCH)], "m", concurrency=CONCURRENCY, progress=False)
        batch_s = time.perf_counter() - started
    assert frame["error_type"].isna().all(), "a benchmark request failed"
    batch = Counter(frame["served_by"])
    return served["s0/x"] / SEQUENTIAL, sequential_s, batch["s0/x"] / BATCH, batch_s


def main() -> None:
    servers = {name: [spawn(latency_s=latency) for latency in pair] for name, pair in PAIRS.items()}
    times: dict[tuple[str, str], float] = {}
    try:
        run(tuple(s.base_url for s in next(iter(servers.values()))), "round_robin")  # warm-up: imports, pools
        print(
            f"{'strategy':<14}{'servers':<18}{'1-at-a-time split':>18}{'time':>8}"
            f"{f'concurrency {CONCURRENCY} split':>24}{'time':>8}",
            file=sys.stderr,
        )
        for strategy in strategy_names():
            for name, pair in servers.items():
                urls = (pair[0].base_url, pair[1].base_url)
                rounds = [run(urls, strategy) for _ in range(ROUNDS)]
                share, seq_s, batch_share, batch_s = (
                    statistics.fmean(column) if i % 2 == 0 else statistics.median(column)
                    for i, column in enumerate(zip(*rounds, strict=True))
                )
                times[strategy, name] = batch_s
                print(
                    f"{strategy:<14}{name:<18}{f'{share:.0%} / {1 - share:.0%}':>18}{seq_s:>7.2f}s"
                    f"{f'{batch_share:.0%} / {1 - batch_share:.0%}':>24}{batch_s:>7.2f}s",
                    file=sys.stderr,
                )
    finally:
        for pair in servers.values():
            for server in pair:
                server.stop()
    equal = next(iter(PAIRS))
    print(f"{times['least_latency', equal] / times['round_robin', equal]:.2f}")


if __name__ == "__main__":
    main()
