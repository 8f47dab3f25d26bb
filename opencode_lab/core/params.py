"""THE declaration of request parameters: adding one is one field here (plus tests).

`Params` is a frozen dataclass whose fields carry their own help text,
validation and command-line parsing in ``metadata``.  Everything else derives
from it: `ChatRequest` construction, the cache key, each provider's payload,
the keywords of ``chat``/``stream``/``compare``, the CLI options and the
``%%chat`` options.  Names follow the OpenAI chat-completions API, so a
provider speaking that API sends `Params.payload` as it is, but for ``schema``
(structured output), which each provider turns into its own constraint.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import InvalidRequestError
from .files import read_capped
from .provider_routing import ProviderRouting
from .residency import patterns
from .structured import MAX_SCHEMA_CHARS, Schema


def utf8(what: str, text: str) -> str:
    """Refuse text that cannot go on the wire (a lone surrogate) here, not as a UnicodeEncodeError in httpx."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"{what} is not valid Unicode: lone surrogate {text[exc.start]!r} at position {exc.start} "
            "cannot be encoded as UTF-8"
        ) from None
    return text


def _number(low: float, high: float) -> Callable[[str, object], float | None]:
    def check(name: str, value: object) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidRequestError(f"{name} must be a number between {low} and {high}, got {value!r}")
        if not low <= value <= high:
            raise InvalidRequestError(f"{name} must be between {low} and {high}, got {value!r}")
        return float(value) + 0.0  # -0.0 becomes 0.0: equal requests must give equal cache keys

    return check


def _integer(low: int, high: int) -> Callable[[str, object], int | None]:
    """An integer within bounds every provider accepts: a value past them would be refused by one vendor,
    sent as is to another and silently wrapped by a third (llama.cpp keeps 32 bits of a seed)."""

    def check(name: str, value: object) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"{name} must be an integer, got {_shown(value)}")
        if value < low:
            raise InvalidRequestError(f"{name} must be at least {low}, got {value!r}")
        if value > high:
            raise InvalidRequestError(f"{name} must be at most {high}, got {_shown(value)}")
        return value

    return check


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _strings(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, Iterable) else None
    if items is None or not all(isinstance(s, str) and s for s in items):
        raise InvalidRequestError(f"{name} must be a string or a list of non-empty strings, got {value!r}")
    return tuple(utf8(name, s) for s in items)


def _schema(name: str, value: object) -> Schema | None:
    return None if value is None else Schema.of(value, name)


def _schema_text(raw: str) -> str:
    """A schema on a command line: JSON text, or ``@path`` to a JSON file (a regular file of at most
    `MAX_SCHEMA_CHARS` bytes; an error never shows what the file holds)."""
    if not raw.startswith("@"):
        return raw
    what = f"schema file {raw[1:]!r}"
    data = read_capped(Path(raw[1:]).expanduser(), MAX_SCHEMA_CHARS, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{what} is not UTF-8 text") from None


def _provider_routing(name: str, value: object) -> ProviderRouting | None:
    return None if value is None else ProviderRouting.of(value, name)


def _param(
    default: object,
    help: str,
    check: Callable[[str, object], object],
    parse: Callable[[str], Any],
    short: str = "",
    *,
    wire: bool = True,
) -> Any:
    """A `Params` field: default, help text, validator, text parser and short option (for the CLI and ``%%chat``).

    A field that is not *wire* steers where the request goes rather than what a model is sent: it is part of
    the cache key and a run's specification (`Params.canonical`) but not of `Params.payload`.
    """
    metadata = {"help": help, "check": check, "parse": parse, "short": short, "wire": wire}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Params:
    """Output-relevant sampling parameters, and where a request may go; ``None`` (or ``()``) means "the default"."""

    temperature: float | None = _param(None, "sampling temperature, 0 to 2", _number(0.0, 2.0), float, "-t")
    max_tokens: int | None = _param(None, "upper bound on generated tokens", _integer(1, 2**31 - 1), int)
    seed: int | None = _param(
        None, "sampling seed, 0 to 2**32-1 (sample i of n gets a seed derived from it)", _integer(0, 2**32 - 1), int
    )
    top_p: float | None = _param(None, "nucleus sampling probability mass, 0 to 1", _number(0.0, 1.0), float)
    stop: tuple[str, ...] = _param((), "stop sequence (repeat for several)", _strings, str)
    schema: Schema | None = _param(  # noqa: RUF009 - a field(), as above; Schema is a frozen value
        None, "JSON Schema the answer must match: JSON text or @file.json", _schema, _schema_text
    )
    regions: tuple[str, ...] = _param(
        (), "allowed regions, glob patterns such as eu-* (repeat for several): a hard rule", patterns, str, wire=False
    )
    provider_routing: ProviderRouting | None = _param(  # noqa: RUF009 - a field(), as above
        None,
        "OpenRouter provider preferences (order, only, ignore, sort, data_collection, ...): JSON object text",
        _provider_routing,
        str,
        wire=False,
    )

    @classmethod
    def build(cls, **values: Any) -> Params:
        """Validate caller values; an unknown name raises `InvalidRequestError` with the closest valid one."""
        reject_unknown(values, NAMES, "request parameter")
        return cls(**{f.name: f.metadata["check"](f.name, values.get(f.name, f.default)) for f in fields(cls)})

    def payload(self) -> dict[str, Any]:
        """The parameters that were set and go on the wire, as OpenAI-style JSON values (``schema`` as the
        schema itself): what a provider sends."""
        return self._values("_payload", wire_only=True)

    def canonical(self) -> dict[str, Any]:
        """Every parameter that was set, routing ones (``regions``, ``provider_routing``) too, as JSON values:
        what a cache key, a run's specification and ``Params.build`` take."""
        return self._values("_canonical", wire_only=False)

    def _values(self, slot: str, *, wire_only: bool) -> dict[str, Any]:
        """Worked out once per instance (a compare's rows share one) and copied, so a caller may change it."""
        known = self.__dict__.get(slot)
        if known is None:
            values = ((f.name, getattr(self, f.name)) for f in _FIELDS if f.metadata["wire"] or not wire_only)
            known = {k: _json(v) for k, v in values if v is not None and v != ()}
            object.__setattr__(self, slot, known)  # not a field: equality and hashing never see it
        return dict(known)

    def for_sample(self, sample: int) -> Params:
        """The parameters of sample *sample* of a repeated request.

        With a seed, sample 0 keeps it (so ``n=1`` asks what ``chat`` asks) and sample
        ``i > 0`` gets a seed derived from ``(seed, i)``: samples differ where the model
        allows, and the whole set is reproducible.  Without a seed nothing changes.
        """
        if self.seed is None or sample == 0:
            return self
        digest = hashlib.sha256(f"{self.seed}:{sample}".encode()).digest()
        return replace(self, seed=int.from_bytes(digest[:4], "big") & 0x7FFFFFFF)


_FIELDS = fields(Params)
NAMES: tuple[str, ...] = tuple(f.name for f in _FIELDS)


def _json(value: object) -> Any:
    if isinstance(value, Schema):
        return value.document
    if isinstance(value, ProviderRouting):
        return value.body()
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Option:
    """How a parameter appears on a command line: what option parsers are generated from."""

    name: str
    help: str
    parse: Callable[[str], Any]
    short: str
    repeated: bool


def options() -> list[Option]:
    """Every parameter as a command-line option, in declaration order."""
    return [
        Option(f.name, f.metadata["help"], f.metadata["parse"], f.metadata["short"], f.default == ())
        for f in fields(Params)
    ]


def split(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate request parameters from the other keywords of a call."""
    params = {k: v for k, v in kwargs.items() if k in NAMES}
    return params, {k: v for k, v in kwargs.items() if k not in NAMES}


def reject_unknown(given: Iterable[str], valid: Iterable[str], what: str = "keyword") -> None:
    """Raise `InvalidRequestError` naming the first unknown name and the closest valid one."""
    valid = list(valid)
    for name in given:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(sorted(valid))})"
            raise InvalidRequestError(f"unknown {what} {name!r}{hint}")
