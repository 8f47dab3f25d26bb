"""Progress of a batch in one element that updates in place: a small HTML line in Jupyter, tqdm in a terminal.

tqdm's notebook bar needs ipywidgets (without it, a red stderr warning and a line per
refresh land in the saved notebook) and, refreshed by time, can stop at "0/36" on a run
that finishes at once from the cache.  In a front end that renders HTML the bar is one
display updated in place instead; every update is throttled except the last, so the
count it ends on is the true one.  The display starts and ends empty: readers of saved
notebooks that ignore ``update_display_data`` (nbval) see what the notebook saved.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Mapping
from typing import Any

from ..lab.presentation import Progress

_EVERY_S = 0.25
_EMPTY = {"text/plain": ""}


def progress(total: int, desc: str, *, enabled: bool = True) -> Progress | None:
    """A progress element for *total* jobs, or None when disabled or there is nothing to count."""
    if not enabled or total <= 0:
        return None
    if html_frontend():
        return HtmlProgress(total, desc)
    return _TqdmProgress(total, desc)


def html_frontend() -> bool:
    """Whether code runs in an IPython whose front end renders HTML (Jupyter), not a terminal."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    formatter = getattr(shell, "display_formatter", None)
    return formatter is not None and "text/html" in formatter.active_types


class _Counts:
    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc = total, desc
        self.done = self.failed = self.cached = 0
        self.started = time.monotonic()

    def count(self, row: Mapping[str, Any] | None) -> None:
        self.done += 1
        if row is not None:
            self.failed += row.get("error_type") is not None
            self.cached += bool(row.get("cached"))

    def line(self) -> str:
        """``compare 24/36 calls · 3 failed · 10 cached · 4.2 s``: counts that say nothing are left out."""
        parts = [f"{self.desc} {self.done}/{self.total} calls"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cached:
            parts.append(f"{self.cached} cached")
        parts.append(f"{time.monotonic() - self.started:.1f} s")
        return " · ".join(parts)


class HtmlProgress(_Counts):
    """A ``<progress>`` bar and a count line in one display, updated in place, emptied on close."""

    def __init__(self, total: int, desc: str) -> None:
        from IPython.display import display

        super().__init__(total, desc)
        self._handle = display(_EMPTY, raw=True, display_id=True)
        self._shown_at = 0.0
        self._show()

    def update(self, row: Mapping[str, Any] | None = None) -> None:
        self.count(row)
        if self.done >= self.total or time.monotonic() - self._shown_at >= _EVERY_S:
            self._show()

    def bundle(self) -> dict[str, str]:
        line = self.line()
        bar = f'<progress value="{self.done}" max="{self.total}" style="width:12em;vertical-align:middle"></progress>'
        return {
            "text/html": f'<div class="oc-progress" style="font-size:0.85em">{bar} {html.escape(line)}</div>',
            "text/plain": line,
        }

    def close(self) -> None:
        if self._handle is not None:
            self._handle.update(_EMPTY, raw=True)

    def _show(self) -> None:
        self._shown_at = time.monotonic()
        if self._handle is not None:
            self._handle.update(self.bundle(), raw=True)


class _TqdmProgress(_Counts):
    """tqdm's plain bar on stderr (``tqdm.std``: never the widget bar that needs ipywidgets)."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm.std import tqdm

        super().__init__(total, desc)
        self._bar = tqdm(total=total, desc=desc, unit="call", leave=False, file=sys.stderr)

    def update(self, row: Mapping[str, Any] | None = None) -> None:
        self.count(row)
        if row is not None and (self.failed or self.cached):
            self._bar.set_postfix(failed=self.failed, cached=self.cached, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
