"""Cache-hit latency and replaying a fully cached 10,000-row compare.

Targets: median cache hit under 2 ms; a 10,000-row fully cached compare
replayed in under 10 s.  Prints both figures; the last line is the replay time.
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import lab_for, spawn

ROWS = 10_000


def main() -> None:
    with spawn() as server:
        lab = lab_for(server.base_url, cache="file")
        prompts = [f"prompt {i}" for i in range(ROWS)]
        started = time.perf_counter()
        first = lab.compare(prompts, "m", progress=False, concurrency=50)
        fill_s = time.perf_counter() - started
        sent = len(server.log)
        hits = []
        for i in range(500):
            t = time.perf_counter()
            lab.chat(f"prompt {i}", "m")
            hits.append(time.perf_counter() - t)
        started = time.perf_counter()
        replay = lab.compare(prompts, "m", progress=False, concurrency=50)
        replay_s = time.perf_counter() - started
        assert len(server.log) == sent, "a cached replay must not reach the server"
        assert replay["cached"].all() and list(replay["response"]) == list(first["response"])
        lab.close()
    print(f"filled {ROWS} rows in {fill_s:.1f} s", file=sys.stderr)
    print(
        f"cache hit via chat(): median {statistics.median(hits) * 1e3:.2f} ms, "
        f"p95 {sorted(hits)[int(0.95 * len(hits))] * 1e3:.2f} ms",
        file=sys.stderr,
    )
    print(f"replay of {ROWS} cached rows: {replay_s:.2f} s", file=sys.stderr)
    print(f"{replay_s:.2f}")


if __name__ == "__main__":
    main()
