"""The response cache's value format: what one entry holds, its version, and the check every read makes.

An entry is one JSON object: ``format``, the SHA-256 of the canonical key it answers
(``key_sha256``) and the answer's fields, as `records.cache_value` makes them.  JSON and
never pickle, because whoever can write a file in the cache folder must not be able to run
code in the reader's kernel.  Every read checks the format and every field's type and
range: a damaged entry, one another program wrote, or one filed under the wrong key is
refused with `EntryRefused`, so the caller treats it as a miss and never returns garbage
as an answer or raises a raw ``KeyError`` from ``chat``.

Versions: `FORMAT` is what this code writes.  An entry of an older format is brought
forward by the steps registered in `MIGRATIONS` (one per format, n → n + 1) or refused if
there is none; an entry of a newer format (a newer opencode_lab sharing the folder) is
refused as ``newer``, never guessed at.  Entries written before formats existed were
joblib pickles; they are never read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..core.logprobs import TokenLogprob

FORMAT = 4  # 2 added ``seed_used``, the seed an answer was sampled with; 3 ``upstream_provider`` and ``region``;
# 4 the reasoning and prompt-cache token counts and the log-probabilities

_ENVELOPE = ("format", "key_sha256")


class EntryRefused(ValueError):
    """A stored entry that must not be used.  ``kind`` is ``newer`` (a newer opencode_lab wrote it) or
    ``damaged`` (anything else: unreadable, wrong shape, wrong field, wrong key); ``reason`` says what."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _text(value: Any) -> bool:
    return type(value) is str


def _name(value: Any) -> bool:
    return type(value) is str and value != ""


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _seconds(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _cost(value: Any) -> bool:
    """Dollars, or NaN: a cost nobody reported stays unknown, never a made-up zero."""
    return type(value) in (int, float) and (math.isnan(value) or (math.isfinite(value) and value >= 0))


def _tool_calls(value: Any) -> bool:
    """A list of `ToolCall.to_dict` forms."""
    return type(value) is list and all(
        type(call) is dict
        and call.keys() == {"id", "name", "arguments", "raw_arguments"}
        and _text(call["id"])
        and _name(call["name"])
        and (call["arguments"] is None or type(call["arguments"]) is dict)
        and _text(call["raw_arguments"])
        for call in value
    )


def _seed(value: Any) -> bool:
    return type(value) is int


def _logprobs(value: Any) -> bool:
    """A list of `TokenLogprob.to_dict` forms."""
    if type(value) is not list:
        return False
    try:
        for entry in value:
            TokenLogprob.from_dict(entry)
    except ValueError:
        return False
    return True


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


FIELDS: dict[str, Callable[[Any], bool]] = {
    "text": _text,
    "served_by": _name,
    "provider": _name,
    "finish_reason": _optional(_text),
    "tool_calls": _tool_calls,
    "seed_used": _optional(_seed),
    "upstream_provider": _optional(_name),
    "region": _optional(_name),
    "input_tokens": _optional(_count),
    "output_tokens": _optional(_count),
    "reasoning_tokens": _optional(_count),
    "cached_input_tokens": _optional(_count),
    "cache_write_tokens": _optional(_count),
    "logprobs": _optional(_logprobs),
    "cost_usd": _cost,
    "cost_source": _name,
    "latency_s": _seconds,
    "ttft_s": _optional(_seconds),
    "stored_at": _seconds,
}
"""Every field of an answer of the current format and the check its value must pass."""


def _seed_unknown(entry: dict[str, Any]) -> dict[str, Any]:
    """Format 1 → 2: an answer stored before seeds were recorded was sampled with a seed nobody kept."""
    return {**entry, "format": 2, "seed_used": None}


def _where_unknown(entry: dict[str, Any]) -> dict[str, Any]:
    """Format 2 → 3: an answer stored before regions and upstreams were recorded came from where nobody kept."""
    return {**entry, "format": 3, "upstream_provider": None, "region": None}


def _details_unknown(entry: dict[str, Any]) -> dict[str, Any]:
    """Format 3 → 4: an answer stored before reasoning and prompt-cache counts were read has them unknown,
    and had no log-probabilities asked for (the request had no way to)."""
    unknown = {"reasoning_tokens": None, "cached_input_tokens": None, "cache_write_tokens": None, "logprobs": None}
    return {**entry, "format": 4, **unknown}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _seed_unknown,
    2: _where_unknown,
    3: _details_unknown,
}
"""Format n → format n + 1, keyed by n: the next format that changes a field registers the step that
rewrites an older entry."""


def encode(answer: Mapping[str, Any], key_sha256: str) -> dict[str, Any]:
    """The entry to store for *answer* (the fields of `FIELDS`) under the key whose digest is *key_sha256*."""
    return {"format": FORMAT, "key_sha256": key_sha256, **answer}


def decode(entry: Any, key_sha256: str) -> dict[str, Any]:
    """The answer an entry read from disk holds, brought to the current format and checked field by field;
    `EntryRefused` when it must not be used."""
    if type(entry) is not dict:
        raise EntryRefused("damaged", f"a JSON {type(entry).__name__}, not an object")
    entry = _current(entry)
    if entry.get("key_sha256") != key_sha256:
        raise EntryRefused("damaged", "it answers another request (its key_sha256 differs)")
    answer = {name: value for name, value in entry.items() if name not in _ENVELOPE}
    if answer.keys() != FIELDS.keys():
        missing, unexpected = FIELDS.keys() - answer.keys(), answer.keys() - FIELDS.keys()
        raise EntryRefused("damaged", f"missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    for name, check in FIELDS.items():
        if not check(answer[name]):
            raise EntryRefused("damaged", f"{name}={_shown(answer[name])} is not a valid value")
    return answer


def _current(entry: dict[str, Any]) -> dict[str, Any]:
    """*entry* in the current format: migrated forward when it is older, refused when it cannot be."""
    version = entry.get("format")
    if type(version) is not int:
        raise EntryRefused("damaged", f"format {_shown(version)} is not a format number")
    if version > FORMAT:
        raise EntryRefused("newer", f"format {version}; this opencode_lab reads format {FORMAT} and older")
    steps = [MIGRATIONS[v] for v in range(version, FORMAT) if v in MIGRATIONS]
    if len(steps) != FORMAT - version:
        raise EntryRefused("damaged", f"format {version} is older than any this opencode_lab can migrate")
    for step in steps:
        entry = step(entry)
    return entry


def _shown(value: Any) -> str:
    """A value for a message, cut short: an entry may hold anything, of any size."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
