"""1,000 requests against a loopback server that takes 100 ms each, at concurrency 50.

The ideal is 1,000 / 50 x 0.1 s = 2.0 s; the target is within 15% (2.3 s).  Raw
``httpx.AsyncClient`` doing the same in the same run shows how much of the gap
is the HTTP client's own CPU time.  The last line is compare()'s time divided
by the ideal.
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx
from _common import lab_for, spawn

N, CONCURRENCY, LATENCY = 1_000, 50, 0.1


async def raw(url: str) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def one(i: int) -> None:
            async with limit:
                body = {"model": "fault-model", "messages": [{"role": "user", "content": f"raw {i}"}]}
                (await client.post("/chat/completions", json=body)).raise_for_status()

        await one(-1)
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(N)))
        return time.perf_counter() - started


def main() -> None:
    with spawn(latency_s=LATENCY) as server:
        raw_s = asyncio.run(raw(server.base_url))
        lab = lab_for(server.base_url)
        lab.chat("warm-up", "m")
        started = time.perf_counter()
        frame = lab.compare([f"q{i}" for i in range(N)], "m", concurrency=CONCURRENCY, progress=False)
        elapsed = time.perf_counter() - started
        lab.close()
    ideal = N / CONCURRENCY * LATENCY
    ok = frame["error_type"].isna().sum()
    print(f"raw httpx: {raw_s:.2f} s ({raw_s / ideal:.2f} x ideal)", file=sys.stderr)
    print(f"compare(): {N} requests ({ok} ok): {elapsed:.2f} s (ideal {ideal:.2f} s)", file=sys.stderr)
    print(f"{elapsed / ideal:.2f}")


if __name__ == "__main__":
    main()
