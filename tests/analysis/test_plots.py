"""plots: every kind renders on Agg without warnings, with the right labels and one mark per model."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from itertools import pairwise

import matplotlib

matplotlib.use("Agg")  # headless; plots.py itself never touches the backend

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from statsmodels.stats.proportion import proportion_confint

from opencode_lab.analysis.metrics import summarize
from opencode_lab.analysis.plots import KINDS, _short_names, plot, plot_traffic
from opencode_lab.core.schema import results_frame

pytestmark = pytest.mark.filterwarnings("error")

MODELS = ["openrouter/openai/gpt-4o-mini", "openrouter/anthropic/claude-3.5-haiku", "local/smollm2-135m"]
LABELS = {
    "score": "mean score", "latency": "latency (s)", "cost": "cost (USD)", "failures": "failure rate",
    "tradeoff": "latency p50 (s)",
}  # fmt: skip


def _frame(models: list[str], prompts: int = 6) -> pd.DataFrame:
    rows = []
    for m, model in enumerate(models):
        for p in range(prompts):
            failed = m == 0 and p >= prompts - 2  # only the first model fails (timeout + rate_limit)
            rows.append(
                {
                    "run_id": "r", "prompt_id": p, "model": model, "served_by": model, "sample": 0,
                    "latency_s": 0.5 + 0.1 * ((p * 7 + m * 3) % 10), "ttft_s": 0.05, "input_tokens": 10,
                    "output_tokens": 20 + p, "cost_usd": 0.0001 * (m + 1), "cost_source": "catalog",
                    "cost_saved_usd": 0.0001 if p == 0 else 0.0, "cached": p == 0, "attempts": 1,
                    "error_type": ("timeout" if p % 2 else "rate_limit") if failed else None,
                    "error": "boom" if failed else None,
                    "score": math.nan if failed else float((p + m) % 3 != 0),
                }
            )  # fmt: skip
    return results_frame(rows)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture
def results() -> pd.DataFrame:
    return _frame(MODELS)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _intervals(ax: Axes) -> list[dict[int, tuple[float, float]]]:
    """The (low, high) of every error bar, by x position, one dict per errorbar() call."""
    found = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            segments = container.lines[2][0].get_segments()
            found.append({round(seg[0][0]): (seg[0][1], seg[1][1]) for seg in segments})
    return found


def _n_labels(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_text().startswith("n=")]


def _tick_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def _assert_labels_apart(ax: Axes) -> None:
    """Upright/vertical labels: disjoint boxes.  Slanted (parallel) labels: perpendicular gap > text height."""
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    rotation = labels[0].get_rotation()
    if rotation % 90 == 0:
        boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
        for a, b in pairwise(boxes):
            assert a.x1 <= b.x0, f"tick labels overlap: {a} / {b}"
        return
    heights = []
    for label in labels:  # measure the unrotated height, then restore
        label.set_rotation(0)
        heights.append(label.get_window_extent().height)
        label.set_rotation(rotation)
    ticks = [ax.transData.transform((x, 0))[0] for x in ax.get_xticks()]
    spacing = min(b - a for a, b in pairwise(ticks))
    assert spacing * math.sin(math.radians(rotation)) > max(heights)


@pytest.mark.parametrize("source", ["results", "stats"])
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "ratings"])  # ratings draw another frame: below
@pytest.mark.slow
def test_every_kind_renders_to_png(results: pd.DataFrame, kind: str, source: str) -> None:
    data = results if source == "results" else summarize(results)
    if kind == "paired" and source == "stats":
        with pytest.raises(ValueError, match="needs a results frame"):
            plot(data, kind)  # the paired differences need the rows
        return
    fig = plot(data, kind)
    assert isinstance(fig, Figure)
    assert _png(fig).startswith(b"\x89PNG")
    # score, paired differences (from rows only), failures, latency, cost, trade-off
    assert len(fig.axes) == ({"results": 6, "stats": 5}[source] if kind == "overview" else 1)
    assert plt.get_fignums() == []  # detached from pyplot: Jupyter shows it once, nothing piles up


@pytest.mark.parametrize("source", ["results", "stats"])
@pytest.mark.parametrize("kind", ["score", "latency", "cost", "failures"])
def test_bar_kinds_label_axes_and_show_each_model_once(results: pd.DataFrame, kind: str, source: str) -> None:
    data = results if source == "results" else summarize(results)
    ax = plot(data, kind).axes[0]
    assert ax.get_ylabel() == LABELS[kind]
    assert ax.get_title()
    # in the order the models were given, shortened to the last path segment
    assert _tick_texts(ax) == ["gpt-4o-mini", "claude-3.5-haiku", "smollm2-135m"]
    assert all(t.get_rotation() == 0 for t in ax.get_xticklabels())  # three short names fit upright


def test_latency_draws_one_box_per_model_from_fresh_rows(results: pd.DataFrame) -> None:
    ax = plot(results, "latency").axes[0]
    medians = [line for line in ax.lines if line.get_linestyle() == "-" and len(line.get_xdata()) == 2]
    assert len(ax.get_xticks()) == 3
    assert len(medians) >= 3


def test_failures_keep_models_without_failures(results: pd.DataFrame) -> None:
    ax = plot(results, "failures").axes[0]
    heights: dict[float, float] = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        heights[x] = heights.get(x, 0) + bar.get_height()
    assert heights == pytest.approx({0: 2 / 6, 1: 0, 2: 0})  # gpt-4o-mini (given first) failed 2 of 6
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["rate_limit", "timeout"]


def test_failure_rates_carry_wilson_intervals_and_counts(results: pd.DataFrame) -> None:
    ax = plot(results, "failures").axes[0]
    [bars] = _intervals(ax)
    assert bars[0] == pytest.approx(proportion_confint(2, 6, method="wilson"))
    assert bars[2] == pytest.approx(proportion_confint(0, 6, method="wilson"))
    assert [t.get_text() for t in ax.texts] == ["2/6", "0/6", "0/6"]


@pytest.mark.parametrize("source", ["results", "stats"])
def test_score_bars_carry_their_intervals_and_n(results: pd.DataFrame, source: str) -> None:
    stats = summarize(results)
    ax = plot(results if source == "results" else stats, "score").axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx(stats.loc[MODELS, "score_mean"].tolist())
    [bars] = _intervals(ax)
    for x, model in enumerate(MODELS):
        assert bars[x] == pytest.approx((stats.loc[model, "score_ci_low"], stats.loc[model, "score_ci_high"]))
    assert _n_labels(ax) == ["n=6", "n=6", "n=6"]  # prompts: gpt-4o-mini's two failures count as 0
    assert ax.get_title().startswith("Score (a failure scores 0)")  # a plain score of unknown origin


@pytest.mark.slow
def test_score_kind_needs_a_score_column(results: pd.DataFrame) -> None:
    unscored = results.drop(columns=["score"])
    with pytest.raises(ValueError, match="no score"):
        plot(unscored, "score")
    assert len(plot(unscored).axes) == 4  # the overview without a score panel


def test_latency_boxes_are_labelled_with_their_n(results: pd.DataFrame) -> None:
    ax = plot(results, "latency").axes[0]
    assert _n_labels(ax) == ["n=4", "n=6", "n=6"]  # ok calls, cache hits included (they carry the original latency)


def test_stats_latency_bars_carry_their_intervals_and_none_they_lack(results: pd.DataFrame) -> None:
    stats = summarize(results)
    ax = plot(stats, "latency").axes[0]
    [p50] = _intervals(ax)  # six calls give no 95 % interval of p95: none is drawn, not a zero-width one
    model = MODELS[1]  # claude-3.5-haiku, given second
    assert p50[1] == pytest.approx(
        (stats.loc[model, "latency_p50_s_ci_low"], stats.loc[model, "latency_p50_s_ci_high"])
    )
    assert stats["latency_p95_s_ci_low"].isna().all()
    assert _n_labels(ax) == ["n=4", "n=6", "n=6"]


def _points(ax: Axes) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_tradeoff_of_scored_priced_models_is_score_against_cost_one_point_per_model(results: pd.DataFrame) -> None:
    ax = plot(summarize(results), "tradeoff").axes[0]
    assert ax.get_xlabel() == "cost per 1k calls (USD)"
    assert ax.get_ylabel() == "mean score"
    assert len(_points(ax)) == 3
    names = sorted(t.get_text().split("\n")[0] for t in ax.texts)
    assert names == ["claude-3.5-haiku", "gpt-4o-mini", "smollm2-135m"]


def test_tradeoff_of_free_scored_models_is_score_against_latency_per_output_token(results: pd.DataFrame) -> None:
    free = results.assign(cost_usd=0.0, cost_saved_usd=0.0)
    ax = plot(free, "tradeoff").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("latency per output token (ms)", "mean score")
    per_token = 1000 / summarize(free)["output_tokens_per_s"]
    assert sorted(c.get_offsets()[0][0] for c in _points(ax)) == pytest.approx(sorted(per_token))
    assert ax.get_xlim()[0] == 0  # a spread of microseconds is not blown up to fill the panel


def test_tradeoff_without_token_counts_falls_back_to_latency(results: pd.DataFrame) -> None:
    ax = plot(results.assign(cost_usd=0.0, cost_saved_usd=0.0, output_tokens=None), "tradeoff").axes[0]
    assert ax.get_xlabel() == "latency p50 (s)" and ax.get_xlim()[0] == 0


def test_tradeoff_without_scores_is_cost_against_latency(results: pd.DataFrame) -> None:
    ax = plot(results.drop(columns=["score"]), "tradeoff").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("cost per 1k calls (USD)", "latency p50 (s)")


def test_a_model_failing_half_its_calls_is_hollow_and_says_so(results: pd.DataFrame) -> None:
    failing = results.copy()
    first = failing["model"] == MODELS[0]
    failing.loc[first & (failing["prompt_id"] < 3), ["error_type", "score"]] = ["timeout", math.nan]
    ax = plot(failing, "tradeoff").axes[0]
    label = next(t for t in ax.texts if t.get_text().startswith("gpt-4o-mini"))
    assert label.get_text() == "gpt-4o-mini\n83% failed"
    hollow = [c for c in _points(ax) if len(c.get_facecolors()) == 0 or c.get_facecolors()[0][3] == 0]
    assert len(hollow) == 1


def test_the_overview_leaves_out_panels_without_data(results: pd.DataFrame) -> None:
    free = results.assign(cost_usd=0.0, cost_saved_usd=0.0).drop(columns=["score"])
    titles = [ax.get_title() for ax in plot(free).axes]
    assert len(titles) == 2 and not any("Cost" in t for t in titles)  # failures and latency: no blank panels


def test_the_paired_panel_shows_every_pair_with_its_interval_and_verdict(results: pd.DataFrame) -> None:
    from opencode_lab.analysis.statistics import paired

    results.attrs["scorers"] = {"score": "contains_expected"}
    table = paired(results)
    ax = plot(results, "paired").axes[0]
    assert ax.get_title() == "Paired difference in score: contains_expected\n98.3 % interval, Bonferroni over 3 pairs"
    assert ax.get_xlabel() == "difference in points of score (a − b)"
    ends = sorted(
        (round(seg[0][0], 6), round(seg[1][0], 6))
        for c in ax.containers if isinstance(c, ErrorbarContainer) for seg in c.lines[2][0].get_segments()
    )  # fmt: skip
    expected = zip(table.ci_low, table.ci_high, strict=True)
    assert ends == sorted((round(100 * lo, 6), round(100 * hi, 6)) for lo, hi in expected)
    texts = {round(t.xy[1]): t.get_text() for t in ax.texts}  # top to bottom, in the models' order
    assert texts == {
        2: "gpt-4o-mini − claude-3.5-haiku (n=6)\nno detectable difference",
        1: "gpt-4o-mini − smollm2-135m (n=6)\nno detectable difference",
        0: "claude-3.5-haiku − smollm2-135m (n=6)\nno detectable difference",
    }


def test_the_overview_shows_failures_only_when_something_failed(results: pd.DataFrame) -> None:
    titles = [ax.get_title() for ax in plot(results).axes]
    assert any(t.startswith("Failure rate") for t in titles) and any(t.startswith("Paired") for t in titles)
    clean = results[results["error_type"].isna()]
    assert not any(ax.get_title().startswith("Failure rate") for ax in plot(clean).axes)


def test_the_score_panel_names_the_scorer(results: pd.DataFrame) -> None:
    graded = results.drop(columns=["score"]).assign(score_exact=results["score"])
    graded.attrs["scorers"] = {"score_exact": "exact"}
    ax = plot(graded, "score").axes[0]
    assert ax.get_title().startswith("Score: exact")
    assert plot(summarize(graded), "score").axes[0].get_title().startswith("Score: exact")  # stats keep the name


def test_a_model_keeps_its_colour_across_figures(results: pd.DataFrame) -> None:
    def bar_colours(frame: pd.DataFrame) -> dict[str, tuple]:
        ax = plot(frame, "score").axes[0]
        return {t.get_text(): bar.get_facecolor() for t, bar in zip(ax.get_xticklabels(), ax.patches, strict=False)}

    everyone = bar_colours(results)
    two = bar_colours(results[results["model"] != MODELS[2]])
    assert everyone["gpt-4o-mini"] == two["gpt-4o-mini"] and everyone["claude-3.5-haiku"] == two["claude-3.5-haiku"]
    assert len(set(everyone.values())) == 3


def test_unknown_costs_are_marked_not_drawn_as_zero(results: pd.DataFrame) -> None:
    results.loc[results["model"] == MODELS[2], "cost_usd"] = math.nan
    cost_ax = plot(results, "cost").axes[0]
    assert [t.get_text() for t in cost_ax.texts] == ["n/a"]
    trade_ax = plot(results, "tradeoff").axes[0]
    assert len(_points(trade_ax)) == 2
    assert any("smollm2-135m" in t.get_text() and "not shown" in t.get_text() for t in trade_ax.texts)


@pytest.mark.slow
def test_ten_models_tick_labels_do_not_overlap() -> None:
    models = [f"openrouter/vendor{i}/a-fairly-long-model-name-{i}" for i in range(10)]
    data = _frame(models, prompts=3)
    for fig in (plot(data), plot(data, "cost"), plot(summarize(data), "latency")):
        _png(fig)
        tick_axes = [ax for ax in fig.axes if ax.get_xlabel() != "cost per 1k calls (USD)"]
        for ax in tick_axes:
            assert len(ax.get_xticks()) == 10
            _assert_labels_apart(ax)


def test_short_names_disambiguate_clashes() -> None:
    assert _short_names(["openrouter/openai/gpt-4o-mini"]) == ["gpt-4o-mini"]
    assert _short_names(["a/x/m", "b/x/m", "c/n"]) == ["a/x/m", "b/x/m", "n"]
    assert _short_names(["openai/m", "m"]) == ["openai/m", "m"]


def test_draws_into_a_given_axes(results: pd.DataFrame) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    assert plot(results, "cost", ax=right) is fig
    assert right.get_ylabel() == "cost (USD)" and not left.has_data()
    assert plt.fignum_exists(fig.number)  # the caller's figure stays open
    with pytest.raises(ValueError, match="overview"):
        plot(results, "overview", ax=left)


def test_bad_kind_lists_the_valid_ones(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="latency, cost, failures, tradeoff"):
        plot(results, "pie")


def test_empty_or_wrong_frames_are_refused(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        plot(results.iloc[:0])
    with pytest.raises(ValueError, match="results frame"):
        plot(pd.DataFrame({"x": [1]}))


def test_plot_traffic_stacks_outcomes_per_deployment() -> None:
    attempts = pd.DataFrame(
        {
            "served_by": ["openrouter/m", "openrouter/m", "vllm/m", "vllm/m", "vllm/m"],
            "status": ["ok", "error", "ok", "error", "error"],
            "error_type": [None, "rate_limit", None, "timeout", "timeout"],
        }
    )
    fig = plot_traffic(attempts)
    _png(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "attempts"
    assert _tick_texts(ax) == ["openrouter/m", "vllm/m"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ok", "rate_limit", "timeout"]
    assert sum(bar.get_height() for bar in ax.patches) == 5
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_traffic(attempts.iloc[:0])


def test_ratings_are_drawn_best_on_top_with_their_intervals(tmp_path) -> None:
    from opencode_lab import ratings

    battles = pd.DataFrame({
        "model_a": ["x", "x", "y", "x", "z", "z"], "model_b": ["y", "z", "z", "y", "x", "y"],
        "winner": ["model_a"] * 4 + ["model_a", "model_a"],  # every model won and lost once at least
    })  # fmt: skip
    table = ratings(battles)
    fig = plot(table, "ratings")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table.sort_values("rating").index)
    assert [t.get_text() for t in ax.texts] == [f"n={n}" for n in table.sort_values("rating")["battles"]]
    fig.savefig(tmp_path / "ratings.png")


def test_a_rating_without_an_estimable_interval_is_drawn_as_such() -> None:
    from opencode_lab import ratings

    table = ratings(pd.DataFrame({"model_a": ["x"] * 5, "model_b": ["y"] * 5, "winner": ["x"] * 5}))
    ax = plot(table, "ratings").axes[0]
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]  # no zero-width bar
    assert [t.get_text() for t in ax.texts] == ["n=5, interval not estimable"] * 2


def test_ratings_need_a_ratings_frame() -> None:
    with pytest.raises(ValueError, match=r"frame of opencode_lab\.ratings"):
        plot(pd.DataFrame({"model": ["a"]}), "ratings")


def test_a_models_colour_follows_its_name_not_the_order_models_appear_in(monkeypatch) -> None:
    from opencode_lab.analysis import plots

    names = ("local/smollm2-135m", "local/gemma-3-270m")
    monkeypatch.setattr(plots, "_COLOURS", {})
    first = [plots.model_colour(m) for m in names]
    monkeypatch.setattr(plots, "_COLOURS", {})
    second = [plots.model_colour(m) for m in reversed(names)][::-1]
    assert first == second and first[0] != first[1]
