"""Comparison plots of a results frame (one row per call) or a stats frame (`metrics.summarize`).

Figures are built with pyplot (so Jupyter's inline display is set up) and then
*closed*: pyplot forgets them, a notebook shows the returned figure exactly once,
a loop of 50 plots does not pile up open figures, and the global backend is never
touched.  Save with ``fig.savefig(...)``; ``display(fig)`` shows it again.

The overview answers "which is better, and how sure": score bars with their 95 %
intervals and the prompts they rest on (failures counted as `stats()` counts them), the
paired difference of every pair of models with its interval and the verdict in words
(`statistics.paired`), the failure rate when something failed, latency (boxes of the ok
calls, or a stats frame's p50/p95 with order-statistic intervals), cost when calls were
priced, and the score against cost or latency per output token.  Panels without data are
left out, so free local models get no blank or negative-dollar panels.  Titles name the
scorer (``compare`` records it in ``attrs["scorers"]``).

One colour per model across every figure of a session (`model_colour`: assigned in
order of first appearance, never red, which marks failures).  Readability defaults:
models in the order they were given (the row order of `stats()`), shortened to the
last path segment (longer suffixes where two would clash, an ellipsis past 30
characters), tick labels turned only as far as needed (0°, 30°, then 90°) for
neighbours not to overlap.
matplotlib and pandas are imported inside the functions.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle, pairwise
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import HashableList

KINDS: tuple[str, ...] = ("overview", "score", "paired", "latency", "cost", "failures", "tradeoff", "ratings")
#: the overview's panels in reading order (those without data are left out)
_PANELS = ("score", "paired", "failures", "latency", "cost", "tradeoff")
#: panels with one tick per model along x (their labels are turned as far as needed to stay apart)
_MODEL_TICKS = ("score", "failures", "latency", "cost")
#: the overview's paired panel shows up to this many pairs (4 models); ``kind="paired"`` shows any number
_MAX_PAIRS = 6
_ROTATIONS = (0, 30, 90)
_MAX_LABEL = 30
#: model colours: matplotlib's cycle without its red and brown (error types use reds and browns)
_MODEL_COLOURS = ("C0", "C1", "C2", "C4", "C6", "C8", "C9", "C7", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5")
ERROR_COLOURS = ("#c62828", "#ef9a9a", "#8d6e63", "#ad1457", "#ff7043", "#4e342e", "#f8bbd0", "#bf360c")
_COLOURS: dict[str, str] = {}


def model_colour(model: str) -> str:
    """The colour of *model* in every figure of this process, and in every notebook: picked from the model's name
    (a stable hash), so the same model has the same colour wherever it is drawn; a model whose colour another
    model of this process already has takes the next free one, so two models never share a colour."""
    if model not in _COLOURS:
        start = zlib.crc32(model.encode()) % len(_MODEL_COLOURS)
        taken = set(_COLOURS.values())
        order = [_MODEL_COLOURS[(start + k) % len(_MODEL_COLOURS)] for k in range(len(_MODEL_COLOURS))]
        _COLOURS[model] = next((c for c in order if c not in taken), order[len(_COLOURS) % len(order)])
    return _COLOURS[model]


@dataclass
class _View:
    """What every panel needs: per-row data when there is some, per-model stats always, the score to show
    (``score``, else the first ``score_<name>``) and, from rows, its paired comparisons."""

    results: pd.DataFrame | None
    stats: pd.DataFrame
    labels: list[str]
    score: str | None
    scorers: dict[str, str]
    paired: pd.DataFrame | None
    by: str = "model"
    """The results column the stats group rows by (each bar or box is one of its values)."""

    @property
    def positions(self) -> list[int]:
        return list(range(len(self.labels)))

    @property
    def colours(self) -> list[str]:
        return [model_colour(str(key)) for key in self.stats.index]

    @property
    def priced(self) -> bool:
        """Some call cost (or would have cost) money: a cost axis says something."""
        known = [c for c in (*self.column("cost_usd"), *self.column("cost_saved_usd")) if c == c]
        return any(c > 0 for c in known)

    def has(self, panel: str) -> bool:
        """Whether *panel* has data to show (the overview leaves the others out)."""
        if panel == "score":
            return self.scored
        if panel == "paired":
            return self.paired is not None and not self.paired.empty
        if panel == "failures":
            return any(f > 0 for f in self.column("failed"))
        if panel == "latency":
            return any(n > 0 for n in self.column("n_latency"))
        if panel == "cost":
            return self.priced
        if panel == "tradeoff":
            return self.scored or self.priced
        return True

    @property
    def scored(self) -> bool:
        return self.score is not None

    @property
    def scorer(self) -> str | None:
        """Who gave the shown score, for titles: the scorer's recorded name, else the ``<name>`` of
        ``score_<name>``; None for a plain ``score`` of unknown origin."""
        assert self.score is not None
        if self.score in self.scorers:
            return self.scorers[self.score]
        return None if self.score == "score" else self.score.removeprefix("score_")

    def titled(self, what: str) -> str:
        """``"Score: exact"``, or just ``"Score"`` when the scorer is unknown."""
        return f"{what}: {self.scorer}" if self.scorer else what

    def column(self, name: str) -> list[float]:
        """A stats column as floats; all NaN when the frame lacks it (a stats frame saved before it existed)."""
        if name not in self.stats.columns:
            return [math.nan] * len(self.labels)
        return self.stats[name].astype(float).tolist()


def plot(data: pd.DataFrame, kind: str = "overview", *, ax: Axes | None = None, by: str = "model") -> Figure:
    """Draw one comparison ``kind`` (or the ``overview`` of them all) and return the figure.

    ``data`` is a results frame (has ``latency_s``: latency is drawn as box plots of ok
    calls) or a stats frame (has ``latency_p50_s``: p50 bars and p95 ticks, each with its
    interval); ``ratings`` draws a frame of `opencode_lab.ratings` instead.  ``score`` needs a score
    column, ``paired`` a results frame with a score and two models; the overview shows the panels that
    have data (score, paired differences, failures, latency, cost, trade-off).
    ``ax`` draws a single kind into an existing axes.  ``by`` groups a results frame's rows by another
    column instead of ``model`` (``region``, ``upstream_provider``, ``served_by``; rows where it is unknown
    form a group of their own); paired differences are between models only.
    Raises ValueError for an unknown kind, a frame of neither shape, no rows, or no score.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if kind == "ratings":
        return _ratings(data, ax)
    view = _view(data, by)
    if kind == "overview" and ax is not None:
        raise ValueError("kind='overview' draws its own figure of several panels; pass ax= only with a single kind")
    if kind == "score" and not view.scored:
        raise ValueError("no score to plot: the frame has no score column (compare(..., scorer=...) adds one)")
    if kind == "paired" and not view.has("paired"):
        raise ValueError("kind='paired' needs a results frame with a score column and at least two models")
    n = len(view.labels)
    if kind == "overview":
        return _overview(view, n)
    own = ax is None
    if ax is None:
        pairs = len(view.paired) if kind == "paired" and view.paired is not None else 0
        _, ax = _new_figure((min(14.0, max(6.4, 0.55 * n + 3)), max(4.6, 0.7 * pairs + 1.4)))
    _DRAW[kind](ax, view)
    fig = ax.figure.figure  # the root figure, also when ax lives in a subfigure
    _finish(fig, [ax] if kind in _MODEL_TICKS else [], detach=own)
    return fig


def _ratings(ratings: pd.DataFrame, ax: Axes | None) -> Figure:
    """Bradley-Terry ratings, best first, each with its bootstrap 95 % interval and the battles behind it; a
    rating whose interval is not estimable is a hollow marker saying so, never a zero-width bar."""
    missing = [c for c in ("rating", "ci_low", "ci_high", "battles") if c not in ratings.columns]
    if missing or ratings.empty:
        raise ValueError(f"kind='ratings' draws a frame of opencode_lab.ratings(); missing: {missing or 'rows'}")
    ordered = ratings.sort_values("rating")
    own = ax is None
    if ax is None:
        _, ax = _new_figure((6.4, max(2.4, 0.5 * len(ordered) + 1.4)))
    names = [str(m) for m in ordered.index]
    rows = list(range(len(ordered)))
    for row, name, (_, r) in zip(rows, names, ordered.iterrows(), strict=True):
        colour = model_colour(name)
        if r["ci_low"] == r["ci_low"]:
            ax.errorbar(r["rating"], row, xerr=[[r["rating"] - r["ci_low"]], [r["ci_high"] - r["rating"]]], fmt="o",
                        color=colour, capsize=4)  # fmt: skip
            end, text = r["ci_high"], f"n={int(r['battles'])}"
        else:
            ax.plot([r["rating"]], [row], "o", mfc="none", color=colour)
            end, text = r["rating"], f"n={int(r['battles'])}, interval not estimable"
        ax.annotate(text, (end, row), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(rows, _short_names(names))
    ax.set_xlabel("rating (Elo scale)")
    ax.set_title("Bradley-Terry rating (95 % bootstrap interval over prompts; n battles)")
    ax.margins(x=0.3)
    fig = ax.figure.figure
    _finish(fig, [], detach=own)
    return fig


def _overview(view: _View, n: int) -> Figure:
    import matplotlib.pyplot as plt

    shown = [p for p in _PANELS if view.has(p) and (p != "paired" or len(view.paired) <= _MAX_PAIRS)]  # type: ignore[arg-type]
    rows = _mosaic(shown)
    width = len(rows[0]) // 2  # panels in the widest row
    fig = plt.figure(
        figsize=(min(20.0, max(6.4, (0.5 * n + 3.2) * width)), 4.4 * len(rows)), layout="constrained"
    )
    panels = fig.subplot_mosaic(cast("list[HashableList[str]]", rows))
    for panel, panel_ax in panels.items():
        _DRAW[panel](panel_ax, view)
    _finish(fig, [a for p, a in panels.items() if p in _MODEL_TICKS], detach=True)
    return fig


def _mosaic(panels: list[str]) -> list[list[str]]:
    """Rows of panels, each panel two cells wide: one row up to three panels, else two rows."""
    if len(panels) <= 3:
        return [[p for p in panels for _ in range(2)]]
    top = panels[: (len(panels) + 1) // 2]
    bottom = panels[len(top) :]
    span = 2 * len(top)
    return [[p for p in top for _ in range(2)], [p for p in bottom for _ in range(span // len(bottom))]]


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


def _score(ax: Axes, v: _View) -> None:
    name = v.score
    mean = v.column(f"{name}_mean")
    _bars_with_intervals(ax, v, mean, v.column(f"{name}_ci_low"), v.column(f"{name}_ci_high"), color=v.colours)
    prompts = f"n_{name}_prompts" if f"n_{name}_prompts" in v.stats.columns else f"n_{name}"
    _label_n(ax, v.positions, _highest(mean, v.column(f"{name}_ci_high")), v.column(prompts))
    _model_ticks(ax, v.labels)
    ax.set_ylim(bottom=min(0.0, *(m for m in mean if m == m)))  # NaN != NaN
    ax.set_ylabel("mean score")
    failures = " (a failure scores 0)" if any(f > 0 for f in v.column("failed")) else ""
    ax.set_title(f"{v.titled('Score')}{failures}\n95 % interval; n prompts")


def _paired(ax: Axes, v: _View) -> None:
    """Every pair's difference (a - b) with its interval, top to bottom in the models' order, and over each
    the pair and the verdict in words: which is better, by how much, how sure, on how many prompts."""
    table = v.paired
    assert table is not None
    scale = 100.0 if table.attrs.get("points") else 1.0
    names = dict(zip((str(k) for k in v.stats.index), v.labels, strict=True))
    rows = list(range(len(table)))[::-1]
    reach = 0.0
    for row, key, (_, pair) in zip(rows, table.index, table.iterrows(), strict=True):
        a, b = cast(tuple[Any, Any], key)
        diff, low, high = (pair[c] * scale for c in ("difference", "ci_low", "ci_high"))
        winner = next((m for m in (a, b) if str(pair["verdict"]).startswith(f"{m} ")), None)
        colour = model_colour(str(winner)) if winner is not None else "0.35"
        if low == low:
            ax.errorbar(diff, row, xerr=[[diff - low], [high - diff]], fmt="o", color=colour, capsize=4)
            reach = max(reach, abs(low), abs(high))
        elif diff == diff:
            ax.plot([diff], [row], "o", color=colour)
        verdict = str(pair["verdict"])
        if winner is not None:
            verdict = names.get(str(winner), str(winner)) + verdict.removeprefix(str(winner))
        pair_name = f"{names.get(str(a), a)} − {names.get(str(b), b)} (n={int(pair['n_prompts'])})"
        ax.annotate(f"{pair_name}\n{verdict}", (0, row), xytext=(0, 7), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, color=colour)  # fmt: skip
    ax.axvline(0, color="0.5", linestyle="--", linewidth=1)
    reach = reach * 1.15 or (0.1 * scale)
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-0.5, len(rows) - 0.1)
    ax.set_yticks([])
    ax.set_xlabel("difference in points of score (a − b)" if scale == 100 else "difference (a − b)")
    level = float(table["ci_level"].iloc[0])
    adjusted = f", Bonferroni over {len(table)} pairs" if len(table) > 1 else ""
    ax.set_title(f"{v.titled('Paired difference in score')}\n{100 * level:.3g} % interval{adjusted}")


def _latency(ax: Axes, v: _View) -> None:
    if v.results is not None:
        r = v.results
        ok = r[r["error_type"].isna() & r["latency_s"].notna()]
        data = [ok.loc[ok[v.by] == m, "latency_s"].to_numpy(dtype=float) for m in v.stats.index]
        boxes = ax.boxplot(data, positions=v.positions, widths=0.6, manage_ticks=False, patch_artist=True)
        for box, colour in zip(boxes["boxes"], v.colours, strict=True):
            box.set(facecolor=colour, alpha=0.55)
        for median in boxes["medians"]:
            median.set(color="k")
        _label_n(ax, v.positions, [max(d, default=0.0) for d in data], [len(d) for d in data])
        ax.set_title("Latency of ok calls")
    else:
        p50 = v.column("latency_p50_s")
        _bars_with_intervals(
            ax, v, p50, v.column("latency_p50_s_ci_low"), v.column("latency_p50_s_ci_high"), color=v.colours
        )
        p95, low, high = v.column("latency_p95_s"), v.column("latency_p95_s_ci_low"), v.column("latency_p95_s_ci_high")
        ax.plot(v.positions, p95, "_", color="k", markersize=16, label="p95")
        _error_bars(ax, v.positions, p95, low, high, ecolor="k", capsize=3, elinewidth=0.8)
        _label_n(ax, v.positions, _highest(p50, p95, high), v.column("n_latency"))
        ax.set_title("Latency p50 bars, p95 ticks (95 % CI)")
    _model_ticks(ax, v.labels)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("latency (s)")


def _cost(ax: Axes, v: _View) -> None:
    cost = v.stats["cost_usd"].astype(float)
    saved = v.stats["cost_saved_usd"].astype(float).fillna(0.0)
    spent = cost.fillna(0.0)
    ax.bar(v.positions, spent.tolist(), color=v.colours, width=0.6, label="spent")
    ax.bar(
        v.positions, saved.tolist(), bottom=spent.tolist(), color=v.colours, alpha=0.35, hatch="//", width=0.6,
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
    from matplotlib.ticker import PercentFormatter

    rate = v.column("failure_rate")
    failed = v.stats["failed"].astype(int).tolist()
    if v.results is not None:
        rows = v.results[v.results["error_type"].notna()]
        counts = pd.crosstab(rows[v.by], rows["error_type"].astype(str))
        counts = counts.reindex(index=v.stats.index, fill_value=0)
        counts = counts[sorted(counts.columns)]
        # each error type's share of the failure rate
        shares = counts.div([max(f, 1) for f in failed], axis=0).mul([r if r == r else 0.0 for r in rate], axis=0)
        _stacked(ax, shares, [ERROR_COLOURS[i % len(ERROR_COLOURS)] for i in range(len(shares.columns))])
        if len(shares.columns):
            _legend(ax, title="error type")
        else:
            ax.bar(v.positions, [0.0] * len(rate), width=0.6, color="C3")  # zero-height bars keep every model
    else:
        ax.bar(v.positions, [r if r == r else 0.0 for r in rate], width=0.6, color="C3")
    low, high = v.column("failure_rate_ci_low"), v.column("failure_rate_ci_high")
    _error_bars(ax, v.positions, rate, low, high, ecolor="k", capsize=4, elinewidth=1)
    tops = _highest(rate, high)
    calls = v.stats["calls"].astype(int).tolist()
    for x, top, k, n in zip(v.positions, tops, failed, calls, strict=True):
        ax.annotate(f"{k}/{n}", (x, top), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)
    _model_ticks(ax, v.labels)
    ax.set_ylim(0, max(0.1, *tops) * 1.2)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("failure rate")
    ax.set_title("Failure rate (95 % interval; failed/calls)")


def _tradeoff(ax: Axes, v: _View) -> None:
    """Which model, at what price or speed, how sure: the mean score (with its interval) against cost per
    1k calls when calls were priced, else against latency per output token (so a terse answer does not win
    by being short); without scores, cost against latency.  A model's failure rate is written under its
    name, and its marker is hollow when half its calls or more failed.  The x axis starts at 0, so a spread
    of microseconds is not blown up to fill the panel."""
    quality = v.scored
    priced = v.priced or not quality  # unscored: always cost against latency
    per_token = [1000 / t if t == t and t > 0 else math.nan for t in v.column("output_tokens_per_s")]
    if priced:
        x, x_label = v.column("cost_per_1k_calls_usd"), "cost per 1k calls (USD)"
    elif any(t == t for t in per_token):
        x, x_label = per_token, "latency per output token (ms)"
    else:
        x, x_label = v.column("latency_p50_s"), "latency p50 (s)"
    y = v.column(f"{v.score}_mean") if quality else v.column("latency_p50_s")
    rate = v.column("failure_rate")
    shown = [i for i in v.positions if x[i] == x[i] and y[i] == y[i]]  # NaN != NaN
    if quality:
        low, high = v.column(f"{v.score}_ci_low"), v.column(f"{v.score}_ci_high")
        _error_bars(ax, [x[i] for i in shown], [y[i] for i in shown], [low[i] for i in shown], [high[i] for i in shown],
                    ecolor="0.5", capsize=3)  # fmt: skip
    right_end = max((x[i] for i in shown), default=1.0)
    below = _crowded_points([x[i] for i in shown], [y[i] for i in shown])
    for i, under in zip(shown, below, strict=True):
        colour, failing = v.colours[i], rate[i] == rate[i] and rate[i] >= 0.5
        ax.scatter([x[i]], [y[i]], s=60, zorder=3, color="none" if failing else colour, edgecolors=colour, linewidths=2)
        label = v.labels[i] + (f"\n{rate[i]:.0%} failed" if rate[i] == rate[i] and rate[i] > 0 else "")
        right = x[i] <= right_end / 2  # labels point inwards: none runs off the axes
        ax.annotate(label, (x[i], y[i]), xytext=(6 if right else -6, -6 if under else 4), textcoords="offset points",
                    fontsize=8, ha="left" if right else "right", va="top" if under else "baseline",
                    color="#c62828" if failing else "0.15")  # fmt: skip
    hidden = [v.labels[i] for i in v.positions if i not in shown]
    if hidden:
        ax.text(0.01, 0.99, "not shown (no data): " + ", ".join(hidden), transform=ax.transAxes, va="top",
                fontsize=7, wrap=True)  # fmt: skip
    ax.margins(0.25)
    ax.set_xlim(0, right_end * 1.3 if right_end > 0 else 1.0)
    ax.set_xlabel(x_label)
    ax.set_ylabel("mean score" if quality else "latency p50 (s)")
    what = v.titled("Score") if quality else "Latency"
    against = "cost" if priced else "latency per token" if x_label.startswith("latency per") else "latency"
    corner = "upper left" if quality else "lower left"
    ax.set_title(f"{what} vs {against}\n({corner} is better)")


_DRAW = {
    "score": _score, "paired": _paired, "latency": _latency, "cost": _cost, "failures": _failures,
    "tradeoff": _tradeoff,
}  # fmt: skip


# -- helpers --------------------------------------------------------------------------------


def _view(data: Any, by: str = "model") -> _View:
    from ..core.schema import truthy
    from .metrics import summarize
    from .statistics import paired

    columns = getattr(data, "columns", None)
    if columns is None:
        raise ValueError(f"plot() needs a pandas DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("nothing to plot: the frame has no rows")
    if "latency_s" in columns:
        if by not in columns:
            raise ValueError(f"a results frame needs a {by!r} column to plot per {by}")
        results = data.copy()
        results["cached"] = results["cached"].map(truthy).astype(bool) if "cached" in columns else False
        results[by] = results[by].astype(object).where(results[by].notna(), _UNKNOWN)
        stats = summarize(results, by)
    elif "latency_p50_s" in columns:
        results, stats = None, data
    else:
        raise ValueError("plot() needs a results frame (with latency_s) or a stats frame (with latency_p50_s)")
    means = [c.removesuffix("_mean") for c in stats.columns if c.endswith("_mean")]
    scores = [c for c in means if c == "score"] + [c for c in means if c.startswith("score_")]
    score = scores[0] if scores else None
    compared = None
    if results is not None and score is not None and len(stats) > 1 and by == "model":
        compared = paired(results, score)
    scorers = {**data.attrs.get("scorers", {})}
    return _View(results, stats, _labels(stats.index), score, scorers, compared, by)


#: the group of rows whose ``by`` value is unknown (a deployment that declares no region, say)
_UNKNOWN = "(unknown)"


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


def _bars_with_intervals(
    ax: Axes, v: _View, heights: list[float], low: list[float], high: list[float], color: str | list[str] = "C0"
) -> None:
    """Bars (a missing value: no bar, "n/a") with their intervals as black error bars."""
    ax.bar(v.positions, [h if h == h else 0.0 for h in heights], width=0.6, color=color)
    _error_bars(ax, v.positions, heights, low, high, ecolor="k", capsize=4, elinewidth=1)
    for x, h in zip(v.positions, heights, strict=True):
        if h != h:
            ax.annotate("n/a", (x, 0), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)


def _error_bars(
    ax: Axes, xs: Sequence[float], centre: Sequence[float], low: Sequence[float], high: Sequence[float], **style: Any
) -> None:
    """Vertical error bars where the interval is known, nothing where it is not: an unknown interval must
    not look like a zero-width one."""
    known = [i for i in range(len(xs)) if centre[i] == centre[i] and low[i] == low[i] and high[i] == high[i]]
    if known:
        spans = [[max(0.0, centre[i] - low[i]) for i in known], [max(0.0, high[i] - centre[i]) for i in known]]
        ax.errorbar([xs[i] for i in known], [centre[i] for i in known], yerr=spans, fmt="none", **style)


def _crowded_points(x: list[float], y: list[float]) -> list[bool]:
    """Which points' labels go below them: every other one of a run of points lying close together (within
    5 % of the height of y and 15 % of the largest x: the x axis starts at 0), so their labels do not print
    over each other."""
    near_x = 0.15 * max((abs(v) for v in x), default=0.0)
    near_y = 0.05 * max(max(y, default=0.0) - min(y, default=0.0), max((abs(v) for v in y), default=0.0))
    below = [False] * len(x)
    order = sorted(range(len(x)), key=lambda i: (y[i], x[i]))
    for previous, current in pairwise(order):
        if abs(y[current] - y[previous]) <= near_y and abs(x[current] - x[previous]) <= near_x:
            below[current] = not below[previous]
    return below


def _highest(*series: list[float]) -> list[float]:
    """Per position, the highest known value among ``series`` (0 when none is known)."""
    return [max((x for x in values if x == x), default=0.0) for values in zip(*series, strict=True)]


def _label_n(ax: Axes, positions: list[int], tops: list[float], counts: list[float]) -> None:
    """``n=...`` above each mark: how many calls it rests on."""
    for x, top, n in zip(positions, tops, counts, strict=True):
        text = f"n={int(n)}" if n == n else "n=?"
        ax.annotate(text, (x, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8, color="0.3")
    ax.margins(y=0.12)


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
