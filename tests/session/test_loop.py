"""loop: coroutines hop to the Lab's own loop from any other loop, and come back with their outcome."""

from __future__ import annotations

import asyncio
import functools
import itertools
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

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


class _Work:
    """A coroutine that says whether it started, was cancelled, or ran to its end (*seconds* after starting)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = self.cancelled = self.finished = False
        self.running = threading.Event()

    async def run(self) -> None:
        self.started = True
        self.running.set()
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.finished = True


async def _a_few_turns() -> None:
    """Let the owned loop run what an interrupted call posted to it (a start, a cancellation)."""
    for _ in range(3):
        await asyncio.sleep(0)


def _interrupted_at(point: int, call: Callable[[], object], work: _Work) -> tuple[bool, bool]:
    """Run *call* on this thread with a KeyboardInterrupt raised at its *point*-th place where CPython 3.11
    checks for signals (a function's entry, just after a call returns): whether it was raised, and whether
    *work* had already finished then."""
    seen = 0
    finished_then = False
    this = threading.current_thread()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen, finished_then
        if threading.current_thread() is not this:
            return None
        if event in ("call", "return"):
            seen += 1
            if seen == point:
                finished_then = work.finished
                raise KeyboardInterrupt
        return tracer

    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        call()
    except KeyboardInterrupt:
        return True, finished_then
    finally:
        sys.settrace(before)
    return False, False


def test_a_ctrl_c_anywhere_in_block_on_cancels_the_coroutine_or_it_never_starts(owned: LoopThread) -> None:
    """A Ctrl-C raised at each point of `block_on` in turn where it can land leaves the coroutine never
    started or cancelled, never running on uncancelled (a compare's requests to a hung server did, and its
    Ctrl-C waited for them); after the coroutine finished there is nothing left to cancel."""
    owned.block_on(asyncio.sleep(0))  # the loop is running: starting it is not part of the calls below
    for point in itertools.count(1):
        work = _Work(seconds=0.5)
        coro = work.run()
        interrupted, finished_then = _interrupted_at(point, functools.partial(owned.block_on, coro), work)
        assert interrupted, f"no Ctrl-C landed at point {point}, yet the call returned before its work finished"
        owned.block_on(_a_few_turns())
        if finished_then:
            break  # this point and every later one come after the outcome: nothing was left to cancel
        assert not work.started or work.cancelled, f"a Ctrl-C at point {point} left the coroutine running"
        if not work.started:
            coro.close()  # never started (closing it again is harmless): no "never awaited" warning
    assert point > 10  # the sweep went past handing the coroutine over


def _ctrl_c_once_running(work: _Work) -> None:
    if work.running.wait(10):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def test_a_ctrl_c_while_block_on_waits_cancels_the_coroutine(owned: LoopThread, ctrl_c: None) -> None:
    """The usual Ctrl-C: a real SIGINT while the thread waits for the coroutine (as a terminal sends it)."""
    work = _Work(seconds=3600)
    sender = threading.Thread(target=_ctrl_c_once_running, args=(work,))
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        owned.block_on(work.run())
    sender.join()
    owned.block_on(_a_few_turns())
    assert work.cancelled


class _Stream:
    """An async generator that yields once and then waits; cancelled, it takes a few turns of the loop to
    unwind, as a provider's stream does while it closes its connection."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.closed = False

    async def items(self) -> AsyncIterator[str]:
        try:
            yield "first"
            self.waiting.set()
            await asyncio.sleep(3600)
            yield "never"
        finally:
            await _a_few_turns()
            self.closed = True


def _ctrl_c_once_waiting(stream: _Stream) -> None:
    if stream.waiting.wait(10):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def test_a_ctrl_c_while_iterating_a_stream_raises_it_and_closes_the_stream(owned: LoopThread, ctrl_c: None) -> None:
    """Ctrl-C during a synchronous ``stream()`` is a KeyboardInterrupt and nothing else: closing the generator
    while its cancelled step was still unwinding raised "aclose(): asynchronous generator is already
    running" in its place."""
    stream = _Stream()
    sender = threading.Thread(target=_ctrl_c_once_waiting, args=(stream,))
    sender.start()
    received = []
    with pytest.raises(KeyboardInterrupt):
        for item in owned.iterate(stream.items()):
            received.append(item)
    sender.join()
    assert received == ["first"] and stream.closed


def test_cancelling_a_caller_iterating_a_stream_cancels_it_and_closes_the_stream(owned: LoopThread) -> None:
    """The async twin (``astream`` from a notebook's loop): the caller's cancellation stays a cancellation."""
    stream = _Stream()

    async def consume() -> None:
        async for _ in owned.hop_iter(stream.items()):
            pass

    async def caller() -> None:
        task = asyncio.ensure_future(consume())
        while not stream.waiting.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(caller())
    assert stream.closed
