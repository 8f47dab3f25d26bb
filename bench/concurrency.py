"""1,000 requests against a loopback server that takes 100 ms each, at concurrency 50.

The ideal is 1,000 / 50 x 0.1 s = 2.0 s; the target is within 15% (2.3 s).  Raw
``httpx.AsyncClient`` (50 pooled connections) doing the same, in alternating rounds on the
same server, shows how much of the gap is the machine and the HTTP client.  Every round
reports both times, the client's CPU time (this process, every thread) and the connections
the server accepted (warm-up included).  The last line is compare()'s median time divided
by the ideal.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import time

import httpx
from _common import lab_for, spawn

N, CONCURRENCY, LATENCY, ROUNDS = 1_000, 50, 0.1, 3


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


def compared(url: str) -> float:
    with lab_for(url) as lab:
        lab.chat("warm-up", "m")
        started = time.perf_counter()
        frame = lab.compare([f"q{i}" for i in range(N)], "m", concurrency=CONCURRENCY, progress=False)
        elapsed = time.perf_counter() - started
    failed = int(frame["error_type"].notna().sum())
    assert not failed, f"{failed} rows failed"
    return elapsed


def main() -> None:
    ideal = N / CONCURRENCY * LATENCY
    times: dict[str, list[float]] = {"raw": [], "compare": []}
    runs = {"raw": lambda url: asyncio.run(raw(url)), "compare": compared}
    with spawn(latency_s=LATENCY) as server:
        for round_ in range(ROUNDS):
            line = []
            for way in ("raw", "compare") if round_ % 2 == 0 else ("compare", "raw"):
                before, cpu = server.connections, cpu_s()
                elapsed = runs[way](server.base_url)
                cpu_ms = (cpu_s() - cpu) / N * 1e3
                opened = server.connections - before - 1  # the count's own request is one
                times[way].append(elapsed)
                line.append(f"{way} {elapsed:.2f} s ({elapsed / ideal:.2f}x ideal, {cpu_ms:.2f} ms CPU, {opened} conn)")
            print(f"round {round_ + 1}: " + " | ".join(line), file=sys.stderr)
    raw_s, compare_s = statistics.median(times["raw"]), statistics.median(times["compare"])
    print(f"raw httpx: median {raw_s:.2f} s ({raw_s / ideal:.2f} x ideal {ideal:.1f} s)", file=sys.stderr)
    print(f"compare(): median {compare_s:.2f} s ({compare_s / ideal:.2f} x ideal)", file=sys.stderr)
    print(f"{compare_s / ideal:.2f}")


if __name__ == "__main__":
    main()
