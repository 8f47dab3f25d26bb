"""Rendering for the notebook front end: answers, comparison tables and errors as MIME bundles.

Pure functions from values to strings (no IPython import), so the magics stay a
thin layer and every rendering can be tested without a kernel.  All model text
is HTML-escaped before it reaches an HTML or Markdown output: an answer holding
``<script>`` or ``<img onerror=...>`` shows as text, never runs.

Formats (``%%chat --format``): ``markdown`` (rendered, raw HTML neutralised),
``text`` (verbatim), ``code`` (the first fenced block, highlighted), ``json``
(parsed and pretty-printed, or the text with a note when it is not JSON).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import error_type_of
from ..core.secrets import redact
from ..core.types import ChatResult

if TYPE_CHECKING:
    from ..core.errors import LabError

FORMATS: tuple[str, ...] = ("markdown", "text", "code", "json")
Bundle = dict[str, str]

_FENCE = re.compile(
    r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)"
    r"(?:^ {0,3}(?P=fence)[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_INLINE_CODE = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.DOTALL)  # a code span never crosses a blank line
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PRE = "white-space:pre-wrap;margin:0;font-family:var(--jp-code-font-family,monospace)"
_CELL = "text-align:left;vertical-align:top;padding:4px 8px"
_DIM = "opacity:0.7;font-size:0.85em"
_RED = "color:#c62828"


def escape(text: str) -> str:
    return html.escape(text, quote=True)


# -- one answer ---------------------------------------------------------------------------------------------------


def markdown_safe(text: str) -> str:
    """Markdown with its raw HTML neutralised: ``&`` and ``<`` escaped outside code spans and fences.

    Markdown renderers pass raw HTML through, so unescaped model text could inject
    markup; code spans and fenced blocks are left alone because the renderer
    already shows their content literally.
    """
    out, pos = [], 0
    for match in _FENCE.finditer(text):
        out.append(_escape_inline(text[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_escape_inline(text[pos:]))
    return "".join(out)


def _escape_inline(text: str) -> str:
    out, pos = [], 0
    for match in _INLINE_CODE.finditer(text):
        out.append(text[pos : match.start()].replace("&", "&amp;").replace("<", "&lt;"))
        out.append(match.group(0))
        pos = match.end()
    out.append(text[pos:].replace("&", "&amp;").replace("<", "&lt;"))
    return "".join(out)


def extract_code(text: str) -> tuple[str, str]:
    """(code, language) of the first fenced block, or the whole text when there is none."""
    match = _FENCE.search(text)
    if match is None:
        return text.strip("\n"), ""
    return match.group("body").rstrip("\n"), match.group("lang")


def parse_json(text: str) -> Any:
    """The JSON value in *text* (a bare document or one fenced block); ValueError when there is none."""
    code, _ = extract_code(text)
    return json.loads(code)


def code_block(code: str, lang: str = "") -> str:
    """A fenced Markdown block whose fence is longer than any backtick run inside *code*."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{code}\n{fence}"


def cut_note(result: ChatResult, max_tokens: int | None = None) -> str:
    """``… [cut at max_tokens=48]`` when the model stopped at its token limit, else ""."""
    if result.finish_reason != "length":
        return ""
    limit = max_tokens if max_tokens is not None else result.output_tokens
    return f"… [cut at max_tokens={limit}]" if limit is not None else "… [cut at max_tokens]"


def answer_bundle(result: ChatResult, fmt: str = "markdown", *, max_tokens: int | None = None) -> Bundle:
    """A finished answer in *fmt* plus its one-line footer (who answered, latency, tokens, cost); an answer
    cut by ``max_tokens`` says so after its text."""
    footer = result.footer()
    cut = cut_note(result, max_tokens)
    plain = f"{answer_text(result.text, fmt)}{cut}\n-- {footer}"
    sub = (f" *{escape(cut)}*" if cut else "") + f"\n\n<sub>{escape(footer)}</sub>"
    if fmt == "text":
        return {
            "text/html": f'<pre style="{_PRE}">{escape(result.text)}</pre>{_footer_html(cut)}{_footer_html(footer)}',
            "text/plain": plain,
        }
    if fmt == "code":
        code, lang = extract_code(result.text)
        return {"text/markdown": code_block(code, lang) + sub, "text/plain": plain}
    if fmt == "json":
        try:
            value = parse_json(result.text)
        except ValueError as exc:
            note = f"not valid JSON ({exc})"
            return {
                "text/markdown": code_block(result.text) + f"\n\n<sub>{escape(note)} · {escape(footer)}</sub>",
                "text/plain": f"{result.text}\n-- {note}\n-- {footer}",
            }
        return {
            "text/markdown": code_block(json.dumps(value, indent=2, ensure_ascii=False), "json") + sub,
            "text/plain": plain,
        }
    return {"text/markdown": markdown_safe(result.text) + sub, "text/plain": plain}


def answer_text(text: str, fmt: str = "markdown") -> str:
    """The answer as a terminal shows it: code extracted, JSON pretty-printed when it parses."""
    if fmt == "code":
        return extract_code(text)[0]
    if fmt == "json":
        try:
            return json.dumps(parse_json(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return text


def result_markdown(result: ChatResult) -> str:
    """How a `ChatResult` shows in a notebook: the answer with raw HTML neutralised, then the footer."""
    return answer_bundle(result, "markdown")["text/markdown"]


def register_reprs(shell: Any) -> None:
    """Teach IPython's Markdown formatter to show `ChatResult` (core types carry no display code)."""
    shell.display_formatter.formatters["text/markdown"].for_type(ChatResult, result_markdown)


def streaming_bundle(text: str, note: str, fmt: str = "markdown") -> Bundle:
    """A partial answer while it streams in, in the font it will end in, with a dim status line."""
    return {
        "text/html": f"{answer_html(text, fmt) if text else ''}{_footer_html(note)}",
        "text/plain": f"{text}\n-- {note}",
    }


def _footer_html(text: str) -> str:
    return f'<div style="{_DIM}">{escape(text)}</div>'


# -- errors -------------------------------------------------------------------------------------------------------


def _cause(exc: BaseException) -> BaseException:
    """The error worth showing: the last attempt's when the router gave up, else the error itself."""
    last = getattr(exc, "last", None)
    return last if isinstance(last, BaseException) else exc


def error_message(exc: BaseException, model: str = "") -> str:
    """The root cause's message, without a leading ``model: `` that the caller already shows."""
    text = redact(str(_cause(exc)))
    return text[len(model) + 2 :] if model and text.startswith(f"{model}: ") else text


def attempt_lines(exc: LabError) -> list[str]:
    """One line per deployment the router tried: ``#1 fault/m: server_error (HTTP 500)``."""
    lines = []
    for attempt in getattr(exc, "attempts", ()):
        status = f" (HTTP {attempt.http_status})" if attempt.http_status else ""
        lines.append(f"#{attempt.number} {attempt.deployment}: {attempt.error_type or attempt.status}{status}")
    return lines


def error_html(exc: LabError, model: str, partial: str = "", cause: str = "") -> str:
    """A short red message: error type, the cause (*cause*: a one-line diagnosis, else the root error's
    message) and the attempted deployments (no traceback)."""
    items = "".join(f"<li>{escape(line)}</li>" for line in attempt_lines(exc))
    tried = f'<ul style="margin:0">{items}</ul>' if items else ""
    text = f'<pre style="{_PRE}">{escape(partial)}</pre>' if partial else ""
    return (
        f'{text}<div style="{_RED}"><b>{escape(error_type_of(exc))}</b> from {escape(model)}: '
        f"{escape(cause or error_message(exc, model))}{tried}</div>"
    )


def error_text(exc: LabError, model: str, partial: str = "", cause: str = "") -> str:
    lines = [partial] if partial else []
    lines.append(f"error: {error_type_of(exc)} from {model}: {cause or error_message(exc, model)}")
    lines += [f"  tried {line}" for line in attempt_lines(exc)]
    return "\n".join(lines)


def error_bundle(exc: LabError, model: str, partial: str = "", cause: str = "") -> Bundle:
    return {"text/html": error_html(exc, model, partial, cause), "text/plain": error_text(exc, model, partial, cause)}


# -- side by side -------------------------------------------------------------------------------------------------


@dataclass
class AnswerColumn:
    """One model (or sample) of a comparison: its label and where its answer stands."""

    label: str
    text: str = ""
    result: ChatResult | None = None
    error: LabError | None = None
    status: str = "waiting"
    cause: str = ""
    """A failure's one-line diagnosis (see `opencode_lab.frontends.diagnosis`)."""
    max_tokens: int | None = None


def answer_html(text: str, fmt: str = "markdown") -> str:
    """An answer as an HTML fragment for a table cell (Markdown gets a small, escaped rendering)."""
    if fmt == "code":
        return f'<pre style="{_PRE}"><code>{escape(extract_code(text)[0])}</code></pre>'
    if fmt == "json":
        return f'<pre style="{_PRE}">{escape(answer_text(text, "json"))}</pre>'
    if fmt == "text":
        return f'<pre style="{_PRE}">{escape(text)}</pre>'
    out, pos = [], 0
    for match in _FENCE.finditer(text):
        out.append(_markdown_inline_html(text[pos : match.start()]))
        code = match.group("body").rstrip("\n")
        out.append(f'<pre style="{_PRE}"><code>{escape(code)}</code></pre>')
        pos = match.end()
    out.append(_markdown_inline_html(text[pos:]))
    return f'<div style="white-space:pre-wrap">{"".join(out).strip()}</div>'


def _markdown_inline_html(text: str) -> str:
    out, pos = [], 0
    for match in _INLINE_CODE.finditer(text):
        out.append(_emphasis(escape(text[pos : match.start()])))
        out.append(f"<code>{escape(match.group(2))}</code>")
        pos = match.end()
    out.append(_emphasis(escape(text[pos:])))
    return "".join(out)


def _emphasis(escaped: str) -> str:
    return _HEADING.sub(r"<b>\1</b>", _BOLD.sub(r"<b>\1</b>", escaped))


def comparison_html(columns: Sequence[AnswerColumn], fmt: str = "markdown") -> str:
    """Models side by side: a header row, the answers, and a stats row under each answer."""
    head = "".join(f'<th style="{_CELL}">{escape(c.label)}</th>' for c in columns)
    answers, stats = [], []
    for c in columns:
        if c.error is not None:
            body = error_html(c.error, c.label, c.text, c.cause)
            foot = ""
        elif c.result is not None:
            cut = cut_note(c.result, c.max_tokens)
            body = answer_html(c.result.text, fmt) + (f'<div style="{_DIM}">{escape(cut)}</div>' if cut else "")
            foot = c.result.footer()
        else:
            body, foot = (answer_html(c.text, fmt) if c.text else ""), c.status
        answers.append(f'<td style="{_CELL}">{body}</td>')
        stats.append(f'<td style="{_CELL}"><span style="{_DIM}">{escape(foot)}</span></td>')
    return (
        f'<table class="oc-compare"><thead><tr>{head}</tr></thead>'
        f"<tbody><tr>{''.join(answers)}</tr><tr>{''.join(stats)}</tr></tbody></table>"
    )


def comparison_text(columns: Sequence[AnswerColumn], fmt: str = "markdown") -> str:
    """The same comparison for a terminal: one block per model."""
    blocks = []
    for c in columns:
        if c.error is not None:
            body = error_text(c.error, c.label, c.text, c.cause)
        elif c.result is not None:
            body = f"{answer_text(c.result.text, fmt)}{cut_note(c.result, c.max_tokens)}\n-- {c.result.footer()}"
        else:
            body = f"{c.text}\n-- {c.status}"
        blocks.append(f"== {c.label} ==\n{body}")
    return "\n\n".join(blocks)


def comparison_bundle(columns: Sequence[AnswerColumn], fmt: str = "markdown") -> Bundle:
    return {"text/html": comparison_html(columns, fmt), "text/plain": comparison_text(columns, fmt)}
