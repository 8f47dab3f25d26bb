"""What a compare will do, decided before anything is sent: options, the prompt table, the jobs and the
run's specification (what a named run must match to resume)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.content import Image
from ..core.errors import InvalidRequestError, LabError
from ..core.params import NAMES, Params, reject_unknown, utf8
from ..core.tools import Tool, calls_valid
from ..core.tools import tools as tool_list
from ..core.types import ChatRequest, ChatResult
from ..evals.scorers import describe, scorer_table
from ..session.cache import CachePolicy
from ..session.records import result_row

if TYPE_CHECKING:
    from ..session.session import Session

_FORMATTER = string.Formatter()
RowKey = tuple[Any, str, int]
"""(prompt_id, model, sample): a row's identity within a run."""


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


def _positive_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


@dataclass
class Job:
    """One row to produce: a prompt, a model, a sample index and the request that asks it."""

    index: int
    prompt_id: Any
    prompt: str
    model: str
    sample: int
    request: ChatRequest
    extra: dict[str, Any]

    @property
    def key(self) -> RowKey:
        """The row's identity in a run: what a resumed or shared run looks it up by."""
        return (self.prompt_id, self.model, self.sample)

    def row(self, outcome: ChatResult | LabError, run_id: str) -> dict[str, Any]:
        """The job's results row: the outcome, its identity, then the user's carried columns."""
        row = result_row(
            outcome, run_id=run_id, prompt_id=self.prompt_id, prompt=self.prompt, model=self.model, sample=self.sample
        )
        if self.request.tools:  # did the model call an offered tool with arguments its schema accepts?
            answered = isinstance(outcome, ChatResult) and calls_valid(outcome.tool_calls, self.request.tools)
            row["tool_call_valid"] = answered
        for key, value in self.extra.items():
            row.setdefault(key, value)
        return row


@dataclass(frozen=True)
class Plan:
    """Everything a compare sends, in input order, and the specification a named run is kept under."""

    options: CompareOptions
    params: Params
    models: list[str]
    jobs: list[Job]
    spec: dict[str, Any]
    asked_with: dict[str, Params]
    """Each model's parameters: the call's over those its configuration declares."""


async def make_plan(
    lab: Session, prompts: object, models: str | Sequence[str] | None, kwargs: Mapping[str, Any]
) -> Plan:
    """Validate everything and build the job list before a single request is sent."""
    options, params = CompareOptions.parse(kwargs)
    table = prompt_table(prompts, options.template)
    model_list = _model_list(models, lab)
    identities = {model: await lab.aidentities(model) for model in model_list}
    tools = tool_list(options.tools)
    asked = [_with_images(prompt, extra, options.images, i) for i, (prompt, extra) in enumerate(table)]
    asked_with = {model: params.under(lab.catalog.declared_params(model)) for model in model_list}
    spec = _specification(options, params, table, identities) | _rich_specification(tools, asked)
    if declared := {m: p.canonical() for m, p in asked_with.items() if p != params}:
        spec["model_params"] = declared  # a named run resumes only under the same per-model parameters
    jobs: list[Job] = []
    built = {  # parameters and tools validated once per model; every row asks its own prompt with them
        model: ChatRequest.build(
            asked[0], model=model, system=options.system, tools=tools, **asked_with[model].canonical()
        )
        for model in model_list
    }
    for prompt_id, (prompt, extra) in enumerate(table):
        for model in model_list:
            request = built[model].asking(asked[prompt_id], options.system)
            for sample in range(options.n):
                jobs.append(Job(len(jobs), prompt_id, prompt, model, sample, request, extra))
    return Plan(options, params, model_list, jobs, spec, asked_with)


def _specification(
    options: CompareOptions, params: Params, table: list[tuple[str, dict[str, Any]]], identities: dict[str, Any]
) -> dict[str, Any]:
    """Everything that decides a run's answers: a named run resumes only under the same specification."""
    scorer = options.scorer
    return {
        "models": identities,
        "params": params.canonical(),
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


def prompt_table(prompts: object, template: str | None) -> list[tuple[str, dict[str, Any]]]:
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
        rows = [{str(k): v for k, v in record.items()} for record in prompts.to_dict("records")]
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
        prompt: Any
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
