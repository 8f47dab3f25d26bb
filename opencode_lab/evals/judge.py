"""LLM-as-judge: a scorer that asks a model to grade each answer against a rubric.

``judge(model="local/smollm2-135m", rubric="Is the answer correct?", scale=(1, 5))``
is a scorer like any other (``compare(..., scorer={"judge": j})``).  Every verdict
is asked through the Lab (routed, rate-limited, cached, in the run log, its cost
in ``judge_cost_usd``) at temperature 0 with a fixed seed, so a rerun gives the
same verdicts for free.  The judge asks for a JSON verdict under a schema (a local
model is constrained by llama.cpp's grammar, so even SmolLM2-135M answers in that
shape), and reads a verdict leniently when a server ignores the schema: a JSON
object anywhere in the text, ``score: 4``, or ``4/5``.  A verdict it cannot read is
NaN with the raw text in the reason.  Scores are mapped onto [0, 1]; the reason
starts with the verdict as given (``4/5: ...``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import AllAttemptsFailedError, InvalidRequestError, LabError, SchemaMismatchError, error_type_of
from ..core.params import Params
from ..core.structured import unfenced
from ..core.types import ChatRequest, ChatResult
from .grading import Graded
from .scorers import Score, is_missing

if TYPE_CHECKING:
    from ..core.asking import Asker

NAN = math.nan
SYSTEM = (
    "You are an impartial grader. You read a question, sometimes a reference answer, and an answer, "
    "and grade the answer by the rubric. Reply with JSON only."
)
TEMPLATE = (
    "Rubric: {rubric}\n\nQuestion:\n{prompt}\n\n{reference}Answer to grade:\n{response}\n\n"
    'Grade the answer from {low} (worst) to {high} (best). Reply with JSON only: {{"score": <integer {low}-{high}>, '
    '"reason": "<one short sentence>"}}'
)
REFERENCE = "Reference answer:\n{expected}\n\n"
DEFAULT_RUBRIC = "Is the answer correct, relevant and concise?"
#: a verdict's reason is one short sentence: bounded, so a small constrained model cannot ramble to max_tokens
REASON_CHARS = 60
_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
_LABELLED = re.compile(r"score\W{0,3}(-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Judge:
    """A judge's settings; see `judge`.  ``lab`` answers when the judge is called row by row;
    in ``compare`` the judge asks through the compare's own Lab."""

    model: str
    rubric: str = DEFAULT_RUBRIC
    scale: tuple[int, int] = (1, 5)
    reference: str | None = "expected"
    seed: int = 0
    max_tokens: int = 96
    structured: bool = True
    lab: Asker | None = field(default=None, repr=False, compare=False)

    def schema(self) -> dict[str, Any]:
        """The verdict's JSON Schema: an integer on the scale and a reason."""
        low, high = self.scale
        score = {"type": "integer", "enum": list(range(low, high + 1))}
        return {
            "title": "verdict",
            "type": "object",
            "properties": {"score": score, "reason": {"type": "string", "maxLength": REASON_CHARS}},
            "required": ["score", "reason"],
        }

    def params(self, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The request parameters of every verdict: greedy, seeded, short, and in the verdict's shape
        (*schema*, by default `schema`)."""
        extra = {"schema": dict(schema or self.schema())} if self.structured else {}
        return {"temperature": 0.0, "seed": self.seed, "max_tokens": self.max_tokens, **extra}

    def messages(self, row: Mapping[str, Any]) -> list[dict[str, str]]:
        """What the judge is asked about *row* (its prompt, reference when present, and response)."""
        expected = row.get(self.reference) if self.reference else None
        shown = "" if is_missing(expected) else REFERENCE.format(expected=expected)
        low, high = self.scale
        question = TEMPLATE.format(  # values go in verbatim: braces in an answer are safe
            rubric=self.rubric, prompt=row.get("prompt"), reference=shown, response=row.get("response"),
            low=low, high=high,
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]

    def spec(self) -> dict[str, Any]:
        """What a run's specification records about this judge: enough to ask it again the same way."""
        return {
            "judge": self.model,
            "rubric": self.rubric,
            "scale": list(self.scale),
            "reference": self.reference,
            "system": SYSTEM,
            "prompt": TEMPLATE,
            "params": self.params(),
        }

    def read(self, text: str) -> Score:
        """The verdict in *text* on [0, 1]; NaN with the raw text when there is none on the scale."""
        return parse_verdict(text, self.scale)

    def __call__(self, row: Mapping[str, Any]) -> Score:
        lab = self.lab
        if lab is None:
            raise InvalidRequestError("a judge called on one row needs the Lab that asks: judge(..., lab=lab)")
        return lab.block_on(self.ascore(lab, [row]))[0].score

    async def ascore(
        self, lab: Asker, rows: Sequence[Mapping[str, Any]], *, run_id: str | None = None
    ) -> list[Graded]:
        """One verdict per row, asked concurrently through *lab*; a failed row or call is NaN, never a raise."""
        limit = asyncio.Semaphore(lab.max_concurrency)

        async def one(row: Mapping[str, Any]) -> Graded:
            if isinstance(row.get("error_type"), str) or not isinstance(row.get("response"), str):
                return Graded(Score(NAN), 0.0)
            async with limit:
                outcome = await ask(lab, self, self.messages(row), run_id)
            return self.graded(outcome)

        return list(await asyncio.gather(*(one(row) for row in rows)))

    def graded(self, outcome: ChatResult | LabError) -> Graded:
        if isinstance(outcome, ChatResult):
            return Graded(self.read(outcome.text), outcome.cost_usd)
        raw = raw_answer(outcome)
        if raw is not None:
            return Graded(self.read(raw), NAN)
        return Graded(Score(NAN, f"judge call failed ({error_type_of(outcome)}): {outcome}"), NAN)


async def ask(
    lab: Asker,
    judge: Judge,
    messages: list[dict[str, str]],
    run_id: str | None,
    schema: Mapping[str, Any] | None = None,
) -> ChatResult | LabError:
    """One question to the judge's model through the Lab (no failover: another model is another judge); a
    question that cannot be asked (text that is not valid Unicode, say) is returned as its error."""
    try:
        request = ChatRequest.build(messages, model=judge.model, **judge.params(schema))
    except InvalidRequestError as exc:
        return exc
    return await lab.acall(request, fallback=False, run_id=run_id)


def raw_answer(error: LabError) -> str | None:
    """The answer text a schema mismatch kept, else None."""
    if isinstance(error, AllAttemptsFailedError):
        error = error.last if isinstance(error.last, LabError) else error
    return error.text if isinstance(error, SchemaMismatchError) else None


def judge(
    model: str,
    rubric: str = DEFAULT_RUBRIC,
    scale: tuple[int, int] | int = (1, 5),
    *,
    reference: str | None = "expected",
    seed: int = 0,
    max_tokens: int = 96,
    structured: bool = True,
    lab: Asker | None = None,
) -> Judge:
    """A scorer that asks *model* to grade each answer by *rubric* on *scale* (``(low, high)`` integers, or
    ``high`` for ``(1, high)``), showing the row's *reference* column when it has a value.  ``structured``
    asks for the verdict under a JSON Schema (turn it off for a server that refuses ``response_format``)."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"judge model must be a model id, got {model!r}")
    if not isinstance(rubric, str) or not rubric.strip():
        raise InvalidRequestError("judge rubric must be a non-empty string")
    bounds = (1, scale) if isinstance(scale, int) and not isinstance(scale, bool) else scale
    if (
        not isinstance(bounds, tuple | list)
        or len(bounds) != 2
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        or bounds[0] >= bounds[1]
    ):
        raise InvalidRequestError(f"judge scale must be (low, high) integers with low < high, got {scale!r}")
    found = Judge(model.strip(), rubric, (bounds[0], bounds[1]), reference, seed, max_tokens, structured, lab)
    Params.build(**found.params())  # seed, max_tokens and the verdict schema are checked here, not mid-grading
    return found


def parse_verdict(text: str, scale: tuple[int, int]) -> Score:
    """A verdict on [0, 1] from a judge's text: a JSON object with ``score`` (and ``reason``), else
    ``score: N``, else ``N/high``; NaN with the raw text when none is found or it is off the scale."""
    low, high = scale
    found = _from_json(text) or _from_text(text, high)
    if found is None:
        return Score(NAN, f"unparsable verdict: {text.strip()!r}")
    value, reason = found
    if not low <= value <= high:
        return Score(NAN, f"verdict {value:g} is off the scale {low}-{high}: {text.strip()!r}")
    said = f"{value:g}/{high}"
    return Score((value - low) / (high - low), f"{said}: {reason}" if reason else said)


def _from_json(text: str) -> tuple[float, str | None] | None:
    for candidate in (unfenced(text), *_OBJECT.findall(text)):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and "score" in data:
            value = _number(data["score"])
            if value is not None:
                reason = data.get("reason")
                return value, reason.strip() if isinstance(reason, str) and reason.strip() else None
    return None


def _from_text(text: str, high: int) -> tuple[float, str | None] | None:
    match = _LABELLED.search(text) or re.search(rf"(-?\d+(?:\.\d+)?)\s*/\s*{high}\b", text)
    return (float(match.group(1)), None) if match else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
