"""Operations figures: availability against objectives, burn rates, and any per-group series over time.

Drawn for the SLA report and the dashboard from frames the lab layer builds (`opencode_lab.lab.sla`,
`opencode_lab.lab.activity`), so nothing here reads a run log.  Figures are closed after
drawing, as in `opencode_lab.analysis.plots`; deployments keep one colour (`model_colour`).
matplotlib and pandas are imported inside the functions.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

from .plots import ERROR_COLOURS, model_colour

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def plot_availability(sla: pd.DataFrame) -> Figure:
    """One bar per deployment: availability with its 95 % interval, the objective as a black tick."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(sla) + 1.6), layout="constrained")
    names = [str(n) for n in sla.index]
    rows = range(len(sla))
    ax.barh(rows, sla["availability"], color=[model_colour(n) for n in names], height=0.6)
    low = (sla["availability"] - sla["availability_ci_low"]).clip(lower=0)
    high = (sla["availability_ci_high"] - sla["availability"]).clip(lower=0)
    ax.errorbar(sla["availability"], rows, xerr=[low, high], fmt="none", ecolor="0.2", capsize=3)
    objectives = sla["availability_objective"]
    ax.scatter(objectives, rows, marker="|", s=400, color="black", label="objective", zorder=3)
    lowest = min([v for v in (*sla["availability_ci_low"], *objectives) if not math.isnan(v)], default=0.9)
    ax.set_xlim(max(0.0, lowest - (1 - lowest) * 0.5 - 0.001), 1.0)
    ax.set_yticks(list(rows), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("availability (ok / attempts), 95 % interval")
    ax.set_title("Availability against objective")
    if objectives.notna().any():
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.01), borderaxespad=0, frameon=False)
    plt.close(fig)
    return fig


def plot_burn(sla: pd.DataFrame, windows: tuple[str, ...]) -> Figure:
    """Burn rate per deployment and window as a table of coloured cells (1 = spending the budget exactly
    as fast as the objective allows; blank where a window had no attempts or there is no objective)."""
    import matplotlib.pyplot as plt
    import numpy as np

    values = sla[[f"burn_{w}" for w in windows]].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(windows) + 3.0, 0.45 * len(sla) + 1.6), layout="constrained")
    shown = np.ma.masked_invalid(np.log10(np.clip(values, 0.1, 100.0)))
    ax.imshow(shown, cmap="RdYlGn_r", vmin=-1, vmax=2, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if not math.isnan(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(windows)), windows)
    ax.set_yticks(range(len(sla)), [str(n) for n in sla.index], fontsize=9)
    ax.set_title("Error-budget burn rate per window (1 = on budget)")
    plt.close(fig)
    return fig


def plot_series(
    table: pd.DataFrame, *, title: str, ylabel: str, bucket_s: float, bars: bool = False, counts: bool = False,
    errors: bool = False,
) -> Figure:  # fmt: skip
    """*table*: one row per time bucket of *bucket_s* seconds (its index: the buckets' starts), one column per
    group; a line per group through the buckets' middles, or stacked bars as wide as the buckets.  *counts*
    keeps the y ticks whole; *errors* says the groups are error types (drawn in the reds of failures)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9.0, 3.6), layout="constrained")
    reds = {group: ERROR_COLOURS[i % len(ERROR_COLOURS)] for i, group in enumerate(table.columns)}
    colour = reds.__getitem__ if errors else (lambda group: model_colour(str(group)))
    if counts:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = timedelta(seconds=bucket_s)
    if table.empty:
        ax.text(0.5, 0.5, "no calls in this span", ha="center", va="center", transform=ax.transAxes, color="0.4")
    elif bars:
        table = table.fillna(0.0)  # a stack has no gaps: an unknown amount is drawn as none
        bottom = None
        for column in table.columns:
            ax.bar(table.index, table[column], width=bucket_s / 86400, bottom=bottom, label=str(column),
                   color=colour(column), align="edge", edgecolor="white", linewidth=0.5)  # fmt: skip
            bottom = table[column] if bottom is None else bottom + table[column]
    else:
        middles = [start + step / 2 for start in table.index]
        for column in table.columns:
            ax.plot(middles, table[column], marker="o", markersize=4, label=str(column),
                    color=colour(column))  # fmt: skip
        ax.set_ylim(bottom=0)
    if not table.empty:
        ax.set_xlim(table.index[0] - step * 0.1, table.index[-1] + step * 1.1)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if not table.empty:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.autofmt_xdate()
    plt.close(fig)
    return fig
