"""Figures the API returns show in Jupyter whether or not the cell ends with them, as pandas' ``df.plot()`` does.

The plotting functions close their figures (so pyplot never piles them up or shows
one twice); in a front end that renders HTML a returned figure is instead displayed
once after the cell, unless the cell's value is that figure (IPython shows it then).
``fig = oc.plot(df)`` therefore draws, and ``oc.plot(df)`` draws once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .progress import html_frontend

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_pending: list[Figure] = []
_hooked: set[int] = set()


def shown(fig: Figure) -> Figure:
    """Display *fig* after the running cell (Jupyter only) and return it."""
    if not html_frontend():
        return fig
    shell = sys.modules["IPython"].get_ipython()
    if id(shell) not in _hooked:
        shell.events.register("post_run_cell", _after_cell)
        _hooked.add(id(shell))
    if not any(f is fig for f in _pending):
        _pending.append(fig)
    return fig


def displayed(fig: Figure) -> None:
    """*fig* was displayed by other means (``display(fig)``): do not show it again after the cell."""
    _pending[:] = [f for f in _pending if f is not fig]


def _after_cell(result: Any) -> None:
    from IPython.display import display

    figures, _pending[:] = list(_pending), []
    value = getattr(result, "result", None)
    for fig in figures:
        if fig is not value:
            display(fig)
