"""The display layer: every toolkit table shows the same way in a notebook, a terminal and the CLI, while the
returned frame keeps its numbers."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from opencode_lab.analysis.metrics import summarize
from opencode_lab.core.schema import TABLE, results_frame
from opencode_lab.frontends.tables import (
    MAX_COLUMNS,
    MISSING,
    compact_stats,
    dollars,
    number,
    percent,
    register_formatters,
    seconds,
    short_names,
    table,
)


def _results(models: tuple[str, ...] = ("vendor/alpha", "vendor/beta"), scorers: int = 1) -> pd.DataFrame:
    rows = []
    for i in range(8):
        for k, model in enumerate(models):
            failed = i == 0 and k == 1
            row = {
                "prompt": f"question {i}", "model": model, "response": None if failed else f"answer {i}",
                "error_type": "timeout" if failed else None, "latency_s": 0.1 + 0.01 * i, "cost_usd": 0.0,
                "prompt_id": i, "sample": 0, "run_id": "r", "output_tokens": 10, "input_tokens": 5,
            }  # fmt: skip
            for s in range(scorers):
                row["score" if s == 0 else f"score_s{s}"] = math.nan if failed else float((i + k + s) % 2)
            rows.append(row)
    return results_frame(rows)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.000123, "0.000123"), (0.0, "0"), (5.551115e-17, "0"), (0.999999, "1.00"), (99.96, "100"),
        (1234.5, "1,230"), (12.345, "12.3"), (-0.5, "-0.500"), (2.5e-9, "2.50e-09"), (3e7, "3.00e+07"),
        (math.nan, MISSING), (None, MISSING), (pd.NA, MISSING), (math.inf, "∞"),
    ],
)  # fmt: skip
def test_numbers_show_three_significant_figures_and_one_spelling_of_missing(value: object, shown: str) -> None:
    assert number(value) == shown  # type: ignore[arg-type]


def test_rates_are_percentages_seconds_have_a_unit_and_costs_are_dollars_or_free() -> None:
    assert percent(0.1667) == "16.7 %" and percent(0.0) == "0 %"
    assert seconds(0.31234) == "0.312 s"
    assert dollars(0.0) == "free" and dollars(0.0, free=False) == "$0" and dollars(0.00123) == "$0.00123"
    assert dollars(math.nan) == MISSING


def test_model_names_lose_their_router_prefix_only_when_that_stays_unambiguous() -> None:
    assert short_names(["openrouter/meta/llama", "openrouter/acme/llama"]) == {
        "openrouter/meta/llama": "meta/llama", "openrouter/acme/llama": "acme/llama"}  # fmt: skip
    assert short_names(["a/x/m", "b/x/m"]) == {"a/x/m": "a/x/m", "b/x/m": "b/x/m"}
    assert short_names(["f/x"]) == {"f/x": "f/x"}


def test_a_stats_frame_shows_compactly_and_keeps_every_number() -> None:
    stats = summarize(_results())
    assert stats.attrs[TABLE] == "stats" and len(stats.columns) > 25
    shown = table(stats)
    assert len(shown.header) <= MAX_COLUMNS
    assert shown.header[:2] == ["score", "failed"] and "latency p50" in shown.header and "cost" in shown.header
    assert shown.rows[1][1] == "1/8 (12.5 %)"
    assert "df.oc.table('all')" in shown.note
    assert stats["failure_rate"].dtype == np.float64  # the frame itself is untouched
    every = table(stats, "all")
    assert every.header == list(stats.columns)
    assert every.rows[0][every.header.index("failure_rate_ci_low")] == "0 %"  # not 5.551115e-17


def test_the_compact_view_keeps_twelve_columns_with_many_scorers_and_names_the_rest() -> None:
    stats = summarize(_results(scorers=8))
    shown = compact_stats(stats)
    assert len(shown.header) == MAX_COLUMNS
    assert "3 more scorer(s): score_s5, score_s6, score_s7" in shown.note


def test_a_chosen_list_of_columns_is_one_option_away_and_a_typo_is_named() -> None:
    stats = summarize(_results())
    assert table(stats, ["calls", "latency_p50_s"]).header == ["calls", "latency_p50_s"]
    with pytest.raises(ValueError, match="did you mean 'latency_p50_s'"):
        table(stats, ["latency_p50"])


def test_a_results_frame_hides_tool_columns_no_row_used_and_says_so() -> None:
    frame = _results()
    assert frame["tool_call_valid"].isna().all()  # no tools offered: unknown, not False
    shown = table(frame)
    assert "tool_calls" not in shown.header and "tool_call_valid" not in shown.header
    assert "2 empty tool column(s) hidden" in shown.note
    assert "tool_call_valid" in table(frame, "all").header


def test_text_is_left_aligned_and_numbers_right_aligned_in_a_terminal() -> None:
    frame = pd.DataFrame({"name": ["a", "longer"], "latency_s": [0.5, 12.34]}).rename_axis("model")
    frame.attrs[TABLE] = "x"
    assert table(frame).to_text().splitlines() == [
        "model  name    latency_s",
        "0      a         0.500 s",
        "1      longer     12.3 s",
    ]


def test_datetimes_show_as_utc_times_not_nanoseconds() -> None:
    frame = pd.DataFrame({"created_at": pd.to_datetime([1_764_672_879.0], unit="s", utc=True)})
    frame.attrs[TABLE] = "runs"
    assert table(frame).rows[0] == ["2025-12-02 10:54:39 UTC"]


def test_html_escapes_text_and_marks_numbers_for_right_alignment() -> None:
    frame = pd.DataFrame({"response": ["<script>x</script>"], "cost_usd": [0.5]})
    frame.attrs[TABLE] = "results"
    html = table(frame).to_html()
    assert "<script>x" not in html and "&lt;script&gt;" in html
    assert '<td class="n">$0.500</td>' in html and '<td class="t">' in html


def test_ipython_shows_toolkit_frames_through_the_layer_and_other_frames_as_pandas_does() -> None:
    shell = InteractiveShell.instance()
    try:
        register_formatters(shell)
        stats = summarize(_results())
        data, _ = shell.display_formatter.format(stats)
        assert 'class="oc-table"' in data["text/html"] and "compact view" in data["text/plain"]
        plain = pd.DataFrame({"a": [1.123456]})
        data, _ = shell.display_formatter.format(plain)
        assert data["text/html"] == plain._repr_html_() and data["text/plain"] == repr(plain)
    finally:
        InteractiveShell.clear_instance()


def test_the_models_table_shows_free_prices_and_whole_descriptions(make_lab) -> None:
    frame = make_lab("").models("local")
    shown = table(frame)
    prices = shown.header.index("input_price_per_mtok")
    assert {row[prices] for row in shown.rows} == {"free"}
    page = shown.to_html()
    assert all(html.escape(str(d)) in page for d in frame["description"])  # whole, never "pr…"
