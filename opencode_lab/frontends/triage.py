"""Triage of a results frame: which rows to look at, and everything about one call.

Pure functions over a results frame (no widget code), so the interactive view
(`opencode_lab.frontends.view`) and its tests share one definition of each filter:

- ``failures``: rows whose call failed;
- ``disagreements``: rows of prompts on which the models disagree: a scorer gave them
  different scores, one failed and another did not, or (unscored) their answers differ;
- ``cut``: answers the model stopped at its token limit (``finish_reason == "length"``);
- a score range on one scorer, and a case-insensitive text search over prompt, answer,
  error and reasons.

`transcript_html` shows one call whole: the prompt as sent and the prompt table's own
columns (system prompt, template inputs, expected answer), the answer, tool calls, each
scorer's mark and reason (a judge's reasoning), errors, who served it and the attempts.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from ..analysis.metrics import score_columns
from ..core.schema import RESULT_COLUMNS
from .diagnosis import short_error
from .tables import dollars, missing, number, seconds
from .wide import REQUIRED

if TYPE_CHECKING:
    import pandas as pd

SHOW: tuple[str, ...] = ("all", "failures", "disagreements", "cut")
_SEARCHED = ("prompt", "response", "error")
#: what a transcript tells in its own sections (prompt, answer, error, tool calls); the rest is "call"
_STORY = (*REQUIRED, "error", "tool_calls", "tool_call_valid")
_CALL = ("model", *(c for c in RESULT_COLUMNS if c not in _STORY))


def select(
    results: pd.DataFrame,
    show: str = "all",
    *,
    scorer: str | None = None,
    score_range: tuple[float, float] | None = None,
    search: str = "",
) -> pd.Series:
    """A boolean mask of the rows to look at (see the module doc); refuses an unknown *show* or *scorer*."""
    import pandas as pd

    if show not in SHOW:
        raise ValueError(f"show must be one of {', '.join(SHOW)}, got {show!r}")
    mask = pd.Series(True, index=results.index)
    failed = results["error_type"].notna()
    if show == "failures":
        mask &= failed
    elif show == "disagreements":
        mask &= disagreements(results)
    elif show == "cut":
        mask &= results.get("finish_reason", pd.Series(None, index=results.index)).eq("length")
    if score_range is not None:
        column = _scorer(results, scorer)
        values = pd.to_numeric(results[column], errors="coerce")
        mask &= values.between(score_range[0], score_range[1])
    if search.strip():
        needle = search.strip().lower()
        texts = [c for c in (*_SEARCHED, *reason_columns(results)) if c in results.columns]
        hit = pd.Series(False, index=results.index)
        for column in texts:
            hit |= results[column].astype("string").str.lower().str.contains(needle, regex=False).fillna(False)
        mask &= hit
    return mask.astype(bool)


def disagreements(results: pd.DataFrame) -> pd.Series:
    """Rows of prompts (and samples) on which the models do not all agree (see the module doc)."""
    import pandas as pd

    key = [c for c in ("prompt_id", "prompt", "sample") if c in results.columns]
    scores = score_columns(results)
    outcome = results["error_type"].notna().map({True: "failed", False: ""})
    if scores:
        for column in scores:
            outcome = outcome + "|" + pd.to_numeric(results[column], errors="coerce").round(9).astype("string")
    else:
        outcome = outcome + "|" + results["response"].astype("string").str.strip().str.lower()
    outcome = outcome.fillna("<NA>")
    return outcome.groupby([results[c] for c in key], dropna=False).transform("nunique").gt(1)


def reason_columns(results: pd.DataFrame) -> list[str]:
    return [c for c in results.columns if c == "reason" or str(c).startswith("reason_")]


def transcript_html(row: Any) -> str:
    """One results row (a Series or dict) as the whole story of its call, escaped."""
    get = row.get
    parts = [_section("prompt as sent", get("prompt"))]
    extra = {k: v for k, v in dict(row).items() if k not in RESULT_COLUMNS and not _derived(str(k))}
    if extra:
        parts.append(_fields("prompt table", extra))
    if not missing(get("error_type")):
        partial = get("response")
        if not missing(partial):
            parts.append(_section("partial answer", partial))
        parts.append(_section(f"error: {get('error_type')}", short_error(str(get("error") or "")), colour="#c62828"))
    else:
        cut = " (cut at the token limit)" if get("finish_reason") == "length" else ""
        parts.append(_section(f"answer{cut}", get("response")))
    calls = get("tool_calls")
    if not missing(calls):
        try:
            shown = json.dumps(json.loads(str(calls)), indent=2, ensure_ascii=False)
        except ValueError:
            shown = str(calls)
        valid = get("tool_call_valid")
        parts.append(_section(f"tool calls{'' if missing(valid) else ' (valid)' if valid else ' (invalid)'}", shown))
    marks = {
        name: f"{_value(get(name))}" + (f" — {get(_reason(name))}" if not missing(get(_reason(name))) else "")
        for name in [k for k in dict(row) if _is_score(str(k))]
    }
    if marks:
        parts.append(_fields("scores and reasons", marks))
    call = {k: _measure(k, get(k)) for k in _CALL if k in dict(row) and not missing(get(k))}
    parts.append(_fields("call", call))
    return f'<div class="oc-transcript">{"".join(parts)}</div>'


def _measure(name: str, value: Any) -> Any:
    """A call's number as the tables show it (seconds, dollars, three significant figures)."""
    if not isinstance(value, float):
        return value
    if name.endswith("_s"):
        return seconds(value)
    return dollars(value, free="saved" not in name) if name.endswith("_usd") else number(value)


def _scorer(results: pd.DataFrame, scorer: str | None) -> str:
    scores = score_columns(results)
    if scorer is None:
        if not scores:
            raise ValueError("a score range needs a score column; this frame has none")
        return scores[0]
    if scorer not in scores:
        raise ValueError(f"no score column {scorer!r}; score columns: {', '.join(scores) or 'none'}")
    return scorer


def _is_score(name: str) -> bool:
    return name == "score" or name.startswith("score_")


def _derived(name: str) -> bool:
    return _is_score(name) or name == "reason" or name.startswith("reason_") or name.startswith("judge_")


def _reason(score: str) -> str:
    return "reason" if score == "score" else "reason_" + score.removeprefix("score_")


def _value(value: Any) -> str:
    if missing(value):
        return "–"
    number = float(value)
    return "✓" if number == 1 else "✗" if number == 0 else f"{number:.3g}"


def _section(title: str, body: Any, colour: str = "") -> str:
    style = f' style="color:{colour}"' if colour else ""
    text = "–" if missing(body) else str(body)
    return (
        f'<div class="oc-section"><b{style}>{html.escape(title)}</b>'
        f'<pre style="white-space:pre-wrap;margin:2px 0 8px">{html.escape(text)}</pre></div>'
    )


def _fields(title: str, fields: dict[Any, Any]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:12px'>{html.escape(str(k))}</th>"
        f"<td style='white-space:pre-wrap'>{html.escape('–' if missing(v) else str(v))}</td></tr>"
        for k, v in fields.items()
    )
    return f'<div class="oc-section"><b>{html.escape(title)}</b><table>{rows}</table></div>'
