"""The keep-alive pool under every provider's client, against a real loopback server that counts connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import pytest

from opencode_lab import ChatRequest
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.providers.pool import KeepAlivePool
from opencode_lab.testing import FaultServer

T = TypeVar("T")
CHAT = {"model": "fault-model", "messages": [{"role": "user", "content": "hi"}]}


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def client(server: FaultServer, pool: KeepAlivePool, **kw: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, transport=pool, trust_env=False, **kw)  # type: ignore[arg-type]


def chat(prompt: str = "hi") -> dict[str, object]:
    return {**CHAT, "messages": [{"role": "user", "content": prompt}]}


def limits(connections: int, keepalive: int | None = None, expiry: float | None = 5.0) -> httpx.Limits:
    return httpx.Limits(
        max_connections=connections, max_keepalive_connections=keepalive or connections, keepalive_expiry=expiry
    )


def test_requests_one_after_another_share_one_connection(fault: FaultServer) -> None:
    before = fault.connections

    async def main() -> list[int]:
        async with client(fault, KeepAlivePool(limits(10))) as c:
            return [(await c.post("/chat/completions", json=chat())).status_code for _ in range(5)]

    assert run(main()) == [200] * 5
    assert fault.connections - before == 1


def test_no_more_than_max_connections_are_open_and_the_rest_wait_their_turn(fault: FaultServer) -> None:
    fault.configure(latency_s=0.05)
    pool, before = KeepAlivePool(limits(3)), fault.connections
    most = 0

    async def one(c: httpx.AsyncClient, i: int) -> int:
        nonlocal most
        response = await c.post("/chat/completions", json=chat(f"p{i}"))
        most = max(most, pool.connections)
        return response.status_code

    async def main() -> list[int]:
        async with client(fault, pool) as c:
            return await asyncio.gather(*(one(c, i) for i in range(12)))

    assert run(main()) == [200] * 12
    assert fault.connections - before == 3 and most == 3


def test_a_request_waiting_past_its_pool_timeout_is_a_pool_timeout(fault: FaultServer) -> None:
    fault.configure(hang_s=5.0)

    async def main() -> None:
        async with client(fault, KeepAlivePool(limits(1)), timeout=httpx.Timeout(10.0, pool=0.2)) as c:
            hanging = asyncio.ensure_future(c.post("/chat/completions", json=chat("[[fault:hang]]")))
            await asyncio.sleep(0.1)
            with pytest.raises(httpx.PoolTimeout):
                await c.post("/chat/completions", json=chat())
            hanging.cancel()

    run(main())


def test_a_cancelled_exchange_closes_its_connection_and_frees_its_place(fault: FaultServer) -> None:
    fault.configure(hang_s=5.0)
    pool, before = KeepAlivePool(limits(1)), fault.connections

    async def main() -> int:
        async with client(fault, pool) as c:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await c.post("/chat/completions", json=chat("[[fault:hang]]"))
            assert pool.connections == 0
            return (await c.post("/chat/completions", json=chat())).status_code

    assert run(main()) == 200
    assert fault.connections - before == 2  # the hung one was not reused


def test_a_connection_the_server_closed_is_not_reused(fault: FaultServer) -> None:
    before = fault.connections

    async def main() -> list[int | str]:
        async with client(fault, KeepAlivePool(limits(4))) as c:
            out: list[int | str] = []
            for prompt in ("hi", "[[fault:reset]]", "hi"):
                try:
                    out.append((await c.post("/chat/completions", json=chat(prompt))).status_code)
                except httpx.TransportError as exc:  # httpx's error, not httpcore's
                    out.append(type(exc).__name__)
            return out

    statuses = run(main())
    assert statuses[0] == 200 and statuses[2] == 200 and statuses[1] in ("ReadError", "RemoteProtocolError")
    assert fault.connections - before == 2


def test_idle_connections_beyond_the_keepalive_limit_are_closed(fault: FaultServer) -> None:
    fault.configure(latency_s=0.05)
    pool = KeepAlivePool(limits(4, keepalive=1))

    async def main() -> None:
        async with client(fault, pool) as c:
            await asyncio.gather(*(c.post("/chat/completions", json=chat(f"p{i}")) for i in range(4)))
            assert pool.connections == 1

    run(main())


def test_an_idle_connection_older_than_the_keepalive_expiry_is_not_reused(fault: FaultServer) -> None:
    before = fault.connections

    async def main() -> None:
        async with client(fault, KeepAlivePool(limits(4, expiry=0.05))) as c:
            await c.post("/chat/completions", json=chat())
            await asyncio.sleep(0.1)
            await c.post("/chat/completions", json=chat())

    run(main())
    assert fault.connections - before == 2


def test_a_refused_connection_is_httpx_connect_error_and_leaves_no_connection_counted() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    pool = KeepAlivePool(limits(2))

    async def main() -> None:
        async with httpx.AsyncClient(transport=pool, trust_env=False) as c:
            with pytest.raises(httpx.ConnectError):
                await c.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT)

    run(main())
    assert pool.connections == 0


def test_a_provider_keeps_a_bursts_connections_for_the_next_burst(fault: FaultServer) -> None:
    """No churn: every connection a burst opened serves the next one (closing them as they came back reopened
    hundreds per 2,000 fast requests)."""
    fault.configure(latency_s=0.02)
    provider = OpenAICompatibleProvider("test", fault.base_url)
    before = fault.connections

    async def main() -> None:
        for _ in range(2):
            await asyncio.gather(*(provider.complete("fault-model", ChatRequest.build(f"p{i}")) for i in range(30)))
        await provider.aclose()

    run(main())
    assert fault.connections - before == 30
