"""The one event loop that owns every connection, limiter and breaker of a Lab, on a background thread.

A notebook cell already runs inside an event loop, where ``asyncio.run`` fails
and ``nest_asyncio`` patches the world.  Instead every Lab owns one loop on a
daemon thread.  Sync calls submit coroutines to it and wait (`LoopThread.run`);
async calls from any other loop (Jupyter's, ``asyncio.run``'s) hop there and
await the result (`LoopThread.hop`), because httpx clients, asyncio locks and
breakers belong to the loop that first used them.  So every mix of sync and
async calls works, and pooled connections are reused across cells.

Waking a loop from another thread is a write to its self-pipe and a context switch,
which costs more than a whole request's bookkeeping.  Hops therefore travel through
`_Mailbox`es, one per receiving loop: calls posted while the receiver has not yet
drained the previous ones ride along with them, so a burst of 50 concurrent
``achat`` calls wakes each loop a few times instead of 100.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_UNWIND_POLL_S = 0.001  # how often closing a generator looks again whether its cancelled step has unwound


class _Mailbox:
    """Callbacks posted from any thread to one loop, run there in order; the loop is woken only when the
    box goes from empty to non-empty (later posts join the pending batch)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def post(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._items.append(callback)
            first = len(self._items) == 1
        if first:
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for callback in items:
            callback()


class _Hop:
    """One coroutine run on the owned loop for a caller on another loop: its task there, the caller's
    future here, and the cancellation that crosses back when the caller gives up."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waiter: asyncio.Future[Any], back: _Mailbox) -> None:
        self.coro, self.waiter, self.back = coro, waiter, back
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False

    def start(self) -> None:
        """On the owned loop: run the coroutine (unless the caller already gave up) and report back."""
        if self.cancelled:
            self.coro.close()
            return
        self.task = asyncio.ensure_future(self.coro)
        self.task.add_done_callback(lambda _: self.back.post(self.settle))

    def cancel(self) -> None:
        """On the owned loop: the caller was cancelled, so is the task."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def settle(self) -> None:
        """On the caller's loop: hand over the task's outcome."""
        task, waiter = self.task, self.waiter
        if task is None or waiter.done():
            return
        if task.cancelled():
            waiter.cancel()
        elif (exc := task.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(task.result())


class _Call(Generic[T]):
    """One coroutine a thread runs on the owned loop, built so that a Ctrl-C landing anywhere in the thread's
    part leaves nothing behind: no running coroutine nobody will cancel, no lock the loop then waits for.

    Whether the coroutine runs is decided once, by whichever side takes the single token first: `start` on
    the loop (it runs) or `abandon` on the thread (it never will); ``list.pop`` is atomic, so never both.
    The thread waits on a bare lock the loop releases when the task is done: a ``concurrent.futures.Future``
    would have the thread hold the lock the loop must take to set the outcome, and a Ctrl-C between that
    lock's acquire and its ``with`` block left it held, the loop stuck for good.
    """

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.coro = coro
        self.task: asyncio.Task[T] | None = None
        self._token = [True]
        self._done = threading.Lock()
        self._done.acquire()

    def start(self) -> None:
        """On the owned loop: run the coroutine, unless the caller gave up before it started."""
        if not self._take():
            self.coro.close()
            return
        self.task = asyncio.ensure_future(self.coro)
        self.task.add_done_callback(lambda _: self._done.release())

    def abandon(self) -> bool:
        """On the caller's thread: whether the coroutine was stopped from ever starting (else it has)."""
        return self._take()

    def cancel(self) -> None:
        """On the owned loop, after `start` took the token: the caller gave up, so the task is cancelled."""
        if self.task is not None:
            self.task.cancel()

    def outcome(self) -> T:
        """On the caller's thread: wait for the task to end; its value, its exception, or ``CancelledError``."""
        self._done.acquire()
        task = self.task
        assert task is not None  # released only when the task it started is done
        if task.cancelled():
            raise concurrent.futures.CancelledError()
        return task.result()

    def _take(self) -> bool:
        try:
            self._token.pop()
        except IndexError:
            return False
        return True


class LoopThread:
    def __init__(self, name: str = "opencode-lab-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inbox: _Mailbox | None = None
        self._outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = weakref.WeakKeyDictionary()

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
                self._loop, self._inbox = loop, _Mailbox(loop)
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def block_on(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the background loop and wait; Ctrl-C cancels it there and propagates.

        Ctrl-C raises KeyboardInterrupt wherever the main thread next checks for signals, so handing the
        coroutine over and waiting for it are one ``try``: whenever it lands, the coroutine has either not
        started (and never will) or is cancelled.  ``asyncio.run_coroutine_threadsafe`` cannot be that
        ``try``'s first step: it hands back its future only after the loop may have started the coroutine,
        and a Ctrl-C in between left it running to its end (a compare's requests to a hung server included).
        The cancellation is not waited for: a caller that needs the cancelled work finished waits for that.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a synchronous opencode_lab call was made from inside its own event loop; use the a* twin"
            )
        call = _Call(coro)
        try:
            self.loop.call_soon_threadsafe(call.start)
            return call.outcome()
        except KeyboardInterrupt:
            if call.abandon():  # not started, and now it never will be
                coro.close()
            else:
                self.loop.call_soon_threadsafe(call.cancel)
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
        if running is None:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
        back = self._outboxes.get(running)
        if back is None:
            back = self._outboxes.setdefault(running, _Mailbox(running))
        waiter: asyncio.Future[T] = running.create_future()
        hop = _Hop(coro, waiter, back)
        inbox = self._inbox
        assert inbox is not None  # set with the loop
        inbox.post(hop.start)
        try:
            return await waiter
        except asyncio.CancelledError:
            inbox.post(hop.cancel)
            raise

    async def hop_iter(self, agen: AsyncGenerator[T, None]) -> AsyncIterator[T]:
        """Iterate an async generator that must run on the owned loop, from any loop."""
        try:
            while True:
                try:
                    yield await self.hop(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if self._loop is not None and not self._loop.is_closed():
                await self.hop(_closed(agen))

    def iterate(self, agen: AsyncGenerator[T, None]) -> Iterator[T]:
        """Drive an async iterator from synchronous code, one item at a time; however it ends (Ctrl-C
        included), the generator is closed before this returns or raises."""
        try:
            while True:
                try:
                    yield self.block_on(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if self._loop is not None and not self._loop.is_closed():
                self.block_on(_closed(agen))

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


async def _closed(agen: AsyncIterator[Any]) -> None:
    """Close *agen* once no step of it is in flight.  A step cancelled by a Ctrl-C or by its caller's
    cancellation can take several turns of the loop to unwind (through the provider's stream and its
    timeouts), and an async generator refuses ``aclose`` until it has: the caller saw that RuntimeError
    instead of its KeyboardInterrupt."""
    while getattr(agen, "ag_running", False):
        await asyncio.sleep(_UNWIND_POLL_S)
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        await aclose()
