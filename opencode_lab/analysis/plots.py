"""Comparison plots of a results frame (one row per call) or a stats frame (`metrics.summarize`).

Figures are built with pyplot (so Jupyter's inline display is set up) and then
*closed*: pyplot forgets them, a notebook shows the returned figure exactly once,
a loop of 50 plots does not pile up open figures, and the global backend is never
touched.  Save with ``fig.savefig(...)``; ``display(fig)`` shows it again.

Readability defaults: models in alphabetical order of their full id (the row
order of `stats()`), shortened to the last path segment (longer suffixes where
two would clash, an ellipsis past 30 characters), tick labels turned only as far
as needed (0°, 30°, then 90°) for neighbours not to overlap.
matplotlib and pandas are imported inside the functions.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import cycle, pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KINDS: tuple[str, ...] = ("overview", "latency", "cost", "failures", "tradeoff")
_PANELS = ("latency", "cost", "failures", "tradeoff")
_ROTATIONS = (0, 30, 90)
_MAX_LABEL = 30


@dataclass
class _View:
    """What every panel needs: per-row data when there is some, per-model stats always."""

    results: pd.DataFrame | None
    stats: pd.DataFrame
    labels: list[str]

    @property
    def positions(self) -> list[int]:
        return list(range(len(self.labels)))


def plot(data: pd.DataFrame, kind: str = "overview", *, ax: Axes | None = None) -> Figure:
    """Draw one comparison ``kind`` (or the 2x2 ``overview``) and return the figure.

    ``data`` is a results frame (has ``latency_s``: latency is drawn as box plots of
    ok, uncached calls) or a stats frame (has ``latency_p50_s``: p50 bars with a p95
    whisker).  ``ax`` draws a single kind into an existing axes.
    Raises ValueError for an unknown kind, a frame of neither shape, or no rows.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    view = _view(data)
    if kind == "overview" and ax is not None:
        raise ValueError("kind='overview' draws its own 2x2 figure; pass ax= only with a single kind")
    n = len(view.labels)
    if kind == "overview":
        fig, grid = _new_figure((min(18.0, max(11.0, 1.1 * n + 4)), 8.5), rows=2, cols=2)
        axes = list(grid.flat)
        for panel_ax, panel in zip(axes, _PANELS, strict=True):
            _DRAW[panel](panel_ax, view)
        _finish(fig, axes[:3], detach=True)
        return fig
    own = ax is None
    if ax is None:
        _, ax = _new_figure((min(14.0, max(6.4, 0.55 * n + 3)), 4.6))
    _DRAW[kind](ax, view)
    fig = ax.figure.figure  # the root figure, also when ax lives in a subfigure
    _finish(fig, [ax] if kind != "tradeoff" else [], detach=own)
    return fig


def plot_traffic(attempts: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Attempts per deployment (``served_by``), stacked by outcome: ``ok`` or the error type.

    Shows where a router actually sent traffic and where it failed; deployment ids
    are shown in full, since the provider part is the point here.
    """
    import pandas as pd

    missing = [c for c in ("served_by", "status", "error_type") if c not in attempts.columns]
    if missing:
        raise ValueError(f"plot_traffic() needs attempt records; missing column(s): {', '.join(missing)}")
    if attempts.empty:
        raise ValueError("nothing to plot: the attempts frame has no rows")
    outcome = attempts["error_type"].where(attempts["error_type"].notna(), "error").astype(str)
    outcome = outcome.where(attempts["status"].astype(str) != "ok", "ok")
    served = attempts["served_by"].where(attempts["served_by"].notna(), "(none)").astype(str)
    counts = pd.crosstab(served, outcome).sort_index()
    order = (["ok"] if "ok" in counts.columns else []) + sorted(c for c in counts.columns if c != "ok")
    counts = counts[order]
    own = ax is None
    if ax is None:
        _, ax = _new_figure((min(14.0, max(6.4, 0.55 * len(counts) + 3)), 4.6))
    errors = cycle(["C3", "C1", "C4", "C5", "C6", "C7", "C8", "C9", "C0"])
    totals = _stacked(ax, counts, ["C2" if c == "ok" else next(errors) for c in order])
    _model_ticks(ax, [_ellipsize(s) for s in counts.index])
    _integer_counts(ax, max(totals, default=0))
    ax.set_ylabel("attempts")
    ax.set_title("Attempts per deployment")
    _legend(ax, title="outcome")
    fig = ax.figure.figure
    _finish(fig, [ax], detach=own)
    return fig


# -- panels ---------------------------------------------------------------------------------


def _latency(ax: Axes, v: _View) -> None:
    if v.results is not None:
        r = v.results
        fresh = r[r["error_type"].isna() & ~r["cached"].astype(bool) & r["latency_s"].notna()]
        data = [fresh.loc[fresh["model"] == m, "latency_s"].to_numpy(dtype=float) for m in v.stats.index]
        ax.boxplot(data, positions=v.positions, widths=0.6, manage_ticks=False)
        ax.set_title("Latency (ok, uncached calls)")
    else:
        p50 = v.stats["latency_p50_s"].to_numpy(dtype=float)
        p95 = v.stats["latency_p95_s"].to_numpy(dtype=float)
        upper = (p95 - p50).clip(min=0)
        ax.bar(v.positions, p50, yerr=[[0.0] * len(p50), upper], capsize=4, color="C0", width=0.6)
        ax.set_title("Latency p50 (whisker: p95)")
    _model_ticks(ax, v.labels)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("latency (s)")


def _cost(ax: Axes, v: _View) -> None:
    cost = v.stats["cost_usd"].astype(float)
    saved = v.stats["cost_saved_usd"].astype(float).fillna(0.0)
    spent = cost.fillna(0.0)
    ax.bar(v.positions, spent.tolist(), color="C0", width=0.6, label="spent")
    ax.bar(
        v.positions, saved.tolist(), bottom=spent.tolist(), color="C0", alpha=0.35, hatch="//", width=0.6,
        label="saved by cache",
    )  # fmt: skip
    for x, unknown in zip(v.positions, cost.isna(), strict=True):
        if unknown:
            ax.annotate("n/a", (x, 0), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
    if (saved > 0).any():
        _legend(ax)
    _model_ticks(ax, v.labels)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("cost (USD)")
    ax.set_title("Cost per model")


def _failures(ax: Axes, v: _View) -> None:
    import pandas as pd

    totals = v.stats["failed"].astype(int).tolist()
    if v.results is not None:
        failed = v.results[v.results["error_type"].notna()]
        counts = pd.crosstab(failed["model"], failed["error_type"].astype(str))
        counts = counts.reindex(index=v.stats.index, fill_value=0)
        counts = counts[sorted(counts.columns)]
        _stacked(ax, counts, [f"C{(i + 3) % 10}" for i in range(len(counts.columns))])
        if len(counts.columns):
            _legend(ax, title="error type")
        else:
            ax.bar(v.positions, totals, width=0.6, color="C3")  # zero-height bars keep every model on the axis
    else:
        ax.bar(v.positions, totals, width=0.6, color="C3")
    for x, total, rate in zip(v.positions, totals, v.stats["failure_rate"], strict=True):
        ax.annotate(f"{rate:.0%}", (x, total), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
    _model_ticks(ax, v.labels)
    _integer_counts(ax, max(totals, default=0))
    ax.set_ylabel("failed calls")
    ax.set_title("Failures per model (failure rate on top)")


def _tradeoff(ax: Axes, v: _View) -> None:
    x = v.stats["cost_per_1k_calls_usd"].astype(float).tolist()
    y = v.stats["latency_p50_s"].astype(float).tolist()
    shown = [i for i in v.positions if x[i] == x[i] and y[i] == y[i]]  # NaN != NaN
    ax.scatter([x[i] for i in shown], [y[i] for i in shown], c=[f"C{i % 10}" for i in shown], zorder=3)
    for i in shown:
        ax.annotate(v.labels[i], (x[i], y[i]), xytext=(4, 4), textcoords="offset points", fontsize=8)
    hidden = [v.labels[i] for i in v.positions if i not in shown]
    if hidden:
        note = "not shown (no cost or latency data): " + ", ".join(hidden)
        ax.text(0.01, 0.99, note, transform=ax.transAxes, va="top", fontsize=7, wrap=True)
    ax.margins(0.2)
    ax.set_xlabel("cost per 1k calls (USD)")
    ax.set_ylabel("latency p50 (s)")
    ax.set_title("Cost vs latency (lower left is better)")


_DRAW = {"latency": _latency, "cost": _cost, "failures": _failures, "tradeoff": _tradeoff}


# -- helpers --------------------------------------------------------------------------------


def _view(data: Any) -> _View:
    from ..core.schema import truthy
    from .metrics import summarize

    columns = getattr(data, "columns", None)
    if columns is None:
        raise ValueError(f"plot() needs a pandas DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("nothing to plot: the frame has no rows")
    if "latency_s" in columns:
        if "model" not in columns:
            raise ValueError("a results frame needs a 'model' column to plot per model")
        results = data.copy()
        results["cached"] = results["cached"].map(truthy).astype(bool) if "cached" in columns else False
        stats = summarize(results, "model")
    elif "latency_p50_s" in columns:
        results, stats = None, data
    else:
        raise ValueError("plot() needs a results frame (with latency_s) or a stats frame (with latency_p50_s)")
    order = sorted(range(len(stats)), key=lambda i: str(stats.index[i]))
    stats = stats.iloc[order]
    return _View(results, stats, _labels(stats.index))


def _labels(index: pd.Index) -> list[str]:
    if index.nlevels == 1:
        return [_ellipsize(s) for s in _short_names([str(k) for k in index])]
    levels = [_short_names([str(k) for k in index.get_level_values(i)]) for i in range(index.nlevels)]
    return [_ellipsize(" | ".join(parts)) for parts in zip(*levels, strict=True)]


def _short_names(names: list[str]) -> list[str]:
    """Last path segment of each id, using longer suffixes only where two different ids would clash."""
    unique = list(dict.fromkeys(names))
    depth = dict.fromkeys(unique, 1)
    while True:
        short = {n: "/".join(n.split("/")[-depth[n] :]) for n in unique}
        counts = Counter(short.values())
        clashing = [n for n in unique if counts[short[n]] > 1 and depth[n] < len(n.split("/"))]
        if not clashing:
            return [short[n] for n in names]
        for n in clashing:
            depth[n] += 1


def _ellipsize(text: str) -> str:
    if len(text) <= _MAX_LABEL:
        return text
    keep = _MAX_LABEL - 1
    return text[: keep // 2] + "…" + text[-(keep - keep // 2) :]


def _new_figure(size: tuple[float, float], rows: int = 1, cols: int = 1) -> tuple[Figure, Any]:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=rows * cols == 1)
    return fig, axes


def _model_ticks(ax: Axes, labels: list[str]) -> None:
    ax.set_xticks(range(len(labels)), labels, fontsize=9 if len(labels) <= 6 else 8)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _stacked(ax: Axes, counts: pd.DataFrame, colors: list[str]) -> list[float]:
    """One bar per row of ``counts``, one stacked layer per column (the legend label); returns the totals."""
    bottom = [0.0] * len(counts)
    for column, color in zip(counts.columns, colors, strict=True):
        heights = counts[column].tolist()
        ax.bar(range(len(counts)), heights, bottom=bottom, width=0.6, label=str(column), color=color)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    return bottom


def _legend(ax: Axes, title: str | None = None) -> None:
    """Legend outside the axes, right of it: never over a bar or a label."""
    ax.legend(title=title, fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _integer_counts(ax: Axes, top: float) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(1.0, top * 1.15))


def _finish(fig: Figure, tick_axes: list[Axes], *, detach: bool) -> None:
    """Turn tick labels only as far as needed to keep them apart; detach a figure we created from pyplot."""
    import matplotlib.pyplot as plt

    for rotation in _ROTATIONS if tick_axes else ():
        for ax in tick_axes:
            for label in ax.get_xticklabels():
                label.set(
                    rotation=rotation,
                    ha="right" if rotation == 30 else "center",
                    rotation_mode="anchor" if rotation == 30 else "default",
                )
        fig.draw_without_rendering()  # lays out (constrained layout) and measures the labels
        if not any(_crowded(ax, rotation) for ax in tick_axes):
            break
    if detach:
        plt.close(fig)  # a caller's own figure (ax=...) stays theirs


def _crowded(ax: Axes, rotation: float) -> bool:
    """Whether neighbouring tick labels touch.

    Upright or vertical labels are compared by their boxes.  Slanted labels are
    parallel strips: they stay apart when the perpendicular distance between
    neighbours (tick spacing x sin θ) exceeds the text height, however long they are.
    """
    boxes = sorted(
        (t.get_window_extent() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()), key=lambda b: b.x0
    )
    if len(boxes) < 2:
        return False
    if rotation % 90 == 0:
        return any(a.x1 + 2 > b.x0 for a, b in pairwise(boxes))
    theta = math.radians(rotation)
    # a box of a w x h text turned by θ is (w cos θ + h sin θ) x (w sin θ + h cos θ); solve for h
    height = max((b.height * math.cos(theta) - b.width * math.sin(theta)) / math.cos(2 * theta) for b in boxes)
    ticks = sorted(x for x, _ in ax.transData.transform([(t, 0) for t in ax.get_xticks()]))
    spacing = min(b - a for a, b in pairwise(ticks))
    return spacing * math.sin(theta) < height + 2
