"""Live output of a ``%%chat`` cell: every model (and sample) asked at once, the answers streaming side by side.

All asking runs as one coroutine on the Lab's event loop (`Live.run`), so a cell
takes as long as its slowest model, not the sum of them, and views are touched
from that loop only.  A view never renders on a token: a ticker renders what
changed at most every 0.1 s, and no more often than a byte budget allows, so the
display traffic of a cell grows with how long it runs (hence with the answers'
length), not with updates x table size.  While an answer streams its cell shows
its last 2,000 characters; the final rendering shows everything.  A model still
waiting for its first token shows how long it has waited and which attempt it
is on.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.display import display

from ..core.errors import LabError
from ..core.types import ChatResult, Message
from .diagnosis import Context, explain, phrase
from .display import (
    AnswerColumn,
    answer_bundle,
    answer_text,
    comparison_bundle,
    cut_note,
    error_bundle,
    error_text,
    streaming_bundle,
)

if TYPE_CHECKING:
    from ..lab.lab import Lab

Outcome = ChatResult | LabError

#: the most answers one ``%%chat`` cell shows side by side (models x ``-n``); use compare() for more
MAX_ANSWERS = 100
_FRAME_S = 0.1
_BYTES_PER_S = 250_000
_TAIL = 2_000
_EMPTY = {"text/plain": ""}


@dataclass
class LiveJob:
    """One answer to ask for: the conversation so far (ending with the new user turn) and its system prompt."""

    model: str | None
    sample: int
    messages: list[Message]
    system: str | None = None


@dataclass
class _Waiting:
    started: float
    baseline: dict[str, int] = field(default_factory=dict)
    """Failures per deployment the model reaches, when it was asked: new failures are its failed tries."""


class Live:
    """Asks every job at once through *lab*, reporting to *view*; a failure becomes an outcome, never a raise."""

    def __init__(self, lab: Lab, jobs: Sequence[LiveJob], view: RichView | PlainView, options: dict[str, Any]) -> None:
        self.lab, self.jobs, self.view, self.options = lab, list(jobs), view, options
        self.stream = options.pop("stream", True)
        self._full = [""] * len(self.jobs)
        self._waiting: dict[int, _Waiting] = {}

    async def run(self) -> list[Outcome]:
        ticker = asyncio.ensure_future(self._tick())
        try:
            return list(await asyncio.gather(*(self._ask(i) for i in range(len(self.jobs)))))
        finally:
            ticker.cancel()

    async def _ask(self, index: int) -> Outcome:
        job, column = self.jobs[index], self.view.columns[index]
        self._waiting[index] = _Waiting(time.monotonic(), self._failures(job.model))
        column.status = "asking…"
        self.view.changed(index)
        kwargs = {**self.options, "sample": job.sample, "system": job.system}
        try:
            if self.stream:
                result = None
                async for event in self.lab.astream_events(job.messages, job.model, **kwargs):
                    if isinstance(event, str):
                        self._delta(index, event)
                    else:
                        result = event
                if result is None:
                    raise LabError(f"the stream from {job.model or 'auto'} ended without a result")
            else:
                result = await self.lab.achat(job.messages, job.model, **kwargs)
        except LabError as exc:
            self._waiting.pop(index, None)
            column.text, column.error, column.status = self._full[index], exc, "failed"
            column.cause = explain(exc, Context.of(self.lab))
            self.view.failed(index)
            return exc
        self._waiting.pop(index, None)
        column.text, column.result, column.status = self._full[index], result, "done"
        self.view.done(index)
        return result

    def _delta(self, index: int, text: str) -> None:
        self._waiting.pop(index, None)
        self._full[index] += text
        full, column = self._full[index], self.view.columns[index]
        column.text = full if len(full) <= _TAIL else "…" + full[-_TAIL:]
        column.status = "streaming…"
        self.view.delta(index, text)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_FRAME_S)
            for index, waiting in list(self._waiting.items()):
                status = self._waiting_status(index, waiting)
                if status != self.view.columns[index].status:
                    self.view.columns[index].status = status
                    self.view.changed(index)
            self.view.refresh()

    def _waiting_status(self, index: int, waiting: _Waiting) -> str:
        """``asking… 12 s · attempt 3 (last: connection refused)`` for an answer that has not begun."""
        elapsed = time.monotonic() - waiting.started
        parts = ["asking…" if elapsed < 1 else f"asking… {math.floor(elapsed)} s"]
        health = self.lab.router.health()
        failed = sum(health[d].failures - n for d, n in waiting.baseline.items() if d in health)
        if failed:
            model = self.jobs[index].model
            alone = sum(1 for i in self._waiting if self.jobs[i].model == model) == 1
            parts.append(f"attempt {failed + 1}" if alone else f"{failed} failed tries so far")
            last = [health[d].last_error for d in waiting.baseline if d in health and health[d].last_error]
            if last:
                kind, _, message = str(last[-1]).partition(": ")
                parts[-1] += f" (last: {phrase(kind, message)})"
        return " · ".join(parts)

    def _failures(self, model: str | None) -> dict[str, int]:
        try:
            ids = [d.id for g in self.lab.catalog.resolve(model) for d in g.deployments]
        except LabError:
            return {}
        health = self.lab.router.health()
        return {d: health[d].failures for d in ids if d in health}


class RichView:
    """One display updated in place while answers arrive, then the final rendering as its own output.

    Readers of saved notebooks that ignore ``update_display_data`` (nbval does) see a
    live display only as first shown, so it starts and ends empty and the final
    rendering is displayed afresh: a rerun under nbval sees what the notebook saved.
    """

    def __init__(self, columns: list[AnswerColumn], fmt: str) -> None:
        self.columns, self.fmt = columns, fmt
        self.sent = 0
        """Characters sent to the display so far, every update included (what a front end receives)."""
        self._handle = display(_EMPTY, raw=True, display_id=True)
        self._dirty = False
        self._next_at = 0.0

    def changed(self, index: int) -> None:
        self._dirty = True

    def delta(self, index: int, text: str) -> None:
        self._dirty = True

    done = failed = changed

    def refresh(self) -> None:
        """Render what changed, unless the last update was too recent (or, for a large table, too big)."""
        now = time.monotonic()
        if not self._dirty or now < self._next_at or self._handle is None:
            return
        bundle = self._bundle(final=False)
        size = sum(len(v) for v in bundle.values())
        self._handle.update(bundle, raw=True)
        self.sent += size
        self._dirty = False
        self._next_at = now + max(_FRAME_S, size / _BYTES_PER_S)

    def close(self, *, errors_below: bool = False) -> None:
        """End the live display and show the final rendering; *errors_below*: the cell's own error names
        every failure, so failed answers show only the text that did arrive (if any)."""
        for column in self.columns:
            if column.status not in ("done", "failed"):
                column.status = "interrupted" if column.status != "waiting" else "not asked"
        if self._handle is not None:
            self._handle.update(_EMPTY, raw=True)
        if errors_below:
            for column in self.columns:
                column.error, column.status = None, "cut off: see the error below"
            if not any(c.text for c in self.columns):
                return
        bundle = self._bundle(final=True)
        self.sent += sum(len(v) for v in bundle.values())
        display(bundle, raw=True)

    def _bundle(self, *, final: bool) -> dict[str, str]:
        if len(self.columns) > 1:
            return comparison_bundle(self.columns, self.fmt)
        column = self.columns[0]
        if column.error is not None:
            return error_bundle(column.error, column.label, column.text, column.cause)
        if column.result is not None and final:
            return answer_bundle(column.result, self.fmt, max_tokens=column.max_tokens)
        return streaming_bundle(column.text, f"{column.label} · {column.status}", self.fmt)


class PlainView:
    """Terminal output: one model's text printed as it arrives; several models' answers each printed whole
    as it finishes (interleaved tokens would be unreadable)."""

    def __init__(self, columns: list[AnswerColumn], fmt: str) -> None:
        self.columns, self.fmt = columns, fmt
        self._printed = ""
        self._settled: dict[int, str | None] = {}  # finished blocks (None: failed) not printed yet
        self._next = 0  # the column whose block prints next: answers print in the order models were asked
        self._failures: dict[int, str] = {}

    def changed(self, index: int) -> None:
        pass

    def refresh(self) -> None:
        pass

    def delta(self, index: int, text: str) -> None:
        if len(self.columns) == 1:
            sys.stdout.write(text)
            sys.stdout.flush()
            self._printed += text

    def done(self, index: int) -> None:
        column, result = self.columns[index], self.columns[index].result
        assert result is not None
        cut = cut_note(result, column.max_tokens)
        if len(self.columns) == 1:
            body = "" if self._printed else answer_text(result.text, self.fmt)
            print(f"{body}{cut}{_line_end(self._printed + body + cut)}-- {result.footer()}")
        else:
            self._settled[index] = (
                f"== {column.label} ==\n{answer_text(result.text, self.fmt)}{cut}\n-- {result.footer()}\n"
            )
            self._print_settled()

    def failed(self, index: int) -> None:
        """One model's failure is the cell's error (printed once, by it); several models' wait for `close`."""
        column = self.columns[index]
        assert column.error is not None
        if len(self.columns) == 1:
            sys.stdout.write(_line_end(self._printed))
        else:
            text = error_text(column.error, column.label, column.text, column.cause)
            self._failures[index] = f"== {column.label} ==\n{text}\n"
            self._settled[index] = None
            self._print_settled()

    def _print_settled(self) -> None:
        """Print each answer once every model asked before it has settled: the same order whoever is faster."""
        while self._next in self._settled:
            block = self._settled.pop(self._next)
            if block is not None:
                print(block)
            self._next += 1

    def close(self, *, errors_below: bool = False) -> None:
        for index in sorted(self._settled):  # answers behind a model that never settled (an interrupted cell)
            block = self._settled[index]
            if block is not None:
                print(block)
        self._settled.clear()
        if not errors_below:
            for index in sorted(self._failures):
                print(self._failures[index])


def _line_end(printed: str) -> str:
    """What ends the line after *printed* (already on screen, or about to be) before the next line."""
    return "" if not printed or printed.endswith("\n") else "\n"
