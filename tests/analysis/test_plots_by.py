"""`plot(..., by=...)` draws one box or bar per value of another results column, e.g. latency by region."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest

from opencode_lab.analysis.metrics import summarize
from opencode_lab.analysis.plots import plot
from opencode_lab.core.schema import results_frame


def rows() -> list[dict[str, object]]:
    regions = ["eu-central-1", "us-east-1", None]
    return [
        {"prompt": f"p{i}", "prompt_id": i, "model": "haiku", "response": "ok", "region": regions[i % 3],
         "latency_s": 0.1 * (1 + i % 3)}
        for i in range(9)
    ] + [{"prompt": "p9", "prompt_id": 9, "model": "haiku", "error_type": "server_error",
          "region": "us-east-1"}]  # fmt: skip


def tick_labels(fig: plt.Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_xticklabels()]


def test_latency_boxes_by_region_hold_each_regions_ok_calls() -> None:
    fig = plot(results_frame(rows()), "latency", by="region")
    assert tick_labels(fig) == ["eu-central-1", "us-east-1", "(unknown)"]
    medians = [line.get_ydata()[0] for line in fig.axes[0].lines if line.get_color() == "k"]
    assert [round(m, 3) for m in medians[:3]] == [0.1, 0.2, 0.3]
    plt.close(fig)


def test_failures_by_region_count_each_regions_failures() -> None:
    fig = plot(results_frame(rows()), "failures", by="region")
    heights = [round(p.get_height(), 3) for p in fig.axes[0].patches]
    assert heights == [0.0, 0.25, 0.0]
    plt.close(fig)


def test_a_stats_frame_grouped_by_region_plots_as_it_is() -> None:
    table = summarize(results_frame(rows()).dropna(subset=["region"]), "region")
    fig = plot(table, "latency")
    assert tick_labels(fig) == ["eu-central-1", "us-east-1"]
    assert not math.isnan(table.loc["us-east-1", "latency_p50_s"])
    plt.close(fig)


def test_an_unknown_column_is_named() -> None:
    with pytest.raises(ValueError, match="needs a 'zone' column"):
        plot(results_frame(rows()), "latency", by="zone")
