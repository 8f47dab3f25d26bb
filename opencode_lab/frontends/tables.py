"""One display layer for every table the toolkit returns: notebook HTML, plain text and the CLI alike.

A returned frame keeps its full numbers and dtypes; only how it *shows* changes.  Frames the
toolkit hands out carry ``attrs[TABLE]`` (their kind: ``stats``, ``results``, ``runs`` ...), and
in IPython the HTML and plain-text formatters show such frames through `Table`; any other frame
shows as pandas shows it.  The rules, by column name and dtype:

- numbers: three significant figures (``0.000123``, ``12.3``, ``1,230``), float noise below
  1e-12 shown as 0; counts with thousands separators;
- rates (``*_rate*``): percentages; seconds (``*_s``): ``0.312 s``; costs and prices (``*_usd``,
  ``*price*``): ``$0.0012``, and ``free`` for a cost or price of exactly 0;
- one spelling of a missing value, ``–``, whatever pandas holds (None, NaN, <NA>, NaT);
- text left-aligned, numbers right-aligned; datetimes as ``2026-12-02 10:34:39 UTC``;
- model names without a router prefix (the last two path segments) where that is unambiguous;
- a stats frame shows compactly (`compact_stats`: at most `MAX_COLUMNS` columns), every column one
  option away: ``df.oc.table("all")``; a results frame hides tool columns no row used.

pandas is imported inside the functions.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.numbers import significant
from ..core.schema import TABLE, tagged

if TYPE_CHECKING:
    import pandas as pd

    from ..analysis.diff import Diff

MISSING = "–"
MAX_COLUMNS = 12
_MODEL_COLUMNS = frozenset({"model", "model_a", "model_b"})
_TOOL_COLUMNS = ("tool_calls", "tool_call_valid")
_TEXT_LIMIT = 300  # characters of one results cell in a table (the view and wide() show every answer whole)
_STYLE = (
    "<style>.oc-table{border-collapse:collapse;font-size:0.9em}"
    ".oc-table th,.oc-table td{padding:3px 8px;vertical-align:top;border-bottom:1px solid rgba(128,128,128,.25)}"
    ".oc-table th{text-align:left}.oc-table td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".oc-table td.t{text-align:left;white-space:pre-wrap}.oc-note{opacity:.7;font-size:.85em}</style>"
)


# -- values ---------------------------------------------------------------------------------------------------------


def missing(value: Any) -> bool:
    """Whether *value* is any spelling of "unknown": None, NaN, pd.NA, NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def number(value: float, digits: int = 3) -> str:
    """*value* to *digits* significant figures (`opencode_lab.core.numbers.significant`), or `MISSING`."""
    return MISSING if missing(value) else significant(value, digits)


def percent(value: float) -> str:
    return MISSING if missing(value) else f"{number(100 * float(value))} %"


def seconds(value: float) -> str:
    return MISSING if missing(value) else f"{number(value)} s"


def dollars(value: float, *, free: bool = True) -> str:
    """``$0.0012``; ``free`` for exactly 0 when *free* (a cost or price, not an amount saved)."""
    if missing(value):
        return MISSING
    if float(value) == 0:
        return "free" if free else "$0"
    return f"${number(value)}"


def count(value: Any) -> str:
    return MISSING if missing(value) else f"{int(value):,}"


def text(value: Any, limit: int | None = None) -> str:
    if missing(value):
        return MISSING
    out = str(value)
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"


def formatter(name: str, dtype: Any) -> tuple[Any, bool]:
    """(format function, numeric?) for a column called *name* of *dtype*."""
    from pandas.api import types

    if types.is_bool_dtype(dtype):
        return (lambda v: MISSING if missing(v) else ("yes" if v else "no")), False
    if types.is_datetime64_any_dtype(dtype):
        return (lambda v: MISSING if missing(v) else v.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if v.tz else "")), False
    if not types.is_numeric_dtype(dtype):
        return text, False
    if "_rate" in name or name.endswith("rate"):
        return percent, True
    if name.endswith("_usd") or "price" in name:
        return (lambda v: dollars(v, free="saved" not in name)), True
    if types.is_integer_dtype(dtype):
        return count, True
    if (name.endswith("_s") or "_s_ci_" in name) and not name.endswith("_per_s"):
        return seconds, True
    return number, True


def short_names(names: Iterable[Any]) -> dict[Any, str]:
    """Model names without their router prefix (``openrouter/meta-llama/x`` -> ``meta-llama/x``: the last two
    path segments) when no two names share the shortened form."""
    full = [str(n) for n in names if not missing(n)]
    tails = {n: "/".join(n.split("/")[-2:]) for n in full}
    if len(set(tails.values())) < len(set(full)):
        return {n: n for n in full}
    return tails


# -- tables ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A frame as the toolkit shows it: formatted cells, which columns are numbers, and a note under it."""

    header: list[str]
    index_name: str
    index: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    note: str = ""

    @property
    def frame(self) -> pd.DataFrame:
        """The shown cells as a frame of strings."""
        import pandas as pd

        return pd.DataFrame(self.rows, index=pd.Index(self.index, name=self.index_name or None), columns=self.header)

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_html(self) -> str:
        head = f"<th>{_esc(self.index_name)}</th>" + "".join(f"<th>{_esc(h)}</th>" for h in self.header)
        body = "".join(
            f'<tr><th>{_esc(label)}</th>{"".join(_cell(v, n) for v, n in zip(row, self.numeric, strict=True))}</tr>'
            for label, row in zip(self.index, self.rows, strict=True)
        )
        note = f'<div class="oc-note">{_esc(self.note)}</div>' if self.note else ""
        return f'{_STYLE}<table class="oc-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'

    def __repr__(self) -> str:
        return self.to_text()

    def to_text(self, width: int = 60) -> str:
        """A terminal table: text left-aligned and cut at *width* characters, numbers right-aligned."""
        columns = [[self.index_name, *self.index]] + [
            [h, *(_one_line(r[k], width) for r in self.rows)] for k, h in enumerate(self.header)
        ]
        widths = [max(len(v) for v in col) for col in columns]
        right = [False, *self.numeric]
        cells = list(zip(columns, widths, right, strict=True))
        lines = [
            "  ".join((col[i].rjust(w) if r and i else col[i].ljust(w)) for col, w, r in cells).rstrip()
            for i in range(len(columns[0]))
        ]
        return "\n".join(lines + ([self.note] if self.note else []))


def table(frame: pd.DataFrame, columns: str | Sequence[str] | None = None, *, max_rows: int | None = None) -> Table:
    """*frame* as the toolkit shows it.  *columns*: None for the frame's default view (compact for stats),
    ``"all"`` for every column, or a list of column names."""
    kind = frame.attrs.get(TABLE)
    if columns is None and kind == "stats" and _has_stats(frame):
        return compact_stats(frame)
    chosen = _chosen(frame, columns, kind)
    limit = _TEXT_LIMIT if kind == "results" else None
    shown = _rows(frame, max_rows)
    names = short_names(frame.index) if frame.index.name in _MODEL_COLUMNS else None
    index = [_index_label(v, names) for v in shown.index]
    header, cells, numeric = [], [], []
    for name in chosen:
        fmt, is_number = formatter(str(name), frame[name].dtype)
        values = list(shown[name])
        if name in _MODEL_COLUMNS:
            short = short_names(frame[name].unique())
            cells.append([MISSING if missing(v) else short.get(str(v), str(v)) for v in values])
        elif fmt is text:
            cells.append([text(v, limit) for v in values])
        else:
            cells.append([fmt(v) for v in values])
        header.append(str(name))
        numeric.append(is_number)
    rows = [list(r) for r in zip(*cells, strict=True)] if cells else [[] for _ in index]
    return Table(header, _index_name(frame), index, rows, numeric, _note(frame, shown, chosen, kind))


def compact_stats(stats: pd.DataFrame) -> Table:
    """A stats frame in at most `MAX_COLUMNS` columns: each score with its interval, failures, latency p50 and
    p95 with intervals, tokens/s, cost, the top error and the notes."""
    from ..analysis.metrics import STATS_COLUMNS

    scores = [c.removesuffix("_mean") for c in stats.columns if c.endswith("_mean") and c not in STATS_COLUMNS]
    room = MAX_COLUMNS - 7
    kept, dropped = scores[:room], scores[room:]
    columns: dict[str, tuple[list[str], bool]] = {}
    for name in kept:
        mean, low, high = stats[f"{name}_mean"], stats[f"{name}_ci_low"], stats[f"{name}_ci_high"]
        columns[name] = ([_interval(m, lo, hi, number) for m, lo, hi in zip(mean, low, high, strict=True)], True)
    columns["failed"] = (
        [f"{count(f)}/{count(c)} ({percent(r)})" if c else MISSING
         for f, c, r in zip(stats["failed"], stats["calls"], stats["failure_rate"], strict=True)],
        True,
    )  # fmt: skip
    for q in ("p50", "p95"):
        col = f"latency_{q}_s"
        values = zip(stats[col], stats[f"{col}_ci_low"], stats[f"{col}_ci_high"], strict=True)
        columns[f"latency {q}"] = ([_interval(m, lo, hi, number, " s") for m, lo, hi in values], True)
    columns["tokens/s"] = ([number(v) for v in stats["output_tokens_per_s"]], True)
    columns["cost"] = ([_cost(c, s) for c, s in zip(stats["cost_usd"], stats["cost_saved_usd"], strict=True)], True)
    columns["top error"] = ([text(e) if not missing(e) else "" for e in stats["top_error"]], False)
    columns["note"] = ([text(n) if not missing(n) else "" for n in stats.get("note", [None] * len(stats))], False)
    header = list(columns)
    rows = [[columns[h][0][i] for h in header] for i in range(len(stats))]
    more = f"; {len(dropped)} more scorer(s): {', '.join(dropped)}" if dropped else ""
    note = f"compact view of {len(stats.columns)} columns{more}; every column: df.oc.table('all')"
    names = short_names(stats.index) if stats.index.name in _MODEL_COLUMNS else None
    index = [_index_label(v, names) for v in stats.index]
    return Table(header, _index_name(stats), index, rows, [columns[h][1] for h in header], note)


def readable(stats: pd.DataFrame) -> pd.DataFrame:
    """The compact stats view as a frame of strings (what ``df.oc.summary()`` returns), shown whole."""
    return tagged(compact_stats(stats).frame, "summary")


def html_or_none(frame: pd.DataFrame) -> str:
    """IPython's HTML for a frame: ours for a toolkit table, pandas' own for any other frame."""
    if frame.attrs.get(TABLE):
        return table(frame, max_rows=_display_rows()).to_html()
    return str(frame._repr_html_())  # type: ignore[operator]  # pandas-stubs declare no _repr_html_


def diff_html(result: Diff) -> str:
    """A run-vs-baseline diff: the verdict per model, then the prompts that got worse."""
    worse = result.regressions()
    head = f"<b>{_esc(result.metric)}: new run against baseline</b>{table(result.summary).to_html()}"
    if not len(worse):
        return head
    return f"{head}<b>regressions ({len(worse)})</b>{table(worse.drop(columns=['status'])).to_html()}"


def register_formatters(shell: Any) -> None:
    """Show toolkit frames through `Table` in a running IPython (HTML and plain text), and diffs."""
    import pandas as pd

    from ..analysis.diff import Diff

    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, html_or_none)
    formatters["text/plain"].for_type(pd.DataFrame, _pretty)
    formatters["text/html"].for_type(Diff, diff_html)


def _pretty(frame: pd.DataFrame, printer: Any, cycle: bool) -> None:
    if frame.attrs.get(TABLE):
        printer.text(table(frame, max_rows=_display_rows()).to_text())
    else:
        printer.text(repr(frame))


# -- helpers --------------------------------------------------------------------------------------------------------


def _has_stats(frame: pd.DataFrame) -> bool:
    needed = ("failed", "calls", "failure_rate", "latency_p50_s", "output_tokens_per_s", "cost_usd", "top_error")
    return all(c in frame.columns for c in needed)


def _chosen(frame: pd.DataFrame, columns: str | Sequence[str] | None, kind: Any) -> list[Any]:
    if columns is None or columns == "all":
        chosen = list(frame.columns)
        if kind == "results" and columns is None:
            chosen = [c for c in chosen if c not in _TOOL_COLUMNS or frame[c].notna().any()]
        return chosen
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        from difflib import get_close_matches

        close = get_close_matches(str(unknown[0]), [str(c) for c in frame.columns], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"no column {unknown[0]!r} in this table{hint}; columns: {', '.join(map(str, frame.columns))}")
    return list(columns)


def _rows(frame: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    if max_rows is None or len(frame) <= max_rows:
        return frame
    half = max(1, max_rows // 2)
    return frame.iloc[list(range(half)) + list(range(len(frame) - half, len(frame)))]


def _note(frame: pd.DataFrame, shown: pd.DataFrame, chosen: list[Any], kind: Any) -> str:
    parts = []
    if len(shown) < len(frame):
        parts.append(f"{len(shown)} of {len(frame):,} rows shown")
    hidden = len(frame.columns) - len(chosen)
    if hidden and kind == "results":
        parts.append(f"{hidden} empty tool column(s) hidden; every column: df.oc.table('all')")
    return "; ".join(parts)


def _display_rows() -> int:
    import pandas as pd

    rows = pd.get_option("display.max_rows")
    return int(rows) if rows else 60


def _index_name(frame: pd.DataFrame) -> str:
    names = [n for n in frame.index.names if n is not None]
    return " / ".join(str(n) for n in names)


def _index_label(value: Any, names: dict[Any, str] | None) -> str:
    if isinstance(value, tuple):
        return " / ".join(text(v) for v in value)
    if names is not None and not missing(value):
        return names.get(str(value), str(value))
    return str(value)


def _interval(mean: Any, low: Any, high: Any, fmt: Any, unit: str = "") -> str:
    if missing(mean):
        return MISSING
    if missing(low) or missing(high):
        return f"{fmt(mean)}{unit}"
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]{unit}"


def _cost(spent: Any, saved: Any) -> str:
    """What was paid and what cache hits saved: a warm rerun of a run whose cost was unknown saved an unknown
    amount, never nothing (``free`` is for answers that cost nothing, e.g. local models)."""
    if missing(spent):
        return "unknown"
    if missing(saved) or saved > 0:
        amount = dollars(saved, free=False) if not missing(saved) else "unknown"
        return f"{dollars(spent, free=False)} (cache saved {amount})"
    return dollars(spent)


def _cell(value: str, numeric: bool) -> str:
    return f'<td class="{"n" if numeric else "t"}">{_esc(value)}</td>'


def _one_line(value: str, width: int) -> str:
    return text(" ".join(value.split()), width)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
