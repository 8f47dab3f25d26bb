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
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
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


#: ``reasoning_effort`` levels, least to most thinking (providers take the subset they know)
EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high")


def _effort(name: str, value: object) -> str | None:
    if value is None or value in EFFORTS:
        return value
    close = difflib.get_close_matches(str(value), EFFORTS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InvalidRequestError(f"{name} must be one of {', '.join(EFFORTS)}, got {_shown(value)}{hint}")


def _flag(name: str, value: object) -> bool | None:
    """A switch: True, or None for off (False is the same request as not asking, so the same cache key)."""
    if value is None or value is False:
        return None
    if value is True:
        return True
    raise InvalidRequestError(f"{name} must be True or False, got {_shown(value)}")


def switch_word(raw: str) -> bool | None:
    """How a command line or a variable says a switch: 1/true/yes/on or 0/false/no/off (any case); else None."""
    text = raw.strip().lower()
    if text in ("true", "on", "yes", "1"):
        return True
    if text in ("false", "off", "no", "0"):
        return False
    return None


def _switch(raw: str) -> bool:
    value = switch_word(raw)
    if value is None:
        raise InvalidRequestError(f"expected true or false, got {raw!r}")
    return value


#: the largest passthrough option value, as JSON: a request parameter, not a document
MAX_OPTION_CHARS = 100_000


class Options(Mapping[str, Any]):
    """Provider-specific options: a read-only mapping of JSON values, hashable and equal for equal options
    whatever order they were given in (kept as sorted ``(key, canonical JSON)`` pairs)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs = tuple(sorted(pairs))

    def __getitem__(self, key: str) -> Any:
        for name, text in self._pairs:
            if name == key:
                return json.loads(text)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __hash__(self) -> int:
        return hash(self._pairs)

    def __eq__(self, other: object) -> bool:
        return self._pairs == other._pairs if isinstance(other, Options) else Mapping.__eq__(self, other)

    def __repr__(self) -> str:
        return f"Options({dict(self)!r})"


def _options(name: str, value: object) -> Options:
    """Options as given (a mapping, ``(key, value)`` pairs or ``key=value`` texts), checked.  A key naming one
    of our own parameters is refused: it would override that field behind the cache key's back."""
    if isinstance(value, Options):
        return value
    if value is None:
        return Options()
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = [parse_option(value)]
    elif isinstance(value, Iterable) and not isinstance(value, bytes):
        pairs = [_option_pair(name, item) for item in value]
    else:
        raise InvalidRequestError(f"{name} must be a mapping of option names to values, got {_shown(value)}")
    out: dict[str, str] = {}
    for key, item in pairs:
        if not isinstance(key, str) or not key.strip():
            raise InvalidRequestError(f"{name} keys must be non-empty strings, got {_shown(key)}")
        if key in NAMES:
            raise InvalidRequestError(f"{name} key {key!r} is a parameter of its own: pass {key}= instead")
        try:
            text = json.dumps(item, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise InvalidRequestError(f"{name}[{key!r}] must be a JSON value, got {_shown(item)}") from None
        if len(text) > MAX_OPTION_CHARS:
            raise InvalidRequestError(f"{name}[{key!r}] is longer than {MAX_OPTION_CHARS} characters as JSON")
        out[utf8(f"{name} key", key)] = utf8(f"{name}[{key!r}]", text)
    return Options(out.items())


def _option_pair(name: str, item: object) -> tuple[object, object]:
    """One ``(key, value)`` pair, or a ``key=value`` text (the command line's form)."""
    if isinstance(item, str):
        return parse_option(item)
    if isinstance(item, tuple | list) and len(item) == 2:
        return item[0], item[1]
    raise InvalidRequestError(f"{name} must hold (key, value) pairs or 'key=value' texts, got {_shown(item)}")


def parse_option(raw: str) -> tuple[str, Any]:
    """``key=value`` from a command line: the value as JSON when it reads as JSON (``40``, ``true``,
    ``[1, 2]``), else as the text it is (``-o stop_token=END``), as ``llm -o`` takes it."""
    key, eq, text = raw.partition("=")
    if not eq or not key.strip():
        raise InvalidRequestError(f"an option must be written key=value, got {raw!r}")
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return key.strip(), value


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
    repeated: bool = False,
    flag: str = "",
) -> Any:
    """A `Params` field: default, help text, validator, text parser, short option, whether the option is given
    once per value and its long flag when not the field's name (for the CLI and ``%%chat``).

    A field that is not *wire* steers where the request goes rather than what a model is sent: it is part of
    the cache key and a run's specification (`Params.canonical`) but not of `Params.payload`.
    """
    metadata = {"help": help, "check": check, "parse": parse, "short": short, "wire": wire,
                "repeated": repeated or default == (), "flag": flag}  # fmt: skip
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
    reasoning_effort: str | None = _param(
        None, f"how hard a reasoning model thinks: {', '.join(EFFORTS)}", _effort, str
    )
    reasoning_budget: int | None = _param(
        None, "tokens a reasoning model may spend thinking (0: no thinking where allowed)", _integer(0, 2**31 - 1), int
    )
    logprobs: bool | None = _param(None, "return the answer's token log-probabilities: true or false", _flag, _switch)
    top_logprobs: int | None = _param(
        None, "most likely alternatives returned per token, 0 to 20 (implies logprobs)", _integer(0, 20), int
    )
    options: Options = _param(  # noqa: RUF009 - a field(), as above; Options is a frozen value
        Options(), "provider-specific option key=value, sent as the provider names it (repeat for several)",
        _options, str, "-o", repeated=True, flag="--option",
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
        checked = {f.name: f.metadata["check"](f.name, values.get(f.name, f.default)) for f in fields(cls)}
        if checked["top_logprobs"] is not None:
            if values.get("logprobs") is False:
                raise InvalidRequestError("top_logprobs needs logprobs; drop logprobs=False")
            checked["logprobs"] = True  # the same request as asking for both, so the same cache key
        return cls(**checked)


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
            known = {k: _json(v) for k, v in values if v is not None and v != () and v != {}}
            object.__setattr__(self, slot, known)  # not a field: equality and hashing never see it
        return dict(known)

    def under(self, defaults: Params) -> Params:
        """These parameters over *defaults* (a model's declared ones): what is set here wins, options key by key."""
        if defaults == Params():
            return self
        merged = defaults.canonical() | self.canonical()
        if defaults.options and self.options:
            merged["options"] = {**defaults.options, **self.options}
        return Params.build(**merged)

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
    if isinstance(value, Options):
        return dict(value)
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Option:
    """How a parameter appears on a command line: what option parsers are generated from."""

    name: str
    help: str
    parse: Callable[[str], Any]
    short: str
    repeated: bool
    flag: str
    """The long option (``--top-p``, ``--option``)."""


def options() -> list[Option]:
    """Every parameter as a command-line option, in declaration order."""
    return [
        Option(
            f.name,
            f.metadata["help"],
            f.metadata["parse"],
            f.metadata["short"],
            f.metadata["repeated"],
            f.metadata["flag"] or "--" + f.name.replace("_", "-"),
        )
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
