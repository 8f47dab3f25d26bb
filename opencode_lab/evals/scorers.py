"""Scorers: plain callables that grade one results row, and the built-in ones.

The interface, which the built-ins only exemplify::

    def scorer(row: Mapping[str, Any]) -> float | Score: ...

*row* is one results row (a pandas Series or a dict): ``response``, ``prompt``,
``model`` and the prompt table's own columns, such as ``expected``.  Return a
float in [0, 1] (1 is best), or a `Score` to say why; NaN means "could not be
scored" (no reference, an answer with nothing to parse), which is not the same
as 0.  A scorer may raise: `score_rows` turns that row into NaN with the error
text and goes on, so one odd row never costs the batch.

Each built-in reads its reference from the column named by ``reference``
(default ``expected``) and gives a reason whenever it cannot score or an answer
fails.  ``compare(..., scorer={"exact": exact(), "f1": similarity()})`` adds a
``score_<name>`` column per scorer and a ``reason_<name>`` column where reasons
were given; a plain callable adds ``score`` (and ``reason``).
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.structured import Schema, unfenced

if TYPE_CHECKING:
    import pandas as pd

NAN = math.nan
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class Score:
    """A score in [0, 1] (NaN: not scorable) and, optionally, why."""

    value: float
    reason: str | None = None


#: the scorer interface: a results row in, a float in [0, 1] or a `Score` out
Scorer = Callable[[Mapping[str, Any]], "float | Score"]


@dataclass(frozen=True)
class _Builtin:
    """The shared part of the built-ins: the reference column and the answer's text."""

    _: KW_ONLY
    reference: str = "expected"

    def __call__(self, row: Mapping[str, Any]) -> Score:
        answer = row.get("response")
        if not isinstance(answer, str):
            return Score(NAN, "no answer to score")
        return self.check(answer, row)

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        raise NotImplementedError

    def expected(self, row: Mapping[str, Any]) -> str | Score:
        """The reference as text, or the NaN score saying why there is none."""
        if self.reference not in row:
            return Score(NAN, f"no {self.reference!r} column to compare with")
        value = row[self.reference]
        if is_missing(value):
            return Score(NAN, f"no reference in {self.reference!r}")
        return _as_text(value)


@dataclass(frozen=True)
class exact(_Builtin):
    """1 when the answer equals the reference.  Whitespace runs count as one space and ends are
    stripped unless ``ignore_whitespace=False``; case matters unless ``ignore_case=True``."""

    ignore_case: bool = False
    ignore_whitespace: bool = True

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        reference = self.expected(row)
        if isinstance(reference, Score):
            return reference
        same = _norm(answer, self.ignore_case, self.ignore_whitespace) == _norm(
            reference, self.ignore_case, self.ignore_whitespace
        )
        return Score(1.0) if same else Score(0.0, f"answer differs from {reference!r}")


@dataclass(frozen=True)
class contains(_Builtin):
    """1 when the reference occurs in the answer (same case and whitespace options as `exact`)."""

    ignore_case: bool = False
    ignore_whitespace: bool = True

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        reference = self.expected(row)
        if isinstance(reference, Score):
            return reference
        needle = _norm(reference, self.ignore_case, self.ignore_whitespace)
        found = needle in _norm(answer, self.ignore_case, self.ignore_whitespace)
        return Score(1.0) if found else Score(0.0, f"{reference!r} not in the answer")


@dataclass(frozen=True)
class regex(_Builtin):
    """1 when *pattern* is found in the answer (`re.search`); without *pattern*, the reference column
    holds one pattern per row.  A bad pattern given here is refused at once; one in a row is NaN."""

    pattern: str | None = None
    ignore_case: bool = False
    compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "compiled", _compile(self.pattern, self.ignore_case))

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        compiled = self.compiled
        if compiled is None:
            pattern = self.expected(row)
            if isinstance(pattern, Score):
                return pattern
            try:
                compiled = _compile(pattern, self.ignore_case)
            except InvalidRequestError as exc:
                return Score(NAN, str(exc))
        return Score(1.0) if compiled.search(answer) else Score(0.0, f"no match for {compiled.pattern!r}")


@dataclass(frozen=True)
class one_of(_Builtin):
    """1 when the whole answer is one of *choices*; without *choices*, the reference column holds them
    (a list, or text split on ``sep``).  Case and whitespace options as in `exact`."""

    choices: Sequence[str] | None = None
    ignore_case: bool = False
    ignore_whitespace: bool = True
    sep: str = "|"

    def __post_init__(self) -> None:
        if self.choices is not None:
            if isinstance(self.choices, str) or not all(isinstance(c, str) for c in self.choices):
                raise InvalidRequestError(f"one_of choices must be a list of strings, got {self.choices!r}")
            object.__setattr__(self, "choices", tuple(self.choices))

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        choices: Iterable[Any] | None = self.choices
        if choices is None:
            value = row.get(self.reference)
            if isinstance(value, list | tuple):
                choices = value
            else:
                text = self.expected(row)
                if isinstance(text, Score):
                    return text
                choices = text.split(self.sep)
        accepted = {_norm(_as_text(c), self.ignore_case, self.ignore_whitespace) for c in choices}
        if _norm(answer, self.ignore_case, self.ignore_whitespace) in accepted:
            return Score(1.0)
        return Score(0.0, f"answer is not one of {sorted(accepted)}")


@dataclass(frozen=True)
class numeric(_Builtin):
    """1 when the first number in the answer is within ``tolerance`` of the reference (relative to it
    when ``relative=True``).  An answer without a number is NaN with that reason, not 0."""

    tolerance: float = 0.0
    relative: bool = False

    def __post_init__(self) -> None:
        ok = isinstance(self.tolerance, int | float) and not isinstance(self.tolerance, bool)
        if not ok or not math.isfinite(self.tolerance) or self.tolerance < 0:
            raise InvalidRequestError(f"numeric tolerance must be a non-negative number, got {self.tolerance!r}")

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        reference = self.expected(row)
        if isinstance(reference, Score):
            return reference
        target = first_number(reference)
        if target is None:
            return Score(NAN, f"reference {reference!r} is not a number")
        got = first_number(answer)
        if got is None:
            return Score(NAN, "no number in the answer")
        allowed = self.tolerance * abs(target) if self.relative else self.tolerance
        if abs(got - target) <= allowed:
            return Score(1.0)
        return Score(0.0, f"{got:g} is not within {allowed:g} of {target:g}")


@dataclass(frozen=True)
class json_valid:
    """1 when the answer is JSON (inside a Markdown code fence too, unless ``fences=False``)."""

    fences: bool = True

    def __call__(self, row: Mapping[str, Any]) -> Score:
        answer = row.get("response")
        if not isinstance(answer, str):
            return Score(NAN, "no answer to score")
        try:
            json.loads(unfenced(answer) if self.fences else answer)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        return Score(1.0)


@dataclass(frozen=True)
class json_schema:
    """1 when the answer is JSON matching *schema* (a JSON Schema dict or a pydantic model class),
    validated with ``jsonschema``; 0 with the first problem as the reason otherwise."""

    schema: Any
    fences: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", Schema.of(self.schema, "json_schema's schema"))

    def __call__(self, row: Mapping[str, Any]) -> Score:
        answer = row.get("response")
        if not isinstance(answer, str):
            return Score(NAN, "no answer to score")
        try:
            data = json.loads(unfenced(answer) if self.fences else answer)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        problems = self.schema.errors(data)
        return Score(0.0, problems[0]) if problems else Score(1.0)


@dataclass(frozen=True)
class similarity(_Builtin):
    """Lexical overlap with the reference, in [0, 1]: ``method="f1"`` is SQuAD's token F1 (lower case,
    no punctuation or articles), ``"rouge_l"`` the ROUGE-L F-measure (longest common token subsequence).
    Cheap and offline; it rewards shared words, not shared meaning."""

    method: str = "f1"

    def __post_init__(self) -> None:
        if self.method not in _OVERLAPS:
            raise InvalidRequestError(f"similarity method must be one of {sorted(_OVERLAPS)}, got {self.method!r}")

    def check(self, answer: str, row: Mapping[str, Any]) -> Score:
        reference = self.expected(row)
        if isinstance(reference, Score):
            return reference
        wanted = tokens(reference)
        if not wanted:
            return Score(NAN, f"reference {reference!r} has no words")
        return Score(_OVERLAPS[self.method](tokens(answer), wanted))


def tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, punctuation and articles removed, split on whitespace."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(answer: Sequence[str], reference: Sequence[str]) -> float:
    common = sum(min(answer.count(t), reference.count(t)) for t in set(reference))
    if common == 0:
        return 0.0
    precision, recall = common / len(answer), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def rouge_l(answer: Sequence[str], reference: Sequence[str]) -> float:
    if not answer or not reference:
        return 0.0
    previous = [0] * (len(reference) + 1)
    for a in answer:
        current = [0]
        for j, r in enumerate(reference):
            current.append(previous[j] + 1 if a == r else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(answer), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


_OVERLAPS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {"f1": token_f1, "rouge_l": rouge_l}
_BUILTINS = (_Builtin, json_valid, json_schema)


def first_number(text: str) -> float | None:
    """The first number written in *text* (``-1,234.5e3`` style; thousands commas allowed), or None."""
    match = _NUMBER.search(text)
    return float(match.group().replace(",", "")) if match else None


# -- applying scorers ------------------------------------------------------------------------------------------------


def scorer_table(scorer: Scorer | Mapping[str, Scorer]) -> dict[str | None, Scorer]:
    """``{column suffix: scorer}``: None for one plain callable (column ``score``), each name of a dict
    (``score_<name>``).  Refuses, naming the culprit, anything that is not a callable or a name that
    cannot be a column suffix."""
    if isinstance(scorer, Mapping):
        if not scorer:
            raise InvalidRequestError("scorer is an empty dict; give at least one name -> scorer")
        for name, item in scorer.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise InvalidRequestError(f"scorer name {name!r} must be an identifier (it names score_{name})")
            _check_callable(item, f"scorer {name!r}")
        return {str(name): item for name, item in scorer.items()}
    _check_callable(scorer, "scorer")
    return {None: scorer}


def _check_callable(item: object, what: str) -> None:
    if isinstance(item, type) and issubclass(item, _BUILTINS):
        raise InvalidRequestError(f"{what} is the class {item.__name__}; call it: {item.__name__}()")
    if not callable(item):
        raise InvalidRequestError(f"{what} must be a callable taking a row and returning a float, not {item!r}")


def describe(scorer: object) -> Any:
    """What a run's specification records for a scorer: its own ``spec()`` (a judge's model and prompt),
    a built-in's repr (its options), else its name."""
    spec = getattr(scorer, "spec", None)
    if callable(spec):
        return spec()
    if isinstance(scorer, _BUILTINS):
        return repr(scorer)
    return getattr(scorer, "__qualname__", type(scorer).__name__)


def score_row(scorer: Scorer, row: Mapping[str, Any]) -> Score:
    """*scorer* on one row, never raising: a failed call is NaN (its error columns say why); an exception,
    or a value that is not a number, is NaN with the reason."""
    if isinstance(row.get("error_type"), str):
        return Score(NAN)
    try:
        value = scorer(row)
    except Exception as exc:  # one bad row must not lose the frame
        return Score(NAN, f"scorer raised {type(exc).__name__}: {exc}")
    number, reason = (value.value, value.reason) if isinstance(value, Score) else (value, None)
    if is_missing(number):
        return Score(NAN, reason)
    if not isinstance(number, str | bytes):
        try:
            return Score(float(number), reason)
        except (TypeError, ValueError):
            pass
    return Score(NAN, f"scorer returned {number!r}, not a number")


def score_rows(scorer: Scorer, rows: Iterable[Mapping[str, Any]]) -> list[Score]:
    return [score_row(scorer, row) for row in rows]


def with_scores(frame: pd.DataFrame, scored: Mapping[str | None, Sequence[Score]]) -> pd.DataFrame:
    """*frame* with each scorer's column after ``response`` (``score`` for the unnamed one, else
    ``score_<name>``, in order) and, for each scorer that gave any reason, ``reason[_<name>]`` at the end.
    Columns of those names already there (an earlier grading) are replaced."""
    import pandas as pd

    suffixes = ["" if name is None else f"_{name}" for name in scored]
    out = frame.drop(columns=[c for s in suffixes for c in (f"score{s}", f"reason{s}") if c in frame.columns])
    at = list(out.columns).index("response") + 1 if "response" in out.columns else len(out.columns)
    for suffix, scores in zip(suffixes, scored.values(), strict=True):
        out.insert(at, f"score{suffix}", [s.value for s in scores])
        at += 1
    for suffix, scores in zip(suffixes, scored.values(), strict=True):
        if any(s.reason is not None for s in scores):
            out[f"reason{suffix}"] = pd.Series([s.reason for s in scores], index=out.index, dtype=object)
    return out


def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise InvalidRequestError(f"regex pattern {pattern!r} is invalid: {exc}") from None


def _norm(text: str, ignore_case: bool, ignore_whitespace: bool) -> str:
    text = " ".join(text.split()) if ignore_whitespace else text
    return text.casefold() if ignore_case else text


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA or NaT: a cell with nothing in it."""
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _as_text(value: object) -> str:
    """A reference as text: 7.0 read from a CSV column is ``"7"``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
