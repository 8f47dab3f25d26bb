"""metrics: results/attempt frames and the per-model statistics, checked against hand-computed numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from opencode_lab.analysis.metrics import summarize
from opencode_lab.core.errors import InvalidRequestError
from opencode_lab.core.schema import ATTEMPT_COLUMNS, RESULT_COLUMNS, attempts_frame, results_frame

NAN = math.nan


def _row(model: str, **values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "run_id": "r-1", "prompt_id": 0, "prompt": "p", "model": model, "served_by": model, "sample": 0,
        "response": "ok", "finish_reason": "stop", "latency_s": NAN, "ttft_s": NAN, "input_tokens": None,
        "output_tokens": None, "cost_usd": NAN, "cost_source": "catalog", "cost_saved_usd": 0.0, "cached": False,
        "attempts": 1, "error_type": None, "error": None,
    }  # fmt: skip
    base.update(values)
    if base["error_type"] is not None:
        base.update(response=None, error=f"{base['error_type']} happened")
    return base


@pytest.fixture
def results() -> pd.DataFrame:
    """Three models: a (mixed, one cache hit), b (failure tie, unknown cost), c (all failed, one billed)."""
    rows = [
        _row("m/a", latency_s=1.0, ttft_s=0.2, input_tokens=10, output_tokens=20, cost_usd=0.002),
        _row("m/a", latency_s=3.0, ttft_s=0.4, input_tokens=10, output_tokens=40, cost_usd=NAN, cost_source="unknown"),
        _row("m/a", latency_s=0.01, input_tokens=10, output_tokens=30, cost_usd=0.0, cost_saved_usd=0.003, cached=True),
        _row("m/a", latency_s=5.0, error_type="timeout", attempts=3),
        _row("m/b", latency_s=2.0, input_tokens=5, output_tokens=10, cost_usd=NAN),
        _row("m/b", latency_s=0.3, error_type="rate_limit", attempts=3),
        _row("m/b", latency_s=0.1, error_type="timeout", attempts=3),
        _row("m/c", latency_s=9.0, error_type="stream_interrupted", cost_usd=0.001),
        _row("m/c", latency_s=0.2, error_type="server_error", cost_usd=0.0),
    ]
    for i, row in enumerate(rows):
        row["prompt_id"] = i
    return results_frame(rows)


def test_summarize_columns_and_index(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert list(stats.columns) == [
        "calls", "ok", "failed", "failure_rate", "cache_hit_rate", "latency_p50_s", "latency_p95_s", "ttft_p50_s",
        "output_tokens_per_s", "input_tokens", "output_tokens", "cost_usd", "cost_saved_usd",
        "cost_per_1k_calls_usd", "top_error",
    ]  # fmt: skip
    assert list(stats.index) == ["m/a", "m/b", "m/c"]
    assert stats.index.name == "model"


def test_summarize_counts_and_rates(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats[["calls", "ok", "failed"]].to_dict("index") == {
        "m/a": {"calls": 4, "ok": 3, "failed": 1},
        "m/b": {"calls": 3, "ok": 1, "failed": 2},
        "m/c": {"calls": 2, "ok": 0, "failed": 2},
    }
    assert stats["failure_rate"].tolist() == pytest.approx([0.25, 2 / 3, 1.0])
    assert stats.loc["m/a", "cache_hit_rate"] == pytest.approx(1 / 3)
    assert stats.loc["m/b", "cache_hit_rate"] == 0.0
    assert math.isnan(stats.loc["m/c", "cache_hit_rate"])  # no successful row: no rate


def test_latency_percentiles_skip_cache_hits_and_failures(results: pd.DataFrame) -> None:
    stats = summarize(results)
    # m/a: fresh ok latencies [1.0, 3.0] -> p50 2.0, p95 1.0 + 0.95 * 2.0; the 0.01 s hit and 5 s timeout ignored
    assert stats.loc["m/a", "latency_p50_s"] == pytest.approx(2.0)
    assert stats.loc["m/a", "latency_p95_s"] == pytest.approx(2.9)
    assert stats.loc["m/a", "ttft_p50_s"] == pytest.approx(0.3)
    assert stats.loc["m/b", "latency_p95_s"] == pytest.approx(2.0)
    assert math.isnan(stats.loc["m/b", "ttft_p50_s"])
    assert math.isnan(stats.loc["m/c", "latency_p50_s"])


def test_latency_p95_interpolates_linearly() -> None:
    rows = [_row("m", latency_s=float(i), output_tokens=i) for i in range(1, 11)]
    stats = summarize(results_frame(rows))
    assert stats.loc["m", "latency_p50_s"] == pytest.approx(5.5)
    assert stats.loc["m", "latency_p95_s"] == pytest.approx(9.55)


def test_tokens_and_throughput(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats.loc["m/a", "input_tokens"] == 30  # ok rows, cache hit included
    assert stats.loc["m/a", "output_tokens"] == 90
    assert stats.loc["m/a", "output_tokens_per_s"] == pytest.approx(60 / 4.0)  # fresh rows only
    assert stats.loc["m/b", "output_tokens_per_s"] == pytest.approx(5.0)
    assert stats.loc["m/c", "output_tokens"] == 0
    assert math.isnan(stats.loc["m/c", "output_tokens_per_s"])
    assert str(stats["input_tokens"].dtype) == "Int64"


def test_costs_sum_known_values_and_stay_nan_when_unknown(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats.loc["m/a", "cost_usd"] == pytest.approx(0.002)  # NaN row skipped, hit costs 0
    assert stats.loc["m/a", "cost_saved_usd"] == pytest.approx(0.003)
    assert stats.loc["m/a", "cost_per_1k_calls_usd"] == pytest.approx(0.002 / 4 * 1000)
    assert math.isnan(stats.loc["m/b", "cost_usd"])  # its only success has an unknown price
    assert math.isnan(stats.loc["m/b", "cost_per_1k_calls_usd"])
    assert stats.loc["m/b", "cost_saved_usd"] == 0.0
    assert stats.loc["m/c", "cost_usd"] == pytest.approx(0.001)  # a billed failure counts


def test_top_error_is_most_common_then_alphabetical(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats.loc["m/a", "top_error"] == "timeout"
    assert stats.loc["m/b", "top_error"] == "rate_limit"  # 1-1 tie with timeout
    assert stats.loc["m/c", "top_error"] == "server_error"
    clean = summarize(results[results["error_type"].isna()])
    assert clean.loc["m/a", "top_error"] is None


def test_score_mean_only_with_a_score_column(results: pd.DataFrame) -> None:
    assert "score_mean" not in summarize(results).columns
    scored = results.assign(score=[1.0, 0.0, 0.5, None, 1.0, None, None, None, None])
    stats = summarize(scored)
    assert list(stats.columns)[-2:] == ["score_mean", "top_error"]
    assert stats.loc["m/a", "score_mean"] == pytest.approx(0.5)
    assert math.isnan(stats.loc["m/c", "score_mean"])


def test_group_by_another_column(results: pd.DataFrame) -> None:
    results = results.assign(served_by=["x", "x", "y", "y", "x", "x", "x", "y", "y"])
    stats = summarize(results, by="served_by")
    assert stats.index.name == "served_by"
    assert stats["calls"].to_dict() == {"x": 5, "y": 4}
    both = summarize(results, by=["model", "cached"])
    assert both.index.names == ["model", "cached"]
    assert both.loc[("m/a", True), "calls"] == 1
    assert math.isnan(both.loc[("m/a", True), "latency_p50_s"])


def test_missing_columns_are_named(results: pd.DataFrame) -> None:
    with pytest.raises(InvalidRequestError, match="cost_usd"):
        summarize(results.drop(columns=["cost_usd"]))
    with pytest.raises(ValueError, match="'nope'"):
        summarize(results, by="nope")


def test_empty_frame_gives_empty_stats() -> None:
    stats = summarize(results_frame([]))
    assert stats.empty
    assert list(stats.columns)[:3] == ["calls", "ok", "failed"]
    assert stats.columns[-1] == "top_error"


def test_results_frame_orders_columns_and_fixes_dtypes() -> None:
    df = results_frame([{"model": "m", "cached": None, "input_tokens": 3.0, "tag": "x", "latency_s": "1.5"}])
    assert tuple(df.columns) == (*RESULT_COLUMNS, "tag")
    assert df["cached"].dtype == bool and not df.loc[0, "cached"]
    assert str(df["input_tokens"].dtype) == "Int64" and df.loc[0, "input_tokens"] == 3
    assert df["latency_s"].dtype == "float64" and df.loc[0, "latency_s"] == 1.5
    assert math.isnan(df.loc[0, "cost_usd"])


def test_results_frame_keeps_string_prompt_ids() -> None:
    df = results_frame([{"prompt_id": "q-1"}, {"prompt_id": "q-2"}])
    assert df["prompt_id"].tolist() == ["q-1", "q-2"]


def test_attempts_frame() -> None:
    df = attempts_frame([{"run_id": "r", "attempt": 2, "status": "error", "http_status": 429, "timestamp": 1.5}])
    assert tuple(df.columns) == ATTEMPT_COLUMNS
    assert df.loc[0, "http_status"] == 429 and str(df["http_status"].dtype) == "Int64"
    assert attempts_frame([]).empty
