"""loop: coroutines hop to the Lab's own loop from any other loop, and come back with their outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from opencode_lab.session.loop import LoopThread


@pytest.fixture
def owned() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def _thread_name() -> str:
    return threading.current_thread().name


def test_a_hop_runs_on_the_owned_loop_and_returns_its_value(owned: LoopThread) -> None:
    async def where() -> str:
        return _thread_name()

    async def caller() -> str:
        return await owned.hop(where())

    assert asyncio.run(caller()) == "opencode-lab-loop"


def test_an_exception_raised_there_arrives_here(owned: LoopThread) -> None:
    async def fails() -> None:
        raise KeyError("there")

    async def caller() -> None:
        await owned.hop(fails())

    with pytest.raises(KeyError, match="there"):
        asyncio.run(caller())


def test_cancelling_the_caller_cancels_the_coroutine_on_the_owned_loop(owned: LoopThread) -> None:
    started, stopped = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    async def caller() -> None:
        task = asyncio.ensure_future(owned.hop(forever()))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(caller())
    assert stopped.wait(10)


def test_a_coroutine_cancelled_there_is_cancelled_here(owned: LoopThread) -> None:
    async def cancels_itself() -> None:
        raise asyncio.CancelledError

    async def caller() -> None:
        await owned.hop(cancels_itself())

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(caller())


def test_many_concurrent_hops_each_get_their_own_answer(owned: LoopThread) -> None:
    async def echo(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def caller() -> list[int]:
        return await asyncio.gather(*(owned.hop(echo(i)) for i in range(500)))

    assert asyncio.run(caller()) == list(range(500))


def test_hops_from_two_foreign_loops_at_once_both_complete(owned: LoopThread) -> None:
    async def echo(i: int) -> int:
        return i

    results: dict[str, list[int]] = {}

    def run(name: str) -> None:
        async def caller() -> list[int]:
            return await asyncio.gather(*(owned.hop(echo(i)) for i in range(200)))

        results[name] = asyncio.run(caller())

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": list(range(200)), "b": list(range(200))}
