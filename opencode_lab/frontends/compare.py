"""The DataFrame API's engine: `compare` turns prompts x models x samples into one tidy frame.

Comparison semantics (see DESIGN.md): the ``model`` column is what was asked
for, ``served_by`` what answered; failover to a *different* model is off by
default (it would corrupt a comparison) while retries and other deployments of
the same model stay on; every failure is a row, never an exception; rows come
back in input order whatever order they finished in.  It uses only the public
API of the session.
"""

from __future__ import annotations

import asyncio
import math
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import BudgetExceededError, InvalidRequestError, LabError, RunInterruptedError
from ..core.params import NAMES, Params, reject_unknown
from ..core.schema import results_frame
from ..core.secrets import get_logger
from ..core.types import ChatRequest, ChatResult
from ..session.cache import CachePolicy
from ..session.records import result_row

if TYPE_CHECKING:
    import pandas as pd

    from ..session.session import Session

log = get_logger(__name__)
_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class CompareOptions:
    """Every keyword of ``compare()`` besides the request parameters, validated before anything is sent."""

    n: int = 1
    system: str | None = None
    template: str | None = None
    run: str | None = None
    scorer: Callable[[Any], float] | None = None
    concurrency: int | None = None
    cache: CachePolicy = CachePolicy.USE
    progress: bool = True
    budget_usd: float | None = None
    fallback: bool = False

    @classmethod
    def parse(cls, kwargs: Mapping[str, Any]) -> tuple[CompareOptions, Params]:
        """Split ``compare()`` keywords into options and `Params`; an unknown keyword names the closest."""
        own = cls.__dataclass_fields__
        reject_unknown(kwargs, (*own, *NAMES), "keyword of compare()")
        params = Params.build(**{k: v for k, v in kwargs.items() if k in NAMES})
        options = {k: v for k, v in kwargs.items() if k in own}
        if "cache" in options:
            options["cache"] = CachePolicy.of(options["cache"])
        opts = cls(**options)
        opts._check()
        return opts, params

    def _check(self) -> None:
        if not _positive_int(self.n):
            raise InvalidRequestError(f"n must be a positive integer (samples per prompt and model), got {self.n!r}")
        if self.concurrency is not None and not _positive_int(self.concurrency):
            raise InvalidRequestError(f"concurrency must be a positive integer, got {self.concurrency!r}")
        if self.budget_usd is not None and (
            isinstance(self.budget_usd, bool)
            or not isinstance(self.budget_usd, int | float)
            or not math.isfinite(self.budget_usd)
            or self.budget_usd < 0
        ):
            raise InvalidRequestError(f"budget_usd must be a non-negative number, got {self.budget_usd!r}")
        if self.scorer is not None and not callable(self.scorer):
            raise InvalidRequestError("scorer must be a callable taking a row and returning a float")


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


@dataclass
class _Job:
    index: int
    prompt_id: int
    prompt: str
    model: str
    sample: int
    request: ChatRequest
    extra: dict[str, Any]
    estimate_usd: float

    def row(self, outcome: ChatResult | LabError, run_id: str) -> dict[str, Any]:
        """The job's results row: the outcome, its identity, then the user's carried columns."""
        row = result_row(
            outcome, run_id=run_id, prompt_id=self.prompt_id, prompt=self.prompt, model=self.model, sample=self.sample
        )
        for key, value in self.extra.items():
            row.setdefault(key, value)
        return row


@dataclass
class _CompareRun:
    """Everything a compare needs to hand back partial rows after an interrupt."""

    options: CompareOptions
    run_id: str
    jobs: list[_Job]
    rows: list[dict[str, Any] | None]
    spent_usd: float = 0.0
    in_flight_usd: float = 0.0
    done: int = 0
    unsaved: list[dict[str, Any]] = field(default_factory=list)


def compare(lab: Session, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Synchronous `acompare`.  Ctrl-C returns the rows finished so far (the rest marked ``interrupted``)."""
    state = lab.run(_prepare(lab, prompts, models, kwargs))
    try:
        lab.run(_execute(lab, state))
    except KeyboardInterrupt:
        log.warning(
            "compare interrupted: returning %d finished of %d rows; rerun with the same run= to resume",
            state.done,
            len(state.jobs),
        )
    return _finish(state)


async def acompare(
    lab: Session, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Run every prompt against every model *n* times and return one row each.

    Keywords: ``n``, ``system``, ``template`` (a ``{column}`` format string filled
    per row), ``run`` (a name that makes the run resumable), ``scorer`` (``row ->
    float``, adds ``score``), ``concurrency``, ``cache`` (True, False or
    ``"refresh"``), ``progress``, ``budget_usd``, ``fallback`` and the request
    parameters of `opencode_lab.core.params.Params` (``temperature``,
    ``max_tokens``, ``seed``, ``top_p``, ``stop``).
    """
    state = await lab.hop(_prepare(lab, prompts, models, kwargs))
    await lab.hop(_execute(lab, state))
    return _finish(state)


async def _prepare(
    lab: Session, prompts: Any, models: str | Sequence[str] | None, kwargs: Mapping[str, Any]
) -> _CompareRun:
    """Validate everything and build the job list before a single request is sent."""
    options, params = CompareOptions.parse(kwargs)
    table = _prompt_table(prompts, options.template)
    model_list = _model_list(models, lab)
    for model in model_list:
        await lab.aresolve(model)
    runlog = lab.runlog
    meta = {"models": model_list, "n": options.n}
    run_id = runlog.start_run(options.run, meta) if runlog is not None else lab.session_run_id
    jobs: list[_Job] = []
    for prompt_id, (prompt, extra) in enumerate(table):
        for model in model_list:
            request = ChatRequest.build(prompt, model=model, system=options.system, **params.payload())
            for sample in range(options.n):
                jobs.append(
                    _Job(len(jobs), prompt_id, prompt, model, sample, request, extra, _estimate_usd(lab, request))
                )
    return _CompareRun(options, run_id, jobs, [None] * len(jobs))


def _prompt_table(prompts: Any, template: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(prompt, carried columns) per input row, from a string, list, Series or DataFrame."""
    import pandas as pd

    if isinstance(prompts, str):
        rows: list[dict[str, Any]] = [{"prompt": prompts}]
    elif isinstance(prompts, pd.DataFrame):
        if "prompt" not in prompts.columns and template is None:
            raise InvalidRequestError(
                f"the prompts DataFrame has no 'prompt' column (columns: {', '.join(map(str, prompts.columns))}); "
                "add one or pass template='... {column} ...'"
            )
        rows = prompts.to_dict("records")
    elif isinstance(prompts, pd.Series | list | tuple):
        rows = [{"prompt": p} for p in prompts]
    else:
        raise InvalidRequestError(
            f"prompts must be a string, a list, a pandas Series or a DataFrame, not {type(prompts).__name__}"
        )
    if not rows:
        raise InvalidRequestError("prompts is empty")
    fields = _template_fields(template) if template is not None else []
    out = []
    for i, row in enumerate(rows):
        if template is not None:
            missing = [f for f in fields if f not in row]
            if missing:
                raise InvalidRequestError(
                    f"template field {{{missing[0]}}} is not a column of the prompts "
                    f"(columns: {', '.join(map(str, row))})"
                )
            prompt = template.format_map(row)
        else:
            prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequestError(f"prompt {i} is empty or not a string: {prompt!r}")
        out.append((prompt, {k: v for k, v in row.items() if k != "prompt"}))
    return out


def _template_fields(template: str) -> list[str]:
    try:
        return [name.split(".")[0].split("[")[0] for _, name, _, _ in _FORMATTER.parse(template) if name]
    except ValueError as exc:
        raise InvalidRequestError(f"template is not a valid format string: {exc}") from None


def _model_list(models: str | Sequence[str] | None, lab: Session) -> list[str]:
    if models is None:
        return list(lab.catalog.pool) or ["auto"]
    items = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    if not items or not all(isinstance(m, str) and m.strip() for m in items):
        raise InvalidRequestError(f"models must be a non-empty list of model ids, got {models!r}")
    return list(dict.fromkeys(m.strip() for m in items))


def _estimate_usd(lab: Session, request: ChatRequest) -> float:
    """Worst-case price of one request from catalog prices (0 when unknown or free), for the budget."""
    try:
        groups = lab.catalog.resolve(request.model)
    except LabError:
        return 0.0
    prices = [(d.input_price_per_mtok or 0.0, d.output_price_per_mtok or 0.0) for g in groups for d in g.deployments]
    if not prices:
        return 0.0
    max_tokens = request.params.max_tokens
    prompt_tokens = request.estimated_tokens() - (max_tokens or 0)
    out_tokens = max_tokens or 512
    return max(p_in * prompt_tokens + p_out * out_tokens for p_in, p_out in prices) / 1e6


async def _execute(lab: Session, state: _CompareRun) -> None:
    options = state.options
    runlog = lab.runlog
    done = runlog.completed(state.run_id) if runlog is not None else {}
    bar = _progress_bar(len(state.jobs), options.progress)
    limit = asyncio.Semaphore(options.concurrency or lab.settings.max_concurrency)

    async def one(job: _Job) -> None:
        key = (job.prompt_id, job.model, job.sample)
        if key in done:
            _store(state, job, dict(done[key]), runlog, resumed=True)
        else:
            async with limit:
                await _run_job(lab, state, job, runlog)
        if bar is not None:
            bar.update(1)

    tasks = [asyncio.ensure_future(one(job)) for job in state.jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _save(state, runlog)
        lab.flush()
        if bar is not None:
            bar.close()


async def _run_job(lab: Session, state: _CompareRun, job: _Job, runlog: Any) -> None:
    budget = state.options.budget_usd
    if budget is not None and state.spent_usd + state.in_flight_usd + job.estimate_usd > budget:
        error = BudgetExceededError(
            f"budget of ${budget:.4f} reached (spent ${state.spent_usd:.4f}, "
            f"in flight ${state.in_flight_usd:.4f}); request not sent"
        )
        _store(state, job, job.row(error, state.run_id), runlog)
        return
    state.in_flight_usd += job.estimate_usd
    try:
        outcome = await lab.acall(
            job.request,
            sample=job.sample,
            cache=state.options.cache,
            fallback=state.options.fallback,
            run_id=state.run_id,
        )
    finally:
        state.in_flight_usd -= job.estimate_usd
    if isinstance(outcome, ChatResult) and not math.isnan(outcome.cost_usd):
        state.spent_usd += outcome.cost_usd
    _store(state, job, job.row(outcome, state.run_id), runlog)


def _store(state: _CompareRun, job: _Job, row: dict[str, Any], runlog: Any, *, resumed: bool = False) -> None:
    state.rows[job.index] = row
    state.done += 1
    if not resumed and runlog is not None:
        state.unsaved.append(row)
        if len(state.unsaved) >= 25:
            _save(state, runlog)


def _save(state: _CompareRun, runlog: Any) -> None:
    if runlog is None or not state.unsaved:
        return
    rows, state.unsaved = state.unsaved, []
    try:
        runlog.save_results(state.run_id, rows)
    except Exception as exc:  # a full disk must not lose the in-memory rows
        log.warning("could not save %d rows to the run log: %s", len(rows), exc)


def _finish(state: _CompareRun) -> pd.DataFrame:
    interrupted = RunInterruptedError("the compare was interrupted before this row finished")
    rows = [
        row if row is not None else job.row(interrupted, state.run_id)
        for job, row in zip(state.jobs, state.rows, strict=True)
    ]
    frame = results_frame(rows)
    scorer = state.options.scorer
    if scorer is not None:
        scores = [_score(scorer, row) for _, row in frame.iterrows()]
        frame.insert(frame.columns.get_loc("response") + 1, "score", scores)
    return frame


def _score(scorer: Callable[[Any], float], row: Any) -> float:
    if isinstance(row.get("error_type"), str):
        return math.nan
    try:
        return float(scorer(row))
    except Exception as exc:  # one bad row must not lose the frame
        log.warning("scorer failed on prompt %s / %s: %s", row.get("prompt_id"), row.get("model"), exc)
        return math.nan


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="compare", unit="call", leave=False)
