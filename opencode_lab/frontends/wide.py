"""`Wide`: a compare's results side by side, prompt rows x model columns, readable in Jupyter and a terminal.

What a long frame squeezes (answers cut at 50 characters, ``score`` and
``error_type`` behind pandas' "…") is laid out for reading here: each cell holds
the whole answer, wrapped, with its score marked (✓/✗ for 0/1 scores) or its
error's cause in red; answers longer than ``max_chars`` show their start and
open to the rest on a click; an answer cut by ``max_tokens`` says so.  Samples
of one prompt and model share a cell, numbered.  Where answers came from (the upstream OpenRouter chose,
the deployment's region) is said under a model's name when all of its answers came from one place, else
under each answer.  ``Wide.frame`` holds the
answers as a plain DataFrame.  pandas is imported inside the functions.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..analysis.metrics import score_columns
from ..core.schema import RESULT_COLUMNS
from .diagnosis import phrase

if TYPE_CHECKING:
    import pandas as pd

_TABLE = "table-layout:fixed;width:100%;border-collapse:collapse;font-size:0.9em"
_CELL = "text-align:left;vertical-align:top;padding:6px 8px;border-top:1px solid rgba(128,128,128,0.3)"
_TEXT = "white-space:pre-wrap;overflow-wrap:anywhere;margin:0"
_DIM = "opacity:0.7;font-size:0.85em"
_GOOD, _BAD = "color:#2e7d32", "color:#c62828"
REQUIRED = RESULT_COLUMNS[:4]
"""What a frame needs to be read as a results frame: prompt, model, response, error_type (schema order)."""


@dataclass(frozen=True)
class Answer:
    """One results row as a wide view shows it."""

    text: str
    error: str | None = None
    cut_at: int | None = None
    """``max_tokens`` (as far as the row knows it) when the model stopped there, else None."""
    scores: tuple[tuple[str, float], ...] = ()
    origin: str = ""
    """Where it was answered: the upstream a routing provider chose and the region (empty when neither is known)."""

    @classmethod
    def of(cls, row: Any, scores: list[str]) -> Answer:
        error_type = _value(row.get("error_type"))
        if error_type is not None:
            cause = phrase(str(error_type), str(_value(row.get("error")) or error_type))
            partial = _value(row.get("response"))
            return cls(str(partial) if partial else "", f"{error_type}: {cause}")
        where = (_value(row.get(name)) for name in ("upstream_provider", "region"))
        origin = " · ".join(str(w) for w in where if w is not None)
        cut = None
        if _value(row.get("finish_reason")) == "length":
            tokens = _value(row.get("output_tokens"))
            cut = int(tokens) if tokens is not None else 0
        marks = tuple((name, float(row[name])) for name in scores if _value(row.get(name)) is not None)
        return cls(str(_value(row.get("response")) or ""), None, cut, marks, origin)

    @property
    def cut_note(self) -> str:
        if self.cut_at is None:
            return ""
        return f"… [cut at max_tokens={self.cut_at}]" if self.cut_at else "… [cut at max_tokens]"

    def plain(self) -> str:
        """The answer as one line of text, its marks in front."""
        if self.error is not None:
            return f"✗ {self.error}"
        marks = " ".join(_mark(name, value) for name, value in self.scores)
        body = " ".join(self.text.split()) + self.cut_note + (f" [via {self.origin}]" if self.origin else "")
        return f"{marks} {body}" if marks else body


@dataclass(frozen=True)
class Wide:
    """Prompt rows x model columns of a results frame (see the module doc); ``frame`` holds the answers."""

    prompts: list[str]
    models: list[str]
    cells: dict[tuple[int, str], list[Answer]]
    notes: list[str]
    """Per prompt, what to show under it (the ``expected`` column, when there is one)."""
    headers: dict[str, str]
    max_chars: int | None

    @property
    def frame(self) -> pd.DataFrame:
        """The answers as a DataFrame: prompts x models, samples joined by blank lines, errors as ``✗ cause``."""
        import pandas as pd

        data = {
            model: ["\n\n".join(a.plain() for a in self.cells.get((i, model), [])) for i in range(len(self.prompts))]
            for model in self.models
        }
        return pd.DataFrame(data, index=pd.Index(self.prompts, name="prompt"), columns=pd.Index(self.models))

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_html(self) -> str:
        first = max(18, min(30, 100 // (len(self.models) + 2)))
        cols = f'<col style="width:{first}%">' + "<col>" * len(self.models)
        head = f'<th style="{_CELL}">prompt</th>' + "".join(
            f'<th style="{_CELL}">{_esc(m)}<div style="{_DIM};font-weight:normal">{_esc(self.headers[m])}</div></th>'
            for m in self.models
        )
        rows = []
        for i, prompt in enumerate(self.prompts):
            note = f'<div style="{_DIM}">{_esc(self.notes[i])}</div>' if self.notes[i] else ""
            cells = "".join(
                f'<td style="{_CELL}">{self._cell_html(self.cells.get((i, m), []))}</td>' for m in self.models
            )
            rows.append(f'<tr><td style="{_CELL}"><div style="{_TEXT}">{_esc(prompt)}</div>{note}</td>{cells}</tr>')
        return (
            f'<table class="oc-wide" style="{_TABLE}"><colgroup>{cols}</colgroup>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )

    def __repr__(self) -> str:
        width = 100 if self.max_chars is None else self.max_chars
        blocks = []
        for i, prompt in enumerate(self.prompts):
            lines = [_cut(" ".join(prompt.split()), width) + (f"  ({self.notes[i]})" if self.notes[i] else "")]
            for model in self.models:
                lines += [f"  {model}: {_cut(a.plain(), width)}" for a in self.cells.get((i, model), [])]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def _cell_html(self, answers: list[Answer]) -> str:
        numbered = len(answers) > 1
        return "".join(
            (f'<div style="{_DIM}">#{k + 1}</div>' if numbered else "") + self._answer_html(a)
            for k, a in enumerate(answers)
        )

    def _answer_html(self, answer: Answer) -> str:
        marks = "".join(
            f'<b style="{_GOOD if v >= 1 else _BAD if v <= 0 else ""}">{_esc(_mark(n, v))}</b> '
            for n, v in answer.scores
        )
        out = ""
        if answer.text or marks:
            cut = f'<span style="{_DIM}">{_esc(answer.cut_note)}</span>' if answer.cut_note else ""
            out = f'<div style="{_TEXT}">{marks}{self._text_html(answer.text)}{cut}</div>'
        if answer.origin:
            out += f'<div style="{_DIM}">via {_esc(answer.origin)}</div>'
        if answer.error is not None:
            out += f'<div style="{_BAD}">✗ {_esc(answer.error)}</div>'
        return out

    def _text_html(self, text: str) -> str:
        """The text, or its start and a ``<details>`` that opens to the rest (nothing is lost, only folded)."""
        limit = self.max_chars
        if limit is None or len(text) <= limit:
            return _esc(text)
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        rest = len(text) - cut
        return (
            f'{_esc(text[:cut])}<details style="display:inline"><summary style="display:inline;cursor:pointer;'
            f'{_DIM}">… (+{rest:,} chars)</summary>{_esc(text[cut:])}</details>'
        )


def wide(results: pd.DataFrame, *, max_chars: int | None = 400) -> Wide:
    """The wide view of *results* (a results frame); ``max_chars=None`` shows every answer whole."""
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(f"wide() needs a results frame; missing column(s): {', '.join(missing)}")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 20):
        raise ValueError(f"max_chars must be None or an integer of at least 20, got {max_chars!r}")
    scores = score_columns(results)
    key = "prompt_id" if "prompt_id" in results.columns else "prompt"
    records = results.to_dict("records")
    index: dict[tuple[Any, str], int] = {}
    prompts: list[str] = []
    notes: list[str] = []
    for row in records:
        if (row[key], row["prompt"]) not in index:
            index[(row[key], row["prompt"])] = len(prompts)
            prompts.append(str(row["prompt"]))
            expected = _value(row.get("expected"))
            notes.append("" if expected is None else f"expected: {expected}")
    models = list(dict.fromkeys(str(m) for m in results["model"]))
    cells: dict[tuple[int, str], list[Answer]] = {}
    for row in sorted(records, key=lambda r: _value(r.get("sample")) or 0):  # stable: input order per sample
        cells.setdefault((index[(row[key], row["prompt"])], str(row["model"])), []).append(Answer.of(row, scores))
    asked = _differing(results.attrs.get("params") or {}, models)
    headers = {m: _join(asked.get(m, ""), _header(results[results["model"].astype(str) == m], scores)) for m in models}
    for model in models:  # one place for every answer of a model: said once, in its header
        mine = [cell for cell in cells if cell[1] == model]
        origins = {a.origin for cell in mine for a in cells[cell] if a.error is None}
        if len(origins) == 1 and (origin := origins.pop()):
            headers[model] = _join(headers[model], f"via {origin}")
            for cell in mine:
                cells[cell] = [replace(a, origin="") for a in cells[cell]]
    return Wide(prompts, models, cells, notes, headers, max_chars)


def _differing(params: dict[str, dict[str, Any]], models: list[str]) -> dict[str, str]:
    """Per model, the request parameters (as ``compare`` records them in ``attrs["params"]``) whose values
    differ between the models shown: ``reasoning_effort=low`` over one column, ``=high`` over the other."""
    shown = [m for m in models if m in params]
    if len(shown) < 2:
        return {}
    keys = sorted({k for m in shown for k in params[m]} - {"schema"})
    differ = [k for k in keys if len({json.dumps(params[m].get(k), sort_keys=True) for m in shown}) > 1]
    return {m: " ".join(f"{k}={_setting(params[m].get(k))}" for k in differ) for m in shown}


def _setting(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, dict):
        return ",".join(f"{k}:{json.dumps(v)}" for k, v in value.items())
    return str(value)


def _join(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def _header(rows: pd.DataFrame, scores: list[str]) -> str:
    """Under a model's name: its mean score(s) as `stats()` computes them (per prompt first, a failure scoring
    0 on a [0, 1] score), failures and median latency over these rows."""
    import pandas as pd

    from ..analysis.failures import values_under
    from ..analysis.intervals import mean_interval, unit_codes

    ok = rows[rows["error_type"].isna()]
    prompts, _ = unit_codes(rows)
    parts, counted = [], False
    for name in scores:
        values, _, bounded = values_under(rows, name, "count")
        mean = mean_interval(values, prompts, prompts).mean
        if mean == mean:
            parts.append(f"{name} {mean:.2f}")
            counted = counted or bounded
    failed = len(rows) - len(ok)
    if failed:
        parts.append(f"{failed}/{len(rows)} failed" + (", scored 0" if counted else ""))
    if "latency_s" in rows.columns:
        latency = pd.to_numeric(ok["latency_s"], errors="coerce").dropna()
        if len(latency):
            parts.append(f"p50 {latency.median():.2f} s")
    return " · ".join(parts)


def _mark(name: str, value: float) -> str:
    label = "" if name == "score" else f"{name.removeprefix('score_')} "
    if value in (0.0, 1.0):
        return f"{label}{'✓' if value else '✗'}"
    return f"{label}{value:.2f}"


def _value(value: Any) -> Any:
    """None for every missing-value spelling (None, NaN, pd.NA)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return None if type(value).__name__ == "NAType" else value


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
