"""What a Dask worker runs for `opencode_lab.providers.dask_cluster`: the models it can load, and the calls.

This module is imported in the worker processes (its classes and functions travel by
name), so it imports nothing of Dask.  Calls reach a worker through its `WorkerCalls`
actor, straight from the Lab's client.  A worker keeps loaded instances of each model
for its whole life: one per worker thread at most (`_borrow`), because a llama.cpp
context answers one call at a time, and the pool is module state, so it lives as long
as the worker process does.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Protocol

from ..core.types import ChatRequest, Completion, Usage
from .local import LocalModel, LocalProvider

Runner = Callable[[ChatRequest], Completion]


class WorkerModel(Protocol):
    """A model a worker can run: how to load it there, and what the catalog says about it."""

    @property
    def name(self) -> str: ...

    @property
    def context_length(self) -> int: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    @property
    def description(self) -> str: ...

    @property
    def key(self) -> str:
        """What a worker keeps loaded instances under: equal keys, interchangeable instances."""

    def load(self) -> Runner:
        """Load one instance (in the worker process) and return its blocking call."""


@dataclass(frozen=True)
class LlamaModel:
    """A GGUF model answered by `LocalProvider` on a worker, one llama.cpp thread per instance."""

    model: LocalModel

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def context_length(self) -> int:
        return self.model.context_length

    @property
    def tags(self) -> tuple[str, ...]:
        return (*self.model.tags, "cluster")

    @property
    def description(self) -> str:
        return self.model.description

    @property
    def key(self) -> str:
        m = self.model
        return f"llama|{m.name}|{m.description}|{m.context_length}|{m.chat}"

    def load(self) -> Runner:
        provider = LocalProvider([self.model], threads=1)
        # one token now: a model's first call pays for reading its weights in and setting llama.cpp up (seconds)
        provider.complete_blocking(self.name, ChatRequest.build("ok", max_tokens=1))
        return partial(provider.complete_blocking, self.name)


@dataclass(frozen=True)
class SleepModel:
    """A stand-in for a remote GPU in benchmarks and tests (``models = ["sleep/200ms"]``): it answers
    with the last message after sleeping, so many of them run side by side without using this CPU."""

    seconds: float
    context_length: int = 2048
    tags: ClassVar[tuple[str, ...]] = ("test", "cluster")

    @property
    def name(self) -> str:
        return f"sleep-{round(self.seconds * 1000)}ms"

    @property
    def description(self) -> str:
        return f"test model: echoes the prompt after {self.seconds:g} s"

    @property
    def key(self) -> str:
        return f"sleep|{self.seconds}"

    def load(self) -> Runner:
        return self.answer

    def answer(self, request: ChatRequest) -> Completion:
        time.sleep(self.seconds)
        text = request.messages[-1].content
        return Completion(text, self.name, "stop", Usage(len(text.split()), len(text.split()), 0.0), self.seconds)


# -- the task and its pool of loaded instances -------------------------------------------------------------------

_pool_lock = threading.Lock()
_idle: dict[str, list[Runner]] = {}


def _borrow(job: WorkerModel) -> Runner:
    """A loaded instance nobody else is using: one per worker thread at most, each loaded once and kept."""
    with _pool_lock:
        idle = _idle.setdefault(job.key, [])
        if idle:
            return idle.pop()
    return job.load()


def _give_back(job: WorkerModel, runner: Runner) -> None:
    with _pool_lock:
        _idle[job.key].append(runner)


async def warm(job: WorkerModel) -> None:
    """Load one instance now (off the worker's event loop), so the first call does not pay for it."""
    with _pool_lock:
        if _idle.get(job.key):
            return
    runner = await asyncio.get_running_loop().run_in_executor(None, _borrow, job)
    _give_back(job, runner)


class WorkerCalls:
    """The actor a worker hosts for one Lab, for as long as the Lab uses the cluster.

    A Dask task costs a trip through the scheduler and three batched streams, whose timers
    (the client's sends at most every 10 ms) made a call's overhead about 11 ms even one at a
    time; an actor's method is one request straight to its worker and one answer back.  Calls
    run on the actor's own *threads* (the worker's number), so a worker answers as many at once
    as it has threads, as it would run tasks.
    """

    def __init__(self, threads: int) -> None:
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="opencode-lab-call")

    async def call(self, job: WorkerModel, request: ChatRequest, call_log: Path | None) -> Completion:
        """One call (`run_call`) on one of this worker's threads, off its event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, run_call, job, request, call_log)


def run_call(job: WorkerModel, request: ChatRequest, call_log: Path | None) -> Completion:
    """One call on this worker, written to *call_log* (if any) as it starts and ends."""
    runner = _borrow(job)
    _note(call_log, "start", job, request)
    try:
        return runner(request)
    finally:
        _give_back(job, runner)
        _note(call_log, "end", job, request)


def _note(call_log: Path | None, event: str, job: WorkerModel, request: ChatRequest) -> None:
    if call_log is None:
        return
    line = json.dumps(
        {
            "event": event,
            "pid": os.getpid(),
            "model": job.name,
            "prompt": request.messages[-1].content,
            "t": time.time(),
        }
    )
    with call_log.open("a") as fh:  # one short write per line, appended: lines from workers do not interleave
        fh.write(line + "\n")
