"""Throughput of the full router against raw httpx, in one run, on one fast loopback server.

N=2,000 chat requests at concurrency 50: first raw ``httpx.AsyncClient`` POSTs,
then ``Lab.achat`` through catalog, strategy, rate limiter, circuit breaker,
attempt records and the SQLite run log (cache off).  Three alternating rounds
of each; the last line printed is the router's median throughput divided by
raw httpx's.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import httpx
from _common import lab_for, spawn

N = 2_000
CONCURRENCY = 50
ROUNDS = 3


async def raw(url: str) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
    ) as client:

        async def one(i: int) -> None:
            async with limit:
                body = {"model": "fault-model", "messages": [{"role": "user", "content": f"raw {i}"}]}
                response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
                response.json()["choices"][0]["message"]["content"]

        await one(-1)  # one warm-up request, as the router run gets
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(N)))
        return N / (time.perf_counter() - started)


async def routed(url: str) -> float:
    lab = lab_for(url)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with limit:
            await lab.achat(f"routed {i}", "m")

    try:
        await lab.achat("warm-up", "m")
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(N)))
        rate = N / (time.perf_counter() - started)
        for provider in lab.providers.values():
            await provider.aclose()
        return rate
    finally:
        lab.flush()


def main() -> None:
    """Alternate raw and routed rounds on the same server and compare medians, so load spikes hit both."""
    raw_rates, router_rates = [], []
    with spawn() as server:
        for _ in range(ROUNDS):
            raw_rates.append(asyncio.run(raw(server.base_url)))
            router_rates.append(asyncio.run(routed(server.base_url)))
    raw_rate, router_rate = statistics.median(raw_rates), statistics.median(router_rates)
    print(f"raw httpx       : {raw_rate:6.0f} req/s (rounds: {', '.join(f'{r:.0f}' for r in raw_rates)})",
          file=sys.stderr)
    print(f"opencode_lab    : {router_rate:6.0f} req/s (rounds: {', '.join(f'{r:.0f}' for r in router_rates)})",
          file=sys.stderr)
    print(f"overhead/request: {(1 / router_rate - 1 / raw_rate) * 1e3:.2f} ms", file=sys.stderr)
    print(f"{router_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
