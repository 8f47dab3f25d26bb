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
import hashlib
import importlib.metadata
import json
import math
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.content import Image
from ..core.errors import (
    BudgetExceededError,
    ConfigError,
    InvalidRequestError,
    LabError,
    RunInterruptedError,
    RunMismatchError,
)
from ..core.params import NAMES, Params, reject_unknown, utf8
from ..core.schema import results_frame
from ..core.secrets import get_logger
from ..core.structured import json_value
from ..core.tools import Tool, calls_valid
from ..core.tools import tools as tool_list
from ..core.types import ChatRequest, ChatResult
from ..evals.grading import agrade
from ..evals.scorers import describe, scorer_table
from ..session.cache import CachePolicy
from ..session.records import result_row
from .presentation import shown

if TYPE_CHECKING:
    import pandas as pd

    from ..session.session import Session

log = get_logger(__name__)
_FORMATTER = string.Formatter()
_TICK_S = 1.0  # how often finished rows are saved and a named run's claims renewed
_POLL_S = 0.25  # how often a row another process is sending is looked up again


@dataclass(frozen=True)
class CompareOptions:
    """Every keyword of ``compare()`` besides the request parameters, validated before anything is sent."""

    n: int = 1
    system: str | None = None
    template: str | None = None
    run: str | None = None
    scorer: Callable[[Any], Any] | Mapping[str, Callable[[Any], Any]] | None = None
    concurrency: int | None = None
    cache: CachePolicy = CachePolicy.USE
    progress: bool = True
    budget_usd: float | None = None
    fallback: bool = False
    resume: str = "auto"
    tools: Any = None
    images: str | None = None

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
        if self.scorer is not None:
            scorer_table(self.scorer)
        if self.images is not None and not isinstance(self.images, str):
            raise InvalidRequestError(
                f"images must name the prompts column holding each row's image(s), got {self.images!r}"
            )
        for name in ("run", "template"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidRequestError(f"{name} must be a non-empty string, got {value!r}")
            if value is not None:
                utf8(name, value)
        if self.resume not in ("auto", "new"):
            raise InvalidRequestError(
                f"resume must be 'auto' (resume a run with the same specification) or 'new', got {self.resume!r}"
            )


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

    def row(self, outcome: ChatResult | LabError, run_id: str) -> dict[str, Any]:
        """The job's results row: the outcome, its identity, then the user's carried columns."""
        row = result_row(
            outcome, run_id=run_id, prompt_id=self.prompt_id, prompt=self.prompt, model=self.model, sample=self.sample
        )
        if self.request.tools:  # did the model call an offered tool with arguments its schema accepts?
            answered = isinstance(outcome, ChatResult)
            row["tool_call_valid"] = answered and calls_valid(outcome.tool_calls, self.request.tools)
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
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    output_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per model: (sum, count) of the output tokens of its answers so far, for the budget's estimate."""
    spent_usd: float = 0.0
    in_flight_usd: float = 0.0
    done: int = 0
    unsaved: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None
    """This compare's claim owner in the run log, when it shares a named run with other processes."""
    since: float = 0.0
    task: asyncio.Task[None] | None = None


def compare(lab: Session, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Synchronous `acompare`.  Ctrl-C returns the rows finished so far (the rest marked ``interrupted``)."""
    __tracebackhide__ = True
    state = lab.block_on(_prepare(lab, prompts, models, kwargs))
    try:
        lab.block_on(_execute(lab, state))
    except KeyboardInterrupt:
        lab.block_on(_settled(state))  # the cancelled run is still saving its finished rows: they are logged on return
        log.warning(
            "compare interrupted: returning %d finished of %d rows; rerun with the same run= to resume",
            state.done,
            len(state.jobs),
        )
    return lab.block_on(agrade(lab, _finish(state), state.options.scorer, run_id=state.run_id))


async def acompare(
    lab: Session, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any
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
    state = await lab.hop(_prepare(lab, prompts, models, kwargs))
    await lab.hop(_execute(lab, state))
    return await lab.hop(agrade(lab, _finish(state), state.options.scorer, run_id=state.run_id))


async def _prepare(
    lab: Session, prompts: Any, models: str | Sequence[str] | None, kwargs: Mapping[str, Any]
) -> _CompareRun:
    """Validate everything and build the job list before a single request is sent."""
    options, params = CompareOptions.parse(kwargs)
    table = _prompt_table(prompts, options.template)
    model_list = _model_list(models, lab)
    identities = {model: await lab.aidentities(model) for model in model_list}
    prices = _prices(lab, model_list, options) if options.budget_usd is not None else {}
    tools = tool_list(options.tools)
    asked = [_with_images(prompt, extra, options.images, i) for i, (prompt, extra) in enumerate(table)]
    spec = _specification(options, params, table, identities) | _rich_specification(tools, asked)
    run_id = _open_run(lab, options, spec)
    jobs: list[_Job] = []
    for prompt_id, (prompt, extra) in enumerate(table):
        for model in model_list:
            request = ChatRequest.build(
                asked[prompt_id], model=model, system=options.system, tools=tools, **params.payload()
            )
            for sample in range(options.n):
                jobs.append(_Job(len(jobs), prompt_id, prompt, model, sample, request, extra))
    return _CompareRun(options, run_id, jobs, [None] * len(jobs), prices)


def _specification(
    options: CompareOptions, params: Params, table: list[tuple[str, dict[str, Any]]], identities: dict[str, Any]
) -> dict[str, Any]:
    """Everything that decides a run's answers: a named run resumes only under the same specification."""
    scorer = options.scorer
    return {
        "models": identities,
        "params": params.payload(),
        "system": options.system,
        "template": options.template,
        "n": options.n,
        "fallback": options.fallback,
        "prompts_sha256": hashlib.sha256(json.dumps([p for p, _ in table]).encode()).hexdigest(),
        "scorer": None if scorer is None else {str(k): describe(v) for k, v in scorer_table(scorer).items()},
        "version": importlib.metadata.version("opencode-lab"),
    }


def _with_images(prompt: str, extra: Mapping[str, Any], column: str | None, index: int) -> str | list[Any]:
    """The prompt as sent: with its row's image(s) from *column* attached, read once for every model."""
    if column is None:
        return prompt
    if column not in extra:
        raise InvalidRequestError(
            f"images={column!r} is not a column of the prompts (columns: {', '.join(map(str, extra)) or 'none'})"
        )
    value = extra[column]
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    sources = list(value) if isinstance(value, list | tuple) else [] if missing else [value]
    images = [Image.of(source, f"prompt {index} image") for source in sources]
    return [{"role": "user", "content": [prompt, *images]}] if images else prompt


def _rich_specification(tools: tuple[Tool, ...], asked: list[Any]) -> dict[str, Any]:
    """The tools and images of a run's specification (None when there are none, as in runs logged before)."""
    digests = [
        [p.digest for p in prompt[0]["content"] if isinstance(p, Image)] if isinstance(prompt, list) else []
        for prompt in asked
    ]
    return {
        "tools": [t.canonical() for t in tools] or None,
        "images_sha256": hashlib.sha256(json.dumps(digests).encode()).hexdigest() if any(digests) else None,
    }


def _open_run(lab: Session, options: CompareOptions, spec: dict[str, Any]) -> str:
    """The run's id.  A run log that cannot be used refuses a named run before anything is sent (it could
    not resume); an unnamed run goes on without it (warned once) under the session's id."""
    if options.run is not None and lab.runlog is None and lab.runlog_error is not None:
        raise _unresumable(options.run, lab.runlog_error)
    try:
        return _start_run(lab, options, spec)
    except ConfigError as exc:
        if options.run is not None:
            raise _unresumable(options.run, exc) from None
        lab.runlog_failed(exc)
        return lab.session_run_id


def _unresumable(run: str, problem: LabError) -> ConfigError:
    return ConfigError(f"compare(run={run!r}) needs its run log to resume, and {problem}")


def _start_run(lab: Session, options: CompareOptions, spec: dict[str, Any]) -> str:
    runlog = lab.runlog
    if runlog is None:
        return lab.session_run_id
    if options.run is not None:
        stored = runlog.run_meta(options.run)
        if stored is not None and options.resume == "new":
            runlog.retire(options.run)
        elif stored is not None and "spec" in stored:  # runs logged before specifications were kept resume as is
            differences = {k: (stored["spec"].get(k), v) for k, v in spec.items() if stored["spec"].get(k) != v}
            differences.pop("version", None)  # a newer opencode_lab may finish an older run
            if differences:
                raise RunMismatchError(options.run, differences)
    return runlog.start_run(options.run, {"spec": spec})


def _prices(lab: Session, models: list[str], options: CompareOptions) -> dict[str, tuple[float, float]]:
    """The dearest (input, output) price per million tokens among what may answer each model; a budget
    cannot be kept with a model whose price is unknown, so that is refused before anything is sent."""
    out = {}
    for model in models:
        groups = lab.catalog.resolve(model)
        deployments = [d for g in (groups if options.fallback else groups[:1]) for d in g.deployments]
        unknown = [d.id for d in deployments if d.input_price_per_mtok is None or d.output_price_per_mtok is None]
        if unknown:
            raise InvalidRequestError(
                f"budget_usd needs prices, and {', '.join(unknown)} has no known price; set input_price and "
                f"output_price in its [models.*] table, or drop budget_usd"
            )
        out[model] = (
            max(d.input_price_per_mtok or 0.0 for d in deployments),
            max(d.output_price_per_mtok or 0.0 for d in deployments),
        )
    return out


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
            try:
                prompt = template.format_map(row)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise InvalidRequestError(f"template cannot be filled for prompt {i}: {exc}") from None
        else:
            prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequestError(f"prompt {i} is empty or not a string: {prompt!r}")
        out.append((prompt, {k: v for k, v in row.items() if k != "prompt"}))
    return out


def _template_fields(template: str) -> list[str]:
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise InvalidRequestError(f"template is not a valid format string: {exc}") from None
    for _, name, _, conversion in parsed:
        if conversion not in (None, "r", "s", "a"):
            raise InvalidRequestError(f"template field {{{name}!{conversion}}}: unknown conversion (use !r, !s or !a)")
    return [name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name]


def _model_list(models: str | Sequence[str] | None, lab: Session) -> list[str]:
    if models is None:
        return list(lab.catalog.pool) or ["auto"]
    items = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    if not items or not all(isinstance(m, str) and m.strip() for m in items):
        raise InvalidRequestError(f"models must be a non-empty list of model ids, got {models!r}")
    return list(dict.fromkeys(m.strip() for m in items))


def _estimate_usd(state: _CompareRun, job: _Job) -> float:
    """What *job* may cost, for the budget: prompt tokens plus ``max_tokens`` when given, else the mean
    output this compare has seen from that model so far (the prompt's own length before the first answer)."""
    price_in, price_out = state.prices[job.model]
    prompt_tokens = job.request.estimated_tokens() - (job.request.params.max_tokens or 0)
    total, count = state.output_seen.get(job.model, (0, 0))
    output_tokens = job.request.params.max_tokens or (total / count if count else prompt_tokens)
    return (price_in * prompt_tokens + price_out * output_tokens) / 1e6


async def _execute(lab: Session, state: _CompareRun) -> None:
    """Send every job not finished yet.  A named run is shared with any other process running it: a row
    is sent by whoever claims it first, and read back by the others (see `RunLog.claim`)."""
    options = state.options
    state.task = asyncio.current_task()
    runlog = lab.runlog if state.run_id != lab.session_run_id else None  # None: this run is not in the log
    done = _completed(state, runlog)
    if runlog is not None and options.run is not None:
        state.owner, state.since = runlog.claimant(), time.time()
    bar = shown.progress(len(state.jobs), "compare", enabled=options.progress)
    limit = asyncio.Semaphore(options.concurrency or lab.settings.max_concurrency)

    async def one(job: _Job) -> None:
        key = (job.prompt_id, job.model, job.sample)
        row = done.get(key)
        while row is None:
            async with limit:
                granted, row = _claim(lab, state, runlog, key)
                if granted:
                    await _run_job(lab, state, job, runlog)
                    break
            if row is None:
                await asyncio.sleep(_POLL_S)  # another process is sending this row: wait for its answer
        if row is not None:
            _store(state, job, dict(row), runlog, resumed=True)
        if bar is not None:
            bar.update(state.rows[job.index])

    tasks = [asyncio.ensure_future(one(job)) for job in state.jobs]
    keeper = asyncio.ensure_future(_keep(lab, state, runlog))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in (*tasks, keeper):
            task.cancel()
        await asyncio.gather(*tasks, keeper, return_exceptions=True)
        _save(lab, state, runlog)
        if state.owner is not None:
            _logged(lab, runlog.release, state.owner)
        lab.flush()
        if bar is not None:
            bar.close()


async def _settled(state: _CompareRun) -> None:
    """Wait until a cancelled `_execute` has finished its cleanup (saving its rows)."""
    if state.task is not None and not state.task.done():
        await asyncio.wait([state.task])


def _completed(state: _CompareRun, runlog: Any) -> dict[tuple[Any, str, int], dict[str, Any]]:
    """The rows a named run finished before; a run log failing here refuses the run before anything is sent."""
    if runlog is None or state.options.run is None:
        return {}  # an unnamed run is new: nothing finished yet
    try:
        return runlog.completed(state.run_id)
    except ConfigError as exc:
        raise _unresumable(state.options.run, exc) from None


def _claim(lab: Session, state: _CompareRun, runlog: Any, key: tuple[Any, str, int]) -> tuple[bool, Any]:
    """Whether to send row *key* now, else the row another process finished (None: it is still at it)."""
    if state.owner is None:
        return True, None
    try:
        claim = runlog.claim(state.run_id, key, state.owner, since=state.since)
    except ConfigError as exc:  # the log broke mid-run: the answers matter more than sharing the run
        lab.runlog_failed(exc)
        state.owner = None
        return True, None
    return claim.granted, claim.row


async def _keep(lab: Session, state: _CompareRun, runlog: Any) -> None:
    """Every tick, save the rows finished since the last one (a crash loses at most a tick's rows, and a
    process waiting for them sees them) and renew this run's claims."""
    if runlog is None:
        return
    while True:
        await asyncio.sleep(_TICK_S)
        _save(lab, state, runlog)
        if state.owner is not None:
            _logged(lab, runlog.renew, state.owner)


def _logged(lab: Session, write: Callable[..., None], *args: Any) -> None:
    """Run a run-log write; a failure is reported (once per session), never raised: the rows stay in memory."""
    try:
        write(*args)
    except Exception as exc:
        lab.runlog_failed(exc)


async def _run_job(lab: Session, state: _CompareRun, job: _Job, runlog: Any) -> None:
    budget = state.options.budget_usd
    estimate = _estimate_usd(state, job) if budget is not None else 0.0
    if budget is not None and state.spent_usd + state.in_flight_usd + estimate > budget:
        error = BudgetExceededError(
            f"budget of ${budget:.4f} reached (spent ${state.spent_usd:.4f}, "
            f"in flight ${state.in_flight_usd:.4f}); request not sent"
        )
        _store(state, job, job.row(error, state.run_id), runlog)
        return
    state.in_flight_usd += estimate
    try:
        outcome = await lab.acall(
            job.request,
            sample=job.sample,
            cache=state.options.cache,
            fallback=state.options.fallback,
            run_id=state.run_id,
        )
    finally:
        state.in_flight_usd -= estimate
    if isinstance(outcome, ChatResult):
        if not math.isnan(outcome.cost_usd):
            state.spent_usd += outcome.cost_usd
        if outcome.output_tokens is not None:
            total, count = state.output_seen.get(job.model, (0, 0))
            state.output_seen[job.model] = (total + outcome.output_tokens, count + 1)
    if job.request.tools:  # checking the calls' arguments is bounded, but not work for the event loop
        row = await asyncio.to_thread(job.row, outcome, state.run_id)
    else:
        row = job.row(outcome, state.run_id)
    _store(state, job, row, runlog)


def _store(state: _CompareRun, job: _Job, row: dict[str, Any], runlog: Any, *, resumed: bool = False) -> None:
    state.rows[job.index] = row
    state.done += 1
    if not resumed and runlog is not None:
        state.unsaved.append(row)


def _save(lab: Session, state: _CompareRun, runlog: Any) -> None:
    """Save the finished rows, releasing their claims; a failing log keeps the rows in memory (warned once)."""
    if runlog is None or not state.unsaved:
        return
    rows, state.unsaved = state.unsaved, []
    _logged(lab, lambda: runlog.save_results(state.run_id, rows, owner=state.owner))


def _finish(state: _CompareRun) -> pd.DataFrame:
    interrupted = RunInterruptedError("the compare was interrupted before this row finished")
    rows = [
        row if row is not None else job.row(interrupted, state.run_id)
        for job, row in zip(state.jobs, state.rows, strict=True)
    ]
    frame = results_frame(rows)
    if state.jobs[0].request.params.schema is not None:  # structured output: the parsed objects too
        frame.insert(frame.columns.get_loc("response") + 1, "data", frame.response.map(json_value))
    return frame
