"""1,000 requests against a loopback server that takes 100 ms each, at concurrency 50.

The ideal is 1,000 / 50 x 0.1 s = 2.0 s; the target is within 15% (2.3 s).
The last line is the measured time divided by the ideal.
"""

from __future__ import annotations

import sys
import time

from _common import lab_for, spawn

N, CONCURRENCY, LATENCY = 1_000, 50, 0.1


def main() -> None:
    with spawn(latency_s=LATENCY) as server:
        lab = lab_for(server.base_url)
        lab.chat("warm-up", "m")
        started = time.perf_counter()
        frame = lab.compare([f"q{i}" for i in range(N)], "m", concurrency=CONCURRENCY, progress=False)
        elapsed = time.perf_counter() - started
        lab.close()
    ideal = N / CONCURRENCY * LATENCY
    ok = frame["error_type"].isna().sum()
    print(
        f"{N} requests ({ok} ok) at concurrency {CONCURRENCY}: {elapsed:.2f} s (ideal {ideal:.2f} s)", file=sys.stderr
    )
    print(f"{elapsed / ideal:.2f}")


if __name__ == "__main__":
    main()
