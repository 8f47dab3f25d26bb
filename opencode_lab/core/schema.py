"""THE declaration of result rows and attempt records: columns, order and types, written once.

A *results row* is one prompt x model x sample (what ``compare()`` returns and the
run log keeps); an *attempt record* is one try the router made.  The frame
builders here, the run log's SQL tables and the statistics all derive from
`RESULT_COLUMNS` / `ATTEMPT_COLUMNS`, so a column is added in one place and a
frame built live, loaded from the run log or read back from CSV compares equal.

Column kinds and what they become:

========  ====================  ==========  ===============================
kind      pandas dtype          SQLite      unknown value
========  ====================  ==========  ===============================
text      object                TEXT        None
float     float64               REAL        NaN (stored as NULL)
int       Int64 (nullable)      INTEGER     <NA>
bool      bool                  INTEGER     False
flag      boolean (nullable)    INTEGER     <NA> (not asked, e.g. no tools offered)
id        Int64 if all ints     (untyped)   <NA>; a user's string ids kept
========  ====================  ==========  ===============================

pandas is imported inside the builders: ``import opencode_lab`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["text", "float", "int", "bool", "flag", "id"]
_SQL = {"text": "TEXT", "float": "REAL", "int": "INTEGER", "bool": "INTEGER", "flag": "INTEGER", "id": ""}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    doc: str
    measure: bool = False
    """A measurement of the call (time, tokens, cost, cache): what statistics are computed from."""
    later: bool = False
    """Added after results files existed: a frame without it has it unknown rather than being refused."""
    private: bool = False
    """Text a user may not want kept (what was asked and answered): privacy mode stores only its keyed hash."""

    @property
    def sql(self) -> str:
        """The column's SQLite declaration."""
        return f"{self.name} {_SQL[self.kind]}".rstrip()


#: user-facing columns first (what a researcher reads), identifiers last
RESULT_SCHEMA: tuple[Column, ...] = (
    Column("prompt", "text", "the prompt as sent (after the template)", private=True),
    Column("model", "text", "the model spec as asked for"),
    Column("response", "text", "the answer text (None when the row failed)", private=True),
    Column("error_type", "text", "None on success, else the error's type (see opencode_lab.errors)"),
    Column("latency_s", "float", "seconds the answering attempt took (a hit reports the original call's)", True),
    Column("cost_usd", "float", "what this row cost (0 for a cache hit; NaN when unknown)", True),
    Column("served_by", "text", "the deployment that answered"),
    Column("region", "text", "the region of the deployment that answered (None when it declares none)"),
    Column("upstream_provider", "text", "the upstream a routing provider chose (OpenRouter reports it; else None)"),
    Column("sample", "int", "sample index, 0..n-1"),
    Column("seed_used", "int", "the seed the answer was sampled with (given or drawn); NA when none was sent"),
    Column("finish_reason", "text", "why generation stopped (stop, length, tool_calls, ...)"),
    Column("tool_calls", "text", "the tool calls made, as JSON [{id, name, arguments}] (None when none)", private=True),
    Column(
        "tool_call_valid", "flag", "every call named an offered tool with arguments matching its schema (NA: no tools)"
    ),
    Column("ttft_s", "float", "seconds to the first token", True),
    Column("input_tokens", "int", "prompt tokens as reported (NA when not reported)", True),
    Column("output_tokens", "int", "completion tokens as reported, reasoning included (NA when not reported)", True),
    Column("reasoning_tokens", "int", "of output_tokens, those spent thinking (NA when not reported)", True, True),
    Column("cached_input_tokens", "int", "of input_tokens, those read from the provider's prompt cache", True, True),
    Column("cache_write_tokens", "int", "of input_tokens, those written to the provider's prompt cache", True, True),
    Column(
        "cache_discount_usd",
        "float",
        "what the provider's prompt cache took off cost_usd (negative when writes cost more; NaN when unknown)",
        measure=True,
        later=True,
    ),
    Column("cost_source", "text", "provider, catalog, local or unknown"),
    Column("cost_saved_usd", "float", "what a cache hit would have cost", True),
    Column("cached", "bool", "answered from the cache", True),
    Column("attempts", "int", "tries the router made"),
    Column(
        "logprobs", "text", "per-token log-probabilities as JSON [{token, logprob, top}] (None unless asked)",
        private=True,  # the tokens spell out the answer
    ),
    Column("error", "text", "the error message"),
    Column("selected_model", "text", "the model a selector or cascade chose (None when a model was asked directly)"),
    Column("predicted_quality", "float", "the selector's predicted quality of the model it chose"),
    Column("predictions", "text", "every candidate's predicted quality, as JSON {model: quality}"),
    Column("escalations", "int", "how many checks the cascade's earlier answers failed before this one"),
    Column("prompt_id", "id", "row of the prompt table (or the user's id)"),
    Column("run_id", "text", "the run this row belongs to"),
)

ATTEMPT_SCHEMA: tuple[Column, ...] = (
    Column("run_id", "text", "the run (or session) the call belonged to"),
    Column("request_id", "text", "one id per call; its attempts share it"),
    Column("timestamp", "float", "wall-clock start, seconds since the epoch"),
    Column("model", "text", "the model spec as asked for"),
    Column("served_by", "text", "the deployment tried"),
    Column("provider", "text", "that deployment's provider"),
    Column("attempt", "int", "1, 2, ... in order (0: a cache hit, in run logs of earlier versions)"),
    Column("status", "text", "ok or error"),
    Column("error_type", "text", "the error's type, when status is error"),
    Column("http_status", "int", "the HTTP status, when there was one"),
    Column("latency_s", "float", "seconds the attempt took"),
    Column("ttft_s", "float", "seconds to the first token"),
    Column("input_tokens", "int", "prompt tokens (answering attempt only)"),
    Column("output_tokens", "int", "completion tokens (answering attempt only)"),
    Column("cost_usd", "float", "cost paid"),
    Column("cost_source", "text", "provider, catalog, local or unknown"),
    Column("cost_saved_usd", "float", "what a cache hit saved"),
    Column("cached", "bool", "a cache hit (only run logs of earlier versions record hits as attempts)"),
)

#: ``frame.attrs`` key naming what kind of table a returned frame is (``results``, ``stats``, ``runs`` ...): the
#: display layer shows it by kind, while the frame itself keeps its full numbers
TABLE = "opencode_lab.table"

RESULT_COLUMNS: tuple[str, ...] = tuple(c.name for c in RESULT_SCHEMA)
#: the results columns statistics are computed from (with ``error_type``)
MEASUREMENTS: tuple[str, ...] = tuple(c.name for c in RESULT_SCHEMA if c.measure)
#: the measurements an older results frame may lack (read as unknown)
LATER_MEASUREMENTS: tuple[str, ...] = tuple(c.name for c in RESULT_SCHEMA if c.measure and c.later)
#: the results columns privacy mode keeps only as keyed hashes
PRIVATE_COLUMNS: tuple[str, ...] = tuple(c.name for c in RESULT_SCHEMA if c.private)
#: the user's text outside those columns, kept as keyed hashes too: a chat row's ``system`` (an extra
#: column), a run specification's ``system`` and ``template``
PRIVATE_EXTRAS: tuple[str, ...] = ("system", "template")
#: what identifies a results row: one run, one prompt, one model, one sample
RESULT_KEY: tuple[str, ...] = ("run_id", "prompt_id", "model", "sample")
ATTEMPT_COLUMNS: tuple[str, ...] = tuple(c.name for c in ATTEMPT_SCHEMA)
KINDS: dict[str, Kind] = {c.name: c.kind for c in (*RESULT_SCHEMA, *ATTEMPT_SCHEMA)}


def results_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A results frame: `RESULT_SCHEMA` columns first (missing ones empty), a row's extra columns after."""
    return tagged(_frame(rows, RESULT_SCHEMA), "results")


def attempts_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame of attempt records with `ATTEMPT_SCHEMA` columns first and the same type rules."""
    return tagged(_frame(records, ATTEMPT_SCHEMA), "attempts")


def tagged(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """*frame*, marked as a table of *kind* for the display layer (`TABLE`)."""
    frame.attrs[TABLE] = kind
    return frame


def _frame(rows: Sequence[Mapping[str, Any]], schema: tuple[Column, ...]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame.from_records([dict(r) for r in rows]) if rows else pd.DataFrame()
    names = [c.name for c in schema]
    for name in names:
        if name not in df.columns:
            df[name] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df = df[names + [c for c in df.columns if c not in names]]
    for column in schema:
        df[column.name] = _typed(df[column.name], column.kind)
    return df.reset_index(drop=True)


def _typed(col: pd.Series, kind: Kind) -> pd.Series:
    import pandas as pd

    if kind == "float":
        return pd.to_numeric(col, errors="coerce").astype("float64")
    if kind == "bool":
        return col.map(truthy).astype(bool)
    if kind == "flag":
        return col.map(lambda v: None if _missing(v) else truthy(v)).astype("boolean")
    if kind in ("int", "id"):
        numbers = pd.to_numeric(col, errors="coerce")
        if numbers.isna().sum() != col.isna().sum():
            return col  # e.g. a user's string prompt ids: keep them
        try:
            return numbers.astype("Int64")
        except (TypeError, ValueError):  # fractional values
            return col
    return col.astype(object).where(col.notna(), None)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def truthy(value: Any) -> bool:
    """A stored flag as a bool: None/NaN/NA and "false"/"0" are False."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    try:
        return bool(value)
    except (TypeError, ValueError):  # pd.NA
        return False
