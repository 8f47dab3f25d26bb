"""Asking through a learned selector or a cascade: ``chat``/``compare`` with ``model=`` one of them.

Selection happens before routing: the selector (or cascade) picks the model, the router then picks
that model's deployment.  A compare through a selector is one ordinary compare per chosen model over
the prompts it got; its rows say what was asked for (``model``: the selector's name), which model was
chosen (``selected_model``), its predicted quality and every candidate's prediction (``predictions``,
JSON), so a later compare can check the selector's calibration.  Through a cascade, each step is a
compare of the prompts still open; a row keeps the accepted answer, its ``escalations`` and the
cascade's totals of ``cost_usd``, ``latency_s``, tokens and ``cost_saved_usd`` (what the whole cascade
spent on it).

Context-aware selection: a model is never chosen for a prompt longer than its context window (tokens as
`ChatRequest.estimated_tokens` counts them, which errs long) or needing tools, images or a schema none of
its deployments takes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.config import SelectorConfig
from ..core.errors import InvalidRequestError, LabError
from ..core.params import NAMES
from ..core.schema import KINDS, MEASUREMENTS
from ..core.types import ChatRequest, ChatResult
from ..evals.cascade import Cascade
from ..evals.selector import Selector
from ..routing.catalog import refuse_unsupported
from ..session.records import result_row
from . import compare as _compare
from .plan import prompt_table

if TYPE_CHECKING:
    import pandas as pd

    from ..session.session import Prompt, Session

#: the measurements a cascade row sums over every step it took (time to first token stays the kept answer's)
_TOTALS = tuple(name for name in MEASUREMENTS if KINDS[name] in ("float", "int") and name != "ttft_s")


def is_chooser(model: object) -> bool:
    return isinstance(model, Selector | Cascade)


def load(name: str, config: SelectorConfig) -> Selector:
    """The selector a TOML ``[selectors.NAME]`` names, choosing by its rule; its rows are named *name*."""
    selector = Selector.load(config.path, name=name)
    return selector.using(target=config.target, budget=config.budget, willingness_to_pay=config.willingness_to_pay)


async def eligible(lab: Session, models: Sequence[str], requests: Sequence[ChatRequest]) -> np.ndarray:
    """prompts x models: may the model take the request (context window, tools, images, schema)?"""
    out = np.ones((len(requests), len(models)), dtype=bool)
    for m, model in enumerate(models):
        groups = [lab.catalog.group(name) for name in await lab.aresolve(model)]
        windows = [d.context_length for g in groups for d in g.deployments]
        known = [w for w in windows if w is not None]
        window = max(known) if known and len(known) == len(windows) else None  # one unknown window: no limit known
        for p, request in enumerate(requests):
            if window is not None and request.estimated_tokens() > window:
                out[p, m] = False
                continue
            try:
                refuse_unsupported(request, groups, lab.providers)
            except InvalidRequestError:
                out[p, m] = False
    return out


async def achat(lab: Session, prompt: Prompt, chooser: Selector | Cascade, options: Mapping[str, Any]) -> ChatResult:
    """One prompt through *chooser*: the selected model's answer, or the cascade's accepted one."""
    if isinstance(chooser, Cascade):
        text = _text(lab.request(prompt, chooser.models[0], options, "chat"))
        *first, last = chooser.models
        for model in first:
            try:
                result = await lab.achat(prompt, model, **options)
            except LabError:
                continue  # a failed answer fails the check: escalate
            row = result_row(result, prompt=text, model=model)
            if await asyncio.to_thread(chooser.accepts, row):  # a judge's check asks a model: off the loop
                return result
        return await lab.achat(prompt, last, **options)
    request = lab.request(prompt, chooser.models[0], options, "chat")
    allowed = await eligible(lab, chooser.models, [request])
    (choice,) = chooser.select(_text(request), eligible=allowed)
    return await lab.achat(prompt, choice.model, **options)


def _text(request: ChatRequest) -> str:
    """What a selector reads and a check sees as the prompt: the last user message's text."""
    return next(m.content for m in reversed(request.messages) if m.role == "user")


async def acompare(
    lab: Session, prompts: object, chooser: Selector | Cascade, kwargs: Mapping[str, Any]
) -> pd.DataFrame:
    """Every prompt through *chooser*, as one results frame in input order."""
    import pandas as pd

    if kwargs.get("run") is not None:
        raise InvalidRequestError("run= (resumable runs) is not available through a selector or cascade yet")
    if isinstance(chooser, Cascade) and kwargs.get("n", 1) != 1:
        raise InvalidRequestError("a cascade asks one sample per prompt: drop n=")
    rest = {k: v for k, v in kwargs.items() if k != "template"}
    table = prompt_table(prompts, kwargs.get("template"))
    frame = pd.DataFrame([{**extra, "prompt": prompt} for prompt, extra in table])
    if isinstance(chooser, Cascade):
        out = await _cascade(lab, frame, chooser, rest)
    else:
        out = await _selected(lab, frame, chooser, rest)
    return out.sort_values(["prompt_id", "sample"], kind="stable").reset_index(drop=True)


async def _selected(lab: Session, frame: pd.DataFrame, selector: Selector, kwargs: Mapping[str, Any]) -> pd.DataFrame:
    import pandas as pd

    params = {k: v for k, v in kwargs.items() if k in NAMES}
    requests = [
        ChatRequest.build(p, model=selector.models[0], system=kwargs.get("system"), tools=kwargs.get("tools"), **params)
        for p in frame["prompt"]
    ]
    choices = selector.select(frame, eligible=await eligible(lab, selector.models, requests))
    parts = []
    for model in dict.fromkeys(c.model for c in choices):
        rows = np.array([i for i, c in enumerate(choices) if c.model == model])
        part = await _ask(lab, frame.iloc[rows], model, kwargs, rows)
        picked = [choices[i] for i in part["prompt_id"]]
        part["selected_model"] = model
        part["predicted_quality"] = [c.predicted_quality for c in picked]
        part["predictions"] = [json.dumps(c.predictions) for c in picked]
        part["model"] = selector.name
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


async def _cascade(lab: Session, frame: pd.DataFrame, plan: Cascade, kwargs: Mapping[str, Any]) -> pd.DataFrame:
    import pandas as pd

    open_rows = np.arange(len(frame))
    kept, spent = [], []
    for step, model in enumerate(plan.models):
        part = await _ask(lab, frame.iloc[open_rows], model, kwargs, open_rows)
        spent.append(part.set_index("prompt_id")[list(_TOTALS)].astype(float))
        if step == len(plan.models) - 1:
            accepted = pd.Series(True, index=part.index)
        else:
            accepted = (await asyncio.to_thread(part.apply, plan.accepts, axis=1)).astype(bool)
        kept.append(part[accepted].assign(escalations=step))
        open_rows = part.loc[~accepted, "prompt_id"].to_numpy(dtype=int)
        if not len(open_rows):
            break
    out = pd.concat(kept, ignore_index=True)
    steps = pd.concat(spent)
    totals = steps.groupby(level=0).sum(min_count=1).where(~steps.isna().groupby(level=0).any())  # unknown stays NA
    summed = totals.loc[out["prompt_id"]]
    for column in _TOTALS:
        values = summed[column].to_numpy()
        tokens = column.endswith("_tokens")
        out[column] = (
            pd.array([pd.NA if np.isnan(v) else round(v) for v in values], dtype="Int64") if tokens else values
        )
    out["selected_model"] = out["model"]
    out["model"] = plan.name
    return out


async def _ask(
    lab: Session, prompts: pd.DataFrame, model: str, kwargs: Mapping[str, Any], rows: np.ndarray
) -> pd.DataFrame:
    """An ordinary compare of *prompts* with one model; ``prompt_id`` set back to the row of the full table."""
    part = await _compare.acompare(lab, prompts.reset_index(drop=True), [model], **kwargs)
    part["prompt_id"] = rows[part["prompt_id"].to_numpy(dtype=int)]
    return part
