"""The DataFrame API: `compare` (prompts x models x samples -> one tidy frame), catalog and health frames.

Comparison semantics (see DESIGN.md): the ``model`` column is what was asked
for, ``served_by`` what answered; failover to a *different* model is off by
default (it would corrupt a comparison) while retries and other deployments of
the same model stay on; every failure is a row, never an exception; rows come
back in input order whatever order they finished in.
"""

from __future__ import annotations

import asyncio
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._secrets import get_logger
from .errors import BudgetExceededError, InvalidRequestError, LabError, error_type_of
from .metrics import result_row
from .types import ChatRequest

if TYPE_CHECKING:
    import pandas as pd

    from .lab import Lab

log = get_logger(__name__)
_FORMATTER = string.Formatter()


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


@dataclass
class _CompareRun:
    """Everything a compare needs to hand back partial rows after an interrupt."""

    run_id: str
    jobs: list[_Job]
    rows: list[dict[str, Any] | None]
    spent_usd: float = 0.0
    in_flight_usd: float = 0.0
    done: int = 0
    interrupted: bool = False
    unsaved: list[dict[str, Any]] = field(default_factory=list)


def compare(lab: Lab, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Synchronous `acompare`.  Ctrl-C returns the rows finished so far (the rest marked ``interrupted``)."""
    state = lab._loop.run(_prepare(lab, prompts, models, **kwargs))
    try:
        lab._loop.run(_execute(lab, state, **_exec_options(kwargs)))
    except KeyboardInterrupt:
        state.interrupted = True
        log.warning(
            "compare interrupted: returning %d finished of %d rows; rerun with the same run= to resume",
            state.done,
            len(state.jobs),
        )
    return _finish(lab, state, kwargs.get("scorer"))


async def acompare(lab: Lab, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Run every prompt against every model *n* times and return one row each.

    Parameters match `Lab.compare`: ``n``, ``system``, ``temperature``,
    ``max_tokens``, ``seed``, ``template`` (a ``{column}`` format string filled
    per row), ``concurrency``, ``cache`` (True, False or ``"refresh"``),
    ``progress``, ``budget_usd``, ``run`` (a name that makes the run
    resumable), ``fallback`` and ``scorer`` (``row -> float``, adds ``score``).
    """
    state = await _prepare(lab, prompts, models, **kwargs)
    try:
        await _execute(lab, state, **_exec_options(kwargs))
    except asyncio.CancelledError:
        state.interrupted = True
        raise
    return _finish(lab, state, kwargs.get("scorer"))


def _exec_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = ("concurrency", "cache", "progress", "budget_usd", "fallback")
    return {k: kwargs[k] for k in keys if k in kwargs}


async def _prepare(
    lab: Lab,
    prompts: Any,
    models: str | Sequence[str] | None,
    *,
    n: int = 1,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    template: str | None = None,
    run: str | None = None,
    scorer: Callable[[Any], float] | None = None,
    **_: Any,
) -> _CompareRun:
    """Validate everything and build the job list before a single request is sent."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidRequestError(f"n must be a positive integer (samples per prompt and model), got {n!r}")
    if scorer is not None and not callable(scorer):
        raise InvalidRequestError("scorer must be a callable taking a row and returning a float")
    table = _prompt_table(prompts, template)
    model_list = _model_list(models, lab)
    for model in model_list:
        await lab.aresolve(model)
    runlog = lab.runlog
    run_id = runlog.start_run(run, {"models": model_list, "n": n}) if runlog is not None else lab.session_run_id
    jobs: list[_Job] = []
    for prompt_id, (prompt, extra) in enumerate(table):
        for model in model_list:
            for sample in range(n):
                request = ChatRequest.build(
                    prompt, model=model, system=system, temperature=temperature, max_tokens=max_tokens, seed=seed
                )
                jobs.append(
                    _Job(len(jobs), prompt_id, prompt, model, sample, request, extra, _estimate_usd(lab, request))
                )
    return _CompareRun(run_id, jobs, [None] * len(jobs))


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


def _model_list(models: str | Sequence[str] | None, lab: Lab) -> list[str]:
    if models is None:
        return list(lab.catalog.pool) or ["auto"]
    items = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    if not items or not all(isinstance(m, str) and m.strip() for m in items):
        raise InvalidRequestError(f"models must be a non-empty list of model ids, got {models!r}")
    return list(dict.fromkeys(m.strip() for m in items))


def _estimate_usd(lab: Lab, request: ChatRequest) -> float:
    """Worst-case price of one request from catalog prices (0 when unknown or free), for the budget."""
    try:
        groups = lab.catalog.resolve(request.model)
    except LabError:
        return 0.0
    prices = [(d.input_price_per_mtok or 0.0, d.output_price_per_mtok or 0.0) for g in groups for d in g.deployments]
    if not prices:
        return 0.0
    prompt_tokens = request.estimated_tokens() - (request.max_tokens or 0)
    out_tokens = request.max_tokens or 512
    return max(p_in * prompt_tokens + p_out * out_tokens for p_in, p_out in prices) / 1e6


async def _execute(
    lab: Lab,
    state: _CompareRun,
    *,
    concurrency: int | None = None,
    cache: bool | str = True,
    progress: bool = True,
    budget_usd: float | None = None,
    fallback: bool = False,
) -> None:
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise InvalidRequestError(f"concurrency must be a positive integer, got {concurrency!r}")
    if budget_usd is not None and (not isinstance(budget_usd, int | float) or budget_usd < 0):
        raise InvalidRequestError(f"budget_usd must be a non-negative number, got {budget_usd!r}")
    if cache not in (True, False, "refresh"):
        raise InvalidRequestError(f"cache must be True, False or 'refresh', got {cache!r}")
    runlog = lab.runlog
    done = runlog.completed(state.run_id) if runlog is not None else {}
    bar = _progress_bar(len(state.jobs), progress)
    limit = asyncio.Semaphore(concurrency or lab.settings.max_concurrency)

    async def one(job: _Job) -> None:
        key = (job.prompt_id, job.model, job.sample)
        if key in done:
            _store(state, job, dict(done[key]), runlog, resumed=True)
        else:
            async with limit:
                await _run_job(lab, state, job, cache, budget_usd, fallback, runlog)
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


async def _run_job(
    lab: Lab, state: _CompareRun, job: _Job, cache: bool | str, budget_usd: float | None, fallback: bool, runlog: Any
) -> None:
    if budget_usd is not None and state.spent_usd + state.in_flight_usd + job.estimate_usd > budget_usd:
        error = BudgetExceededError(
            f"budget of ${budget_usd:.4f} reached (spent ${state.spent_usd:.4f}, "
            f"in flight ${state.in_flight_usd:.4f}); request not sent"
        )
        _store(
            state,
            job,
            {"error_type": error.error_type, "error": str(error)},
            runlog,
        )
        return
    state.in_flight_usd += job.estimate_usd
    try:
        outcome = await lab._call(job.request, sample=job.sample, cache=cache, fallback=fallback, run_id=state.run_id)
    finally:
        state.in_flight_usd -= job.estimate_usd
    if outcome.result is not None:
        row = result_row(outcome.result)
        if not math.isnan(outcome.result.cost_usd):
            state.spent_usd += outcome.result.cost_usd
    else:
        assert outcome.error is not None
        error = outcome.error
        row = {"error_type": error_type_of(error), "error": str(error), "attempts": len(error.attempts)}
    _store(state, job, row, runlog)


def _row(run_id: str, job: _Job, values: dict[str, Any]) -> dict[str, Any]:
    """A results row: the job's identity, then *values*, then the user's carried columns."""
    row = {
        **values,
        "run_id": run_id,
        "prompt_id": job.prompt_id,
        "prompt": job.prompt,
        "model": job.model,
        "sample": job.sample,
    }
    row.setdefault("cached", False)
    row.setdefault("attempts", 0)
    for key, value in job.extra.items():
        row.setdefault(key, value)
    return row


def _store(state: _CompareRun, job: _Job, values: dict[str, Any], runlog: Any, *, resumed: bool = False) -> None:
    row = _row(state.run_id, job, values)
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


def _finish(lab: Lab, state: _CompareRun, scorer: Callable[[Any], float] | None) -> pd.DataFrame:
    from .metrics import results_frame

    interrupted = {"error_type": "interrupted", "error": "the compare was interrupted before this row finished"}
    rows = [
        row if row is not None else _row(state.run_id, job, interrupted)
        for job, row in zip(state.jobs, state.rows, strict=True)
    ]
    frame = results_frame(rows)
    if scorer is not None:
        frame["score"] = [_score(scorer, row) for _, row in frame.iterrows()]
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


def models_frame(lab: Lab, filter: str | None = None, tag: str | None = None) -> pd.DataFrame:
    """The catalog: one row per deployment, with the names that reach it and its health."""
    import pandas as pd

    health = lab.router.health()
    groups: dict[str, list[str]] = {}
    for name, members in lab.catalog.groups.items():
        for dep_id in members:
            if name != dep_id:
                groups.setdefault(dep_id, []).append(name)
    for alias in lab.catalog.aliases:
        try:
            reached = [d.id for g in lab.catalog.resolve(alias) for d in g.deployments]
        except LabError:
            continue
        for dep_id in reached:
            groups.setdefault(dep_id, []).append(alias)
    rows = []
    for dep in sorted(lab.catalog.deployments.values(), key=lambda d: d.id):
        if (
            filter
            and filter.lower() not in dep.id.lower()
            and not any(filter.lower() in g.lower() for g in groups.get(dep.id, []))
        ):
            continue
        if tag and tag not in dep.tags:
            continue
        rows.append(
            {
                "id": dep.id,
                "provider": dep.provider,
                "context_length": dep.context_length,
                "input_price_per_mtok": dep.input_price_per_mtok,
                "output_price_per_mtok": dep.output_price_per_mtok,
                "tags": ",".join(dep.tags),
                "aliases": ",".join(groups.get(dep.id, [])),
                "health": health[dep.id]["state"],
                "description": dep.description,
            }
        )
    columns = [
        "id",
        "provider",
        "context_length",
        "input_price_per_mtok",
        "output_price_per_mtok",
        "tags",
        "aliases",
        "health",
        "description",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("id")


def health_frame(lab: Lab) -> pd.DataFrame:
    import pandas as pd

    columns = [
        "state",
        "success_rate",
        "latency_p50_s",
        "calls",
        "failures",
        "last_error",
        "open_for_s",
        "paused_for_s",
        "in_flight",
    ]
    rows = []
    now = lab.router.clock.now()
    for dep_id, snap in sorted(lab.router.health().items()):
        until = snap.get("open_until")
        rows.append(
            {
                "deployment": dep_id,
                **{k: snap.get(k) for k in columns},
                "open_for_s": max(0.0, until - now) if isinstance(until, float) else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["deployment", *columns]).set_index("deployment")


async def health_check(lab: Lab) -> pd.DataFrame:
    """Ask every provider for its model list; report latency and the error, if any."""
    import time

    import pandas as pd

    async def probe(name: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            models = await asyncio.wait_for(lab.providers[name].list_models(), lab.settings.timeout_s)
        except (LabError, TimeoutError) as exc:
            return {
                "provider": name,
                "ok": False,
                "latency_s": time.perf_counter() - started,
                "models": 0,
                "error": f"{error_type_of(exc)}: {exc}",
            }
        return {
            "provider": name,
            "ok": True,
            "latency_s": time.perf_counter() - started,
            "models": len(models),
            "error": None,
        }

    rows = await asyncio.gather(*(probe(name) for name in sorted(lab.providers)))
    return pd.DataFrame(rows).set_index("provider")
