"""The one event loop that owns every connection, limiter and breaker of a Lab, on a background thread.

A notebook cell already runs inside an event loop, where ``asyncio.run`` fails
and ``nest_asyncio`` patches the world.  Instead every Lab owns one loop on a
daemon thread.  Sync calls submit coroutines to it and wait (`LoopThread.run`);
async calls from any other loop (Jupyter's, ``asyncio.run``'s) hop there and
await the result (`LoopThread.hop`), because httpx clients, asyncio locks and
breakers belong to the loop that first used them.  So every mix of sync and
async calls works, and pooled connections are reused across cells.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "opencode-lab-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def block_on(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the background loop and wait; Ctrl-C cancels it there and propagates."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a synchronous opencode_lab call was made from inside its own event loop; use the a* twin"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            with contextlib.suppress(concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception):
                future.result(timeout=5)
            raise

    async def hop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await *coro* on the owned loop from whatever loop the caller runs; cancelling the caller cancels it."""
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def hop_iter(self, agen: AsyncIterator[T]) -> AsyncIterator[T]:
        """Iterate an async generator that must run on the owned loop, from any loop."""
        try:
            while True:
                try:
                    yield await self.hop(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self._loop is not None and not self._loop.is_closed():
                await self.hop(aclose())

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator from synchronous code, one item at a time."""
        try:
            while True:
                try:
                    yield self.block_on(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self._loop is not None and not self._loop.is_closed():
                self.block_on(aclose())

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()
