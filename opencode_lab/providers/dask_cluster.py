"""Local GGUF inference on Dask workers: a cluster as a deployment, for sweeps that outgrow one machine.

What runs where: the router, rate limits, cache, run log and records stay in the
Lab's process; only the call itself runs on a worker.  Each worker hosts one
`WorkerCalls` actor for the Lab, created when the Lab first reaches the worker, and a
call is one method call on the least busy worker's actor, made with Dask's
asynchronous client on the Lab's own event loop: one request straight to the worker
(through the scheduler when the cluster is remote and its workers may not be reachable)
and one answer back, without a task's trip through the scheduler and its batching timers
(about 11 ms a call, one at a time, against about 1 ms).  A worker process answers with
the same `LocalProvider` code as in-process models (so the same request gives the same
answer), keeping one loaded model per worker thread for its whole life
(`opencode_lab.providers.dask_worker`).  Weights come from the same installed packages,
or a GGUF path every worker can read.  Calls do not show on the dashboard as tasks.

``scheduler = "local"`` starts a `LocalCluster` of worker processes on first use
(in `prepare`, so startup is not latency) and closes it with the Lab or at
interpreter exit; ``"tcp://host:8786"`` connects to a running cluster and leaves
it running.  The deployments' in-flight limit is the cluster's total worker
threads, re-read as workers join or leave (`follow_capacity`).

Faults: a call whose worker dies (or leaves) is sent once more, to another worker's
actor, as the scheduler would rerun a task, so one death sends a call to a model at
most twice and the router sees one attempt; workers that joined since (a nanny's
restart) get their actors in the background, calls going on meanwhile on the others.
When the second worker is lost too, or the scheduler is gone, the call fails as a
retryable `ProviderConnectionError`.  A call the router gives up on (deadline, Ctrl-C)
still finishes on its worker.  Streaming is refused (a
`ModelUnavailableError`, so a group with an in-process deployment streams there).

``dask.distributed`` is imported only when a cluster is first used.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..core.deployment import Deployment
from ..core.errors import (
    ConfigError,
    LabError,
    ModelUnavailableError,
    ProviderConnectionError,
    ProviderError,
)
from ..core.secrets import get_logger
from ..core.types import ChatRequest, Completion, ModelInfo, StreamChunk
from .base import Capabilities, Provider
from .dask_worker import LlamaModel, SleepModel, WorkerCalls, WorkerModel, warm
from .local import LocalProvider, configured_models

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..core.config import ProviderConfig, Settings

log = get_logger(__name__)
LOCAL = "local"
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_SLEEP = re.compile(r"^sleep/(\d+)ms$")
#: a scheduler that could not be reached is not tried again for this long: the rows queued behind the
#: failed attempt fail at once instead of each waiting out its own connect timeout
_RECONNECT_AFTER_S = 10.0
#: how long a worker's actor may take to start (milliseconds on a live worker; forever on a dead one)
_SEAT_TIMEOUT_S = 10.0


@dataclass
class _Seat:
    """One worker's `WorkerCalls` actor (alive while its future is held) and this Lab's calls on it."""

    future: Any
    actor: Any
    threads: int
    busy: int = 0


class DaskProvider(Provider):
    """Calls to `WorkerModel`s, each run as one task on a Dask cluster (see the module docstring)."""

    capabilities = Capabilities(streams=False, tools=False, images=False, free=True)

    def __init__(
        self,
        name: str,
        models: Sequence[WorkerModel],
        *,
        scheduler: str = LOCAL,
        workers: int | None = None,
        threads_per_worker: int = 1,
        connect_timeout_s: float = 60.0,
        call_log: Path | None = None,
    ) -> None:
        self.name = name
        self.scheduler = scheduler
        self.workers = workers or max(1, (os.cpu_count() or 1) // threads_per_worker)
        self.threads_per_worker = threads_per_worker
        self.connect_timeout_s = connect_timeout_s
        self.call_log = call_log
        self._models = {m.name: m for m in models}
        self._weights = LocalProvider([m.model for m in models if isinstance(m, LlamaModel)], threads=1)
        self._client: Any = None
        self._cluster: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._ready: set[str] = set()
        self._seats: dict[str, _Seat] = {}
        self._seating: asyncio.Task[None] | None = None
        self._failed: tuple[float, LabError] | None = None
        self._capacity: int | None = self.workers * threads_per_worker if scheduler == LOCAL else None
        self._listeners: list[Callable[[int], None]] = []
        atexit.register(_close_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        return f"DaskProvider({self.name!r}, scheduler={self.scheduler!r}, models={sorted(self._models)})"

    # -- what the catalog shows ------------------------------------------------------------------------------

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard while a cluster is in use."""
        return None if self._client is None else self._client.dashboard_link

    def deployments(self) -> list[Deployment]:
        """One deployment per model, ``NAME/MODEL``, limited to the cluster's threads."""
        return [
            Deployment(
                f"{self.name}/{m.name}",
                self.name,
                m.name,
                0.0,
                0.0,
                m.context_length,
                max_in_flight=self._capacity,
                tags=m.tags,
                description=f"{m.description} (on Dask: {self.scheduler})",
            )
            for m in self._models.values()
        ]

    def follow_capacity(self, listener: Callable[[int], None]) -> None:
        """Call *listener* with the new total of worker threads whenever it changes."""
        self._listeners.append(listener)

    def identity(self, model: str) -> str:
        """The weights, as in-process: the same file answers the same way wherever it runs.  A client that
        cannot see the weights (a remote cluster's) names the scheduler instead."""
        job = self._job(model)
        if isinstance(job, LlamaModel):
            try:
                return self._weights.identity(model)
            except (ConfigError, OSError):
                pass
        return f"{self.name}/{model}@{self.scheduler}"

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        return [ModelInfo(m.name, m.context_length, 0.0, 0.0, m.tags, m.description) for m in self._models.values()]

    # -- calls -----------------------------------------------------------------------------------------------

    async def prepare(self, model: str) -> None:
        """Start or reach the cluster, give every worker its actor and load *model* on every worker, before
        the timed call.  Workers that join later get their actors in the background (`_seat_later`): calls
        go on meanwhile on the workers already seated."""
        job = self._job(model)
        if model not in self._ready or self._client is None or self._client.status != "running" or not self._seats:
            loop = asyncio.get_running_loop()
            async with self._locks.setdefault(loop, asyncio.Lock()):
                client = await self._connected()
                if not self._seats:
                    await self._seat_workers(client)
                if model not in self._ready:
                    # find (Gemma: assemble) the weights here first, so workers sharing this disk do not race
                    await loop.run_in_executor(None, self.identity, model)
                    try:
                        await client.run(warm, job)
                    except LabError as exc:
                        raise ModelUnavailableError(
                            f"a worker cannot load it: {exc}", provider=self.name, model=model
                        ) from exc
                    self._ready.add(model)
        elif self._unseated():
            self._seat_later()
        self._follow()

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        job = self._job(model)
        for again in (False, True):
            await self.prepare(model)
            if not self._seats:
                reached = f"no worker of the Dask cluster at {self._address()} could be reached"
                raise ProviderConnectionError(reached, provider=self.name, model=model)
            seat = min(self._seats.values(), key=lambda s: s.busy / s.threads)
            seat.busy += 1
            try:
                return await seat.actor.call(job, request, self.call_log)
            except (ProviderError, asyncio.CancelledError):
                raise
            except ConfigError as exc:  # the worker lacks a package or file the Lab's process has
                raise ModelUnavailableError(f"a worker cannot load it: {exc}", provider=self.name, model=model) from exc
            except OSError as exc:  # the worker is gone: once more on another, as the scheduler reruns a task
                self._unseat(seat)
                if again:
                    raise self._translate(exc, model) from exc
            except Exception as exc:
                raise self._translate(exc, model) from exc
            finally:
                seat.busy -= 1
        raise AssertionError("unreachable: the second try returns or raises")

    def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Refused: tokens would have to be relayed from the worker; a non-streamed call is the cluster's path."""
        raise ModelUnavailableError(
            "streaming through a Dask cluster is not supported: call without streaming (chat(), compare()) "
            "or stream from an in-process deployment",
            provider=self.name,
            model=model,
        )

    def _job(self, model: str) -> WorkerModel:
        try:
            return self._models[model]
        except KeyError:
            raise ModelUnavailableError(
                f"not one of this cluster's models ({', '.join(sorted(self._models))})", provider=self.name, model=model
            ) from None

    def _translate(self, exc: Exception, model: str) -> ProviderError:
        """Dask's failures as ours: lost workers and schedulers are worth retrying, the rest is not."""
        from distributed import KilledWorker

        if isinstance(exc, KilledWorker) or (isinstance(exc, OSError) and "Actor" in str(exc)):
            return ProviderConnectionError(
                f"Dask gave up on the call: every worker that ran it died ({exc})", provider=self.name, model=model
            )
        if isinstance(exc, OSError | TimeoutError | CancelledError):  # the scheduler (or our client) is gone
            return ProviderConnectionError(
                f"lost the Dask scheduler at {self._address()}: {exc}", provider=self.name, model=model
            )
        return ProviderError(f"the Dask worker raised {type(exc).__name__}: {exc}", provider=self.name, model=model)

    # -- the cluster's lifecycle -----------------------------------------------------------------------------

    async def _connected(self) -> Any:
        """The running client: a local cluster started, or the scheduler reached, on first use."""
        if self._client is not None and self._client.status == "running":
            return self._client
        if self._failed is not None and time.monotonic() - self._failed[0] < _RECONNECT_AFTER_S:
            raise self._failed[1]
        await self.aclose()
        try:
            self._client = await (self._start_local() if self.scheduler == LOCAL else self._connect())
        except LabError as exc:
            self._failed = (time.monotonic(), exc)
            raise
        self._failed = None
        self._loop = asyncio.get_running_loop()
        log.info("%s: Dask cluster at %s, dashboard %s", self.name, self._address(), self.dashboard_link)
        return self._client

    async def _start_local(self) -> Any:
        from distributed import Client, LocalCluster

        try:
            self._cluster = await LocalCluster(
                n_workers=self.workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                asynchronous=True,
                dashboard_address=":0",  # any free port (dashboard_link says which): never a warning that 8787 is taken
            )
            client = await Client(self._cluster, asynchronous=True, direct_to_workers=True)  # they run here
            await client.wait_for_workers(self.workers, timeout=self.connect_timeout_s)
        except Exception as exc:
            await self.aclose()
            raise ConfigError(
                f"{self.name}: the local Dask cluster could not start its {self.workers} worker processes ({exc}). "
                "Workers are spawned and import the main module: in a script, create the Lab under "
                "`if __name__ == '__main__':`"
            ) from exc
        return client

    async def _connect(self) -> Any:
        from distributed import Client

        try:
            client = await Client(self.scheduler, asynchronous=True, timeout=self.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ProviderConnectionError(
                f"cannot reach the Dask scheduler at {self.scheduler} ({exc})", provider=self.name
            ) from exc
        try:
            await client.wait_for_workers(1, timeout=self.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            await client.close()
            raise ProviderConnectionError(
                f"the Dask scheduler at {self.scheduler} has no workers ({exc})", provider=self.name
            ) from exc
        return client

    def _unseated(self) -> bool:
        """Some worker has no actor yet: the cluster's threads (as the client last heard) are not all seated."""
        return not self._seats or sum(seat.threads for seat in self._seats.values()) != self._threads()

    async def _seat_workers(self, client: Any) -> None:
        """One `WorkerCalls` actor on every worker that has none; the actors of workers that left are let go.
        A new worker has not loaded any model yet: every model is warmed again on the next call."""
        workers = (await client.scheduler.identity(n_workers=-1))["workers"]
        for address in [address for address in self._seats if address not in workers]:
            self._unseat(self._seats[address])
        new = [(address, info["nthreads"]) for address, info in workers.items() if address not in self._seats]
        await asyncio.gather(*(self._seat(client, address, threads) for address, threads in new))

    async def _seat(self, client: Any, address: str, threads: int) -> None:
        """Start *address*'s actor.  A worker that has just died can still be listed, and an actor pinned to it
        would wait forever: one that is not up within `_SEAT_TIMEOUT_S` is let go, and tried again on the
        next call if its worker is still listed then."""
        future = client.submit(
            WorkerCalls, threads, actor=True, workers=[address], allow_other_workers=False,
            key=f"opencode-lab-calls-{uuid.uuid4().hex}",
        )  # fmt: skip
        try:
            actor = await asyncio.wait_for(future, _SEAT_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            future.release()
            log.info("%s: no actor on worker %s (%s); it is tried again on the next call", self.name, address, exc)
            return
        self._seats[address] = _Seat(future, actor, threads)
        self._ready.clear()

    def _seat_later(self) -> None:
        """Seat the workers that have no actor yet, in the background (one such task at a time)."""
        if self._seating is None or self._seating.done():
            self._seating = asyncio.ensure_future(self._seat_quietly(self._client))

    async def _seat_quietly(self, client: Any) -> None:
        try:
            await self._seat_workers(client)
        except Exception as exc:  # the next call sees the same gap and tries again (or fails as a call would)
            log.info("%s: could not seat the new workers: %s", self.name, exc)

    def _unseat(self, seat: _Seat) -> None:
        """Let go of a lost worker's actor: a dead worker's is never rerun elsewhere (it is pinned there)."""
        for address, held in list(self._seats.items()):
            if held is seat:
                del self._seats[address]
                seat.future.release()

    def _threads(self) -> int:
        """The cluster's total worker threads as the client last heard (it refreshes every few seconds)."""
        info = self._client.scheduler_info() if self._client is not None else {}
        threads = info.get("total_threads")
        if threads is None:  # older Dask sends no total: it lists every worker
            threads = sum(w.get("nthreads", 0) for w in info.get("workers", {}).values())
        return int(threads)

    def _address(self) -> str:
        return self._client.scheduler.address if self._client is not None else self.scheduler

    def _follow(self) -> None:
        """Re-read the cluster's total threads and tell listeners."""
        threads = self._threads()
        if threads and threads != self._capacity:
            self._capacity = threads
            for listener in self._listeners:
                listener(threads)

    async def aclose(self) -> None:
        """Close the client and a local cluster's workers; a remote cluster keeps running.  Idempotent."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = self._loop = None
        self._ready.clear()
        self._seats.clear()  # closing the client lets every actor go
        if self._seating is not None:
            self._seating.cancel()
            self._seating = None
        if client is not None:
            await client.close()
        if cluster is not None:
            await cluster.close()


def _close_at_exit(ref: weakref.ref[DaskProvider]) -> None:
    """At interpreter exit a Lab that was never closed still takes its worker processes with it."""
    provider = ref()
    loop = provider._loop if provider is not None else None
    if provider is None or loop is None or loop.is_closed() or not loop.is_running():
        return
    try:
        asyncio.run_coroutine_threadsafe(provider.aclose(), loop).result(timeout=30)
    except Exception as exc:  # exiting anyway: multiprocessing still ends daemonic workers after this
        log.warning("%s: could not close the Dask cluster at exit: %s", provider.name, exc)


# -- from TOML --------------------------------------------------------------------------------------------------

_OPTIONS = {
    "scheduler": "text",
    "workers": "positive_int",
    "threads_per_worker": "positive_int",
    "call_log": "path",
}


def from_config(config: ProviderConfig, settings: Settings) -> DaskProvider:
    """``[providers.NAME]`` with ``type = "dask"``: its keys are checked here, before anything starts."""
    at = f"[providers.{config.name}]"
    options = config.parse_options(_OPTIONS)
    if config.base_url:
        raise ConfigError(f'{at}: a dask provider takes a scheduler ("local" or "tcp://host:8786"), not a base_url')
    scheduler = _scheduler(at, options.get("scheduler", LOCAL))
    if scheduler != LOCAL and "workers" in options:
        raise ConfigError(f'{at}: workers applies to a local cluster only (scheduler = "local")')
    if not config.models:
        raise ConfigError(f'{at} needs models, e.g. models = ["local/smollm2-135m"]')
    return DaskProvider(
        config.name,
        [_worker_model(at, entry, settings) for entry in config.models],
        scheduler=scheduler,
        workers=options.get("workers"),
        threads_per_worker=options.get("threads_per_worker", 1),
        connect_timeout_s=settings.timeout_s,
        call_log=options.get("call_log"),
    )


def _scheduler(at: str, text: str) -> str:
    if text == LOCAL:
        return text
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in _SCHEMES or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(
            f'{at} scheduler must be "local" or an address like "tcp://host:8786" '
            f"(schemes: {', '.join(_SCHEMES)}), got {text!r}"
        )
    return text.rstrip("/")


def _worker_model(at: str, entry: str, settings: Settings) -> WorkerModel:
    """``local/NAME`` (a bundled model or a ``[models]`` GGUF path) or the ``sleep/Nms`` test model."""
    import difflib

    if sleep := _SLEEP.match(entry):
        return SleepModel(int(sleep.group(1)) / 1000)
    local = {f"local/{m.name}": m for m in configured_models(settings)}
    if entry in local:
        return LlamaModel(local[entry])
    close = difflib.get_close_matches(entry, [*local, "sleep/200ms"], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(local)) or 'none'})"
    raise ConfigError(f"{at} models: {entry!r} is not a local model a worker can run{hint}")
