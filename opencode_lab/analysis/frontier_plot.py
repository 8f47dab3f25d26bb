"""The cost–quality plane as a figure: single models, random mixtures, the Oracle, a selector's sweep,
a cascade, and each swept system's non-decreasing convex hull; the legend carries each system's AIQ.

Built with pyplot and closed at once, as `opencode_lab.analysis.plots` does.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from .frontier import ndch
from .plots import model_colour

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

_STYLE = {"oracle": ("k", "--"), "selector": ("C3", "-"), "cascade": ("C5", "-.")}


def plot_plane(
    points: pd.DataFrame, metrics: pd.DataFrame, *, x: str = "cost", y: str = "quality", title: str = ""
) -> Figure:
    """*points*: system, kind (model | oracle | selector | cascade), cost, quality; *metrics*: system, aiq."""
    import matplotlib.pyplot as plt

    aiq = dict(zip(metrics["system"], metrics["aiq"], strict=True))
    fig = plt.figure(figsize=(9.5, 5), layout="constrained")
    ax = fig.add_subplot()
    singles = points[points["kind"] == "model"].sort_values("cost")
    xs, ys = ndch(singles["cost"], singles["quality"])
    ax.plot(xs, ys, ls=":", color="grey", label=f"random mixtures (AIQ {aiq.get('random mixture', float('nan')):.3f})")
    for _, row in singles.iterrows():
        ax.scatter(
            row["cost"],
            row["quality"],
            s=80,
            color=model_colour(str(row["system"])),
            zorder=3,
            label=f"{row['system']} (AIQ {aiq.get(row['system'], float('nan')):.3f})",
        )
    for kind in ("selector", "oracle", "cascade"):  # the Oracle dashed on top of a selector that matches it
        for name, group in points[points["kind"] == kind].groupby("system", sort=False):
            colour, line = _STYLE[kind]
            label = f"{name} (AIQ {aiq.get(str(name), float('nan')):.3f})"
            marker, size = ("D", 30) if kind == "cascade" else ("o", 12)
            ax.scatter(group["cost"], group["quality"], marker=marker, s=size, color=colour, alpha=0.6)
            hx, hy = ndch(group["cost"], group["quality"])
            ax.plot(hx, hy, ls=line, color=colour, lw=1.3 if kind == "oracle" else 2, label=label + ", hull")
    ax.set_xlabel(f"mean {x} per prompt")
    ax.set_ylabel(f"mean {y}")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside right center")
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    plt.close(fig)
    return fig
