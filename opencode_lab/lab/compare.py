"""The DataFrame API's engine: `compare` turns prompts x models x samples into one tidy frame.

Comparison semantics (see DESIGN.md): the ``model`` column is what was asked
for, ``served_by`` what answered; failover to a *different* model is off by
default (it would corrupt a comparison) while retries and other deployments of
the same model stay on; every failure is a row, never an exception; rows come
back in input order whatever order they finished in.  A `Compare` is the run in
progress: its `Plan` (decided before anything is sent), its `Budget` and its
`RecordedRun` (resume, claims shared with other processes, saving).  It uses only
the public API of the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import LabError, RunInterruptedError
from ..core.schema import results_frame
from ..core.secrets import get_logger
from ..core.structured import json_value
from ..core.types import ChatResult
from ..evals.grading import agrade
from .budget import Budget
from .plan import Job, Plan, RowKey, make_plan
from .presentation import Progress, shown
from .recorded import RecordedRun

if TYPE_CHECKING:
    import pandas as pd

    from ..session.session import Session

log = get_logger(__name__)
_POLL_S = 0.25  # how often a row another process is sending is looked up again


class Compare:
    """One compare in progress: the rows as they finish, in input order."""

    def __init__(self, lab: Session, plan: Plan, run: RecordedRun, budget: Budget | None) -> None:
        self.lab, self.plan, self.run, self.budget = lab, plan, run, budget
        self.rows: list[dict[str, Any] | None] = [None] * len(plan.jobs)
        self.done = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def prepare(
        cls, lab: Session, prompts: object, models: str | Sequence[str] | None, kwargs: Mapping[str, Any]
    ) -> Compare:
        """Everything checked (prompts, models, options, prices, the run's specification) before sending."""
        plan = await make_plan(lab, prompts, models, kwargs)
        options = plan.options
        budget = Budget.of(lab, options.budget_usd, plan.models, options.fallback)
        return cls(lab, plan, RecordedRun.open(lab, options, plan.spec), budget)

    async def execute(self) -> None:
        """Send every job not finished yet (a named run's finished rows are read back, not sent again)."""
        self._task = asyncio.current_task()
        done = self.run.completed()
        self.run.share()
        bar = shown.progress(len(self.plan.jobs), "compare", enabled=self.plan.options.progress)
        self._answer_from_cache(done, bar)
        limit = asyncio.Semaphore(self.plan.options.concurrency or self.lab.max_concurrency)
        tasks = [
            asyncio.ensure_future(self._one(job, done.get(job.key), limit, bar))
            for job in self.plan.jobs
            if self.rows[job.index] is None
        ]
        keeper = asyncio.ensure_future(self.run.keep())
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in (*tasks, keeper):
                task.cancel()
            await asyncio.gather(*tasks, keeper, return_exceptions=True)
            self.run.close()
            self.lab.flush()
            if bar is not None:
                bar.close()

    async def settled(self) -> None:
        """Wait until a cancelled `execute` has finished its cleanup (saving its rows)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task])

    def frame(self) -> pd.DataFrame:
        """The results frame: every row in input order, unfinished ones marked ``interrupted``."""
        interrupted = RunInterruptedError("the compare was interrupted before this row finished")
        rows = [
            row if row is not None else job.row(interrupted, self.run.run_id)
            for job, row in zip(self.plan.jobs, self.rows, strict=True)
        ]
        frame = results_frame(rows)
        if self.plan.params.schema is not None:  # structured output: the parsed objects too
            frame.insert(list(frame.columns).index("response") + 1, "data", frame.response.map(json_value))
        frame.attrs["params"] = {model: params.payload() for model, params in self.plan.asked_with.items()}
        return frame

    def _answer_from_cache(self, done: Mapping[RowKey, Any], bar: Progress | None) -> None:
        """Answer every row the cache holds in one pass, before anything is sent: a cached row costs one
        lookup, no task, claim or budget check (it is free)."""
        jobs = [job for job in self.plan.jobs if job.key not in done]
        options = self.plan.options
        found = self.lab.cached_answers(
            [(job.request, job.sample) for job in jobs],
            cache=options.cache,
            fallback=options.fallback,
            run_id=self.run.run_id,
        )
        for job, hit in zip(jobs, found, strict=True):
            if hit is not None:
                self._answered(job, hit)
                if bar is not None:
                    bar.update(self.rows[job.index])

    async def _one(
        self, job: Job, row: dict[str, Any] | None, limit: asyncio.Semaphore, bar: Progress | None
    ) -> None:
        while row is None:
            async with limit:
                granted, row = self.run.claim(job.key)
                if granted:
                    await self._send(job)
                    break
            if row is None:
                await asyncio.sleep(_POLL_S)  # another process is sending this row: wait for its answer
        if row is not None:
            self._store(job, dict(row), resumed=True)
        if bar is not None:
            bar.update(self.rows[job.index])

    async def _send(self, job: Job) -> None:
        options, estimate = self.plan.options, 0.0
        if self.budget is not None:
            estimate = self.budget.estimate_usd(job)
            refusal = self.budget.refusal(estimate)
            if refusal is not None:
                self._store(job, job.row(refusal, self.run.run_id))
                return
            self.budget.in_flight_usd += estimate
        try:
            outcome = await self.lab.acall(
                job.request, sample=job.sample, cache=options.cache, fallback=options.fallback, run_id=self.run.run_id
            )
        finally:
            if self.budget is not None:
                self.budget.in_flight_usd -= estimate
        if self.budget is not None:
            self.budget.settle(job.model, outcome)
        if job.request.tools:  # checking the calls' arguments is bounded, but not work for the event loop
            self._store(job, await asyncio.to_thread(job.row, outcome, self.run.run_id))
        else:
            self._store(job, job.row(outcome, self.run.run_id))

    def _answered(self, job: Job, outcome: ChatResult | LabError) -> None:
        """Keep *job*'s cached outcome (free, but its output length still informs the budget's estimates)."""
        if self.budget is not None:
            self.budget.settle(job.model, outcome)
        self._store(job, job.row(outcome, self.run.run_id))

    def _store(self, job: Job, row: dict[str, Any], *, resumed: bool = False) -> None:
        self.rows[job.index] = row
        self.done += 1
        if not resumed:
            self.run.finished(row)


def compare(lab: Session, prompts: object, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Synchronous `acompare`.  Ctrl-C returns the rows finished so far (the rest marked ``interrupted``)."""
    __tracebackhide__ = True
    run = lab.block_on(Compare.prepare(lab, prompts, models, kwargs))
    try:
        lab.block_on(run.execute())
    except KeyboardInterrupt:
        lab.block_on(run.settled())  # the cancelled run is still saving its finished rows: they are logged on return
        log.warning(
            "compare interrupted: returning %d finished of %d rows; rerun with the same run= to resume",
            run.done,
            len(run.plan.jobs),
        )
    return lab.block_on(agrade(lab, run.frame(), run.plan.options.scorer, run_id=run.run.run_id))


async def acompare(
    lab: Session, prompts: object, models: str | Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Run every prompt against every model *n* times and return one row each.

    Keywords: ``n``, ``system``, ``template`` (a ``{column}`` format string filled
    per row), ``run`` (a name that makes the run resumable), ``scorer`` (``row ->
    float``, adds ``score``; or a dict name -> scorer, adding ``score_<name>`` each, see
    `opencode_lab.evals.scorers` and `opencode_lab.judge`), ``concurrency``, ``cache`` (True, False or
    ``"refresh"``), ``progress``, ``budget_usd``, ``fallback``, ``tools`` (declarations
    or functions offered to every model: rows get ``tool_calls`` and ``tool_call_valid``),
    ``images`` (the prompts column whose image(s) each row sends) and the request
    parameters of `opencode_lab.core.params.Params` (``temperature``,
    ``max_tokens``, ``seed``, ``top_p``, ``stop``).
    """
    run = await lab.hop(Compare.prepare(lab, prompts, models, kwargs))
    await lab.hop(run.execute())
    return await lab.hop(agrade(lab, run.frame(), run.plan.options.scorer, run_id=run.run.run_id))
