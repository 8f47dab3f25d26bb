"""Local GGUF inference on Dask workers: a cluster as a deployment, for sweeps that outgrow one machine.

What runs where: the router, rate limits, cache, run log and records stay in the
Lab's process; only the call itself runs on a worker.  Each call is one Dask task,
submitted with Dask's asynchronous client on the Lab's own event loop.  A worker
process answers with the same `LocalProvider` code as in-process models (so the
same request gives the same answer), keeping one loaded model per worker thread
for its whole life (`opencode_lab.providers.dask_worker`).  Weights come from the
same installed packages, or a GGUF path every worker can read.

``scheduler = "local"`` starts a `LocalCluster` of worker processes on first use
(in `prepare`, so startup is not latency) and closes it with the Lab or at
interpreter exit; ``"tcp://host:8786"`` connects to a running cluster and leaves
it running.  The deployments' in-flight limit is the cluster's total worker
threads, re-read as workers join or leave (`follow_capacity`).

Faults: a worker that dies mid-call is Dask's to handle: the scheduler reruns the
task elsewhere, so one death sends a call to a model at most twice and the router
sees one attempt.  When Dask gives up (``KilledWorker``) or the scheduler is gone,
the call fails as a retryable `ProviderConnectionError`.  Streaming is refused (a
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
from .dask_worker import LlamaModel, SleepModel, WorkerModel, run_call, warm
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
        """Start or reach the cluster and load *model* on every worker, before the timed call."""
        job = self._job(model)
        if model not in self._ready or self._client is None or self._client.status != "running":
            loop = asyncio.get_running_loop()
            async with self._locks.setdefault(loop, asyncio.Lock()):
                client = await self._connected()
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
        self._follow()

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        job = self._job(model)
        await self.prepare(model)
        future = self._client.submit(run_call, job, request, self.call_log, key=f"{model}-{uuid.uuid4().hex}")
        try:
            return await future
        except asyncio.CancelledError:  # the router gave up (deadline, Ctrl-C): a worker need not start it
            future.release()
            raise
        except ProviderError:
            raise
        except ConfigError as exc:  # the worker lacks a package or file the Lab's process has
            raise ModelUnavailableError(f"a worker cannot load it: {exc}", provider=self.name, model=model) from exc
        except Exception as exc:
            raise self._translate(exc, model) from exc

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

        if isinstance(exc, KilledWorker):
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
            )
            client = await Client(self._cluster, asynchronous=True)
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

    def _address(self) -> str:
        return self._client.scheduler.address if self._client is not None else self.scheduler

    def _follow(self) -> None:
        """Re-read the cluster's total threads (the client refreshes it every few seconds) and tell listeners."""
        info = self._client.scheduler_info() if self._client is not None else {}
        threads = info.get("total_threads")
        if threads is None:  # older Dask sends no total: it lists every worker
            threads = sum(w.get("nthreads", 0) for w in info.get("workers", {}).values())
        if threads and threads != self._capacity:
            self._capacity = threads
            for listener in self._listeners:
                listener(threads)

    async def aclose(self) -> None:
        """Close the client and a local cluster's workers; a remote cluster keeps running.  Idempotent."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = self._loop = None
        self._ready.clear()
        if client is not None:
            await client.close()
        if cluster is not None:
            await cluster.close()


def _close_at_exit(ref: weakref.ref[DaskProvider]) -> None:
    """At interpreter exit a Lab that was never closed still takes its worker processes with it."""
    provider = ref()
    loop = provider and provider._loop
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
