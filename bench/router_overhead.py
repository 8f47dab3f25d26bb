"""Throughput of the full library against raw httpx at its best, in one run, on one fast loopback server.

N=2,000 chat requests at concurrency 50, four ways, in alternating rounds (the order rotates, so a load
spike on this shared machine hits every way in turn):

- ``raw50`` / ``raw16``: raw ``httpx.AsyncClient`` POSTs on a pool of 50 / 16 connections.  httpcore's pool
  scans every connection per request, so fewer connections can be faster: raw httpx *at its best* is the
  faster of the two in the same round.
- ``compare``: ``lab.compare()`` of the 2,000 prompts at concurrency 50 (cache off, run log on).
- ``achat``: ``await lab.achat()`` from a foreign event loop (``asyncio.run``, as LiteLLM's ``acompletion``
  is used), 50 at a time (cache off, run log on).
- ``rawkeep``: raw httpx again, on the connection pool the library's providers use (`KeepAlivePool`), for
  reference: what the library's own bookkeeping costs on equal HTTP footing (not part of the targets).

Every round reports, for every way: requests per second, client CPU per request (this process, every
thread: ``getrusage``, over the timed requests), and the connections the server accepted (warm-up
included).  Targets (issue 22): compare() >= 0.95x and achat >= 0.9x raw httpx at its best.  The last
line is compare()'s median ratio.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import time
from collections.abc import Callable

import httpx
from _common import lab_for, spawn

from opencode_lab.providers.pool import KeepAlivePool

N = 2_000
CONCURRENCY = 50
ROUNDS = 5
WAYS = ("raw50", "raw16", "compare", "achat", "rawkeep")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Timed = tuple[float, float]  # (wall seconds, CPU seconds) of the N requests


async def raw(url: str, connections: int, *, keep_alive_pool: bool = False) -> Timed:
    """N raw POSTs (after one warm-up request), each answer parsed as the library would."""
    limit = asyncio.Semaphore(CONCURRENCY)
    pool = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = KeepAlivePool(pool) if keep_alive_pool else None
    async with httpx.AsyncClient(base_url=url, limits=pool, transport=transport) as client:

        async def one(i: int) -> None:
            async with limit:
                body = {"model": "fault-model", "messages": [{"role": "user", "content": f"raw {i}"}]}
                response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
                response.json()["choices"][0]["message"]["content"]

        await one(-1)
        started, cpu = time.perf_counter(), cpu_s()
        await asyncio.gather(*(one(i) for i in range(N)))
        return time.perf_counter() - started, cpu_s() - cpu


def compared(url: str) -> Timed:
    with lab_for(url) as lab:
        lab.chat("warm-up", "m")
        started, cpu = time.perf_counter(), cpu_s()
        frame = lab.compare([f"compared {i}" for i in range(N)], "m", concurrency=CONCURRENCY, progress=False)
        timed = time.perf_counter() - started, cpu_s() - cpu
    assert frame["error_type"].isna().all(), frame["error"].dropna().unique()[:3]
    return timed


def achat(url: str) -> Timed:
    with lab_for(url) as lab:

        async def foreign() -> Timed:
            limit = asyncio.Semaphore(CONCURRENCY)

            async def one(i: int) -> None:
                async with limit:
                    await lab.achat(f"routed {i}", "m")

            await lab.achat("warm-up", "m")
            started, cpu = time.perf_counter(), cpu_s()
            await asyncio.gather(*(one(i) for i in range(N)))
            return time.perf_counter() - started, cpu_s() - cpu

        return asyncio.run(foreign())


def main() -> None:
    """Alternate the ways on one server; every figure of every round is printed, then the medians."""
    runs: dict[str, Callable[[str], Timed]] = {
        "raw50": lambda url: asyncio.run(raw(url, 50)),
        "raw16": lambda url: asyncio.run(raw(url, 16)),
        "compare": compared,
        "achat": achat,
        "rawkeep": lambda url: asyncio.run(raw(url, 100, keep_alive_pool=True)),
    }
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    ratios: dict[str, list[float]] = {"compare": [], "achat": [], "rawkeep": []}
    with spawn() as server:
        for round_ in range(ROUNDS):
            order = WAYS[round_ % len(WAYS) :] + WAYS[: round_ % len(WAYS)]
            line = []
            for way in order:
                before = server.connections
                elapsed, cpu = runs[way](server.base_url)
                cpu_us = cpu / N * 1e6
                opened = server.connections - before - 1  # the count's own request is one
                rates[way].append(N / elapsed)
                line.append(f"{way} {N / elapsed:5.0f}/s {cpu_us:4.0f} µs CPU {opened:2d} conn")
            best = max(rates["raw50"][-1], rates["raw16"][-1])
            for way in ratios:
                ratios[way].append(rates[way][-1] / best)
            print(
                f"round {round_ + 1}: "
                + " | ".join(line)
                + f" || compare {ratios['compare'][-1]:.2f}x achat {ratios['achat'][-1]:.2f}x"
                + f" (rawkeep {ratios['rawkeep'][-1]:.2f}x) of raw at its best",
                file=sys.stderr,
            )
    for way in WAYS:
        print(f"{way:8s}: median {statistics.median(rates[way]):5.0f} req/s", file=sys.stderr)
    for way, values in ratios.items():
        shown = ", ".join(f"{r:.2f}" for r in values)
        print(f"{way} / raw httpx at its best: median {statistics.median(values):.2f}x ({shown})", file=sys.stderr)
    print(f"{statistics.median(ratios['compare']):.2f}")


if __name__ == "__main__":
    main()
