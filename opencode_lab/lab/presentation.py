"""What the application layer shows, plugged in from above.

The Lab hands out frames and figures and runs batches, but how they show (the
``df.oc`` accessor, figures displayed after a Jupyter cell, a progress line) is
the front ends' business: ``opencode_lab/__init__.py`` plugs them in here with
`present`, as IPython registers rich reprs.  Without them (a script importing
only this layer) nothing is displayed and nothing breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Progress(Protocol):
    def update(self, row: Mapping[str, Any] | None = None) -> None:
        """One more job finished (*row*: its results row, to count failures and cache hits)."""

    def close(self) -> None: ...


def _no_progress(total: int, desc: str, *, enabled: bool = True) -> Progress | None:
    return None


def _unchanged(fig: Figure) -> Figure:
    return fig


def _nothing() -> None:
    return None


@dataclass
class _Presentation:
    progress: Callable[..., Progress | None] = _no_progress
    figure: Callable[[Figure], Figure] = _unchanged
    frames: Callable[[], None] = _nothing


shown = _Presentation()


def present(
    *,
    progress: Callable[..., Progress | None] | None = None,
    figure: Callable[[Figure], Figure] | None = None,
    frames: Callable[[], None] | None = None,
) -> None:
    """Plug in how progress (``progress(total, desc, enabled=...)``), figures and frames are shown."""
    if progress is not None:
        shown.progress = progress
    if figure is not None:
        shown.figure = figure
    if frames is not None:
        shown.frames = frames
