"""metrics: results/attempt frames and the per-model statistics, checked against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

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
    """Three models: a (one cache hit, one unknown cost), b (failure tie, no usage on one row), c (all failed)."""
    rows = [
        _row("m/a", latency_s=1.0, ttft_s=0.2, input_tokens=10, output_tokens=20, cost_usd=0.002),
        _row("m/a", latency_s=3.0, ttft_s=0.4, input_tokens=10, output_tokens=40, cost_usd=NAN, cost_source="unknown"),
        # a cache hit reports the original call's measurements; it cost nothing now
        _row("m/a", latency_s=2.0, input_tokens=10, output_tokens=30, cost_usd=0.0, cost_saved_usd=0.003, cached=True),
        _row("m/a", latency_s=5.0, error_type="timeout", attempts=3),
        _row("m/b", latency_s=2.0, input_tokens=5, output_tokens=10, cost_usd=0.001),
        _row("m/b", latency_s=4.0, cost_usd=0.001),  # the server sent no usage
        _row("m/b", latency_s=0.3, error_type="rate_limit", attempts=3),
        _row("m/b", latency_s=0.1, error_type="timeout", attempts=3),
        _row("m/c", latency_s=9.0, error_type="stream_interrupted", cost_usd=0.001),
        _row("m/c", latency_s=0.2, error_type="server_error", cost_usd=0.0),
    ]
    for i, row in enumerate(rows):
        row["prompt_id"] = i
    return results_frame(rows)


def _scored(n_prompts: int, scores: dict[str, list[float]], samples: int = 1, **columns: list[object]) -> pd.DataFrame:
    """Rows of successful calls: each model answers prompt i (``samples`` times) with scores[model][i]."""
    rows = []
    for model, values in scores.items():
        for prompt in range(n_prompts):
            for sample in range(samples):
                extra = {k: v[prompt] for k, v in columns.items()}
                rows.append(
                    _row(model, prompt_id=prompt, prompt=f"q{prompt}", sample=sample, latency_s=1.0 + prompt % 7,
                         score=values[prompt], **extra)
                )  # fmt: skip
    return results_frame(rows)


def test_summarize_columns_and_index(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert list(stats.columns) == [
        "calls", "ok", "failed", "failure_rate", "failure_rate_ci_low", "failure_rate_ci_high", "cache_hit_rate",
        "latency_p50_s", "latency_p50_s_ci_low", "latency_p50_s_ci_high",
        "latency_p95_s", "latency_p95_s_ci_low", "latency_p95_s_ci_high", "n_latency",
        "ttft_p50_s", "n_ttft", "output_tokens_per_s", "n_tokens_per_s", "input_tokens", "output_tokens", "n_tokens",
        "reasoning_tokens", "n_reasoning", "cost_usd", "cost_unknown_calls", "cost_saved_usd", "cache_discount_usd",
        "cost_per_1k_calls_usd", "top_error", "note",
    ]  # fmt: skip
    assert list(stats.index) == ["m/a", "m/b", "m/c"]
    assert stats.index.name == "model"


def test_summarize_counts_and_rates(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats[["calls", "ok", "failed"]].to_dict("index") == {
        "m/a": {"calls": 4, "ok": 3, "failed": 1},
        "m/b": {"calls": 4, "ok": 2, "failed": 2},
        "m/c": {"calls": 2, "ok": 0, "failed": 2},
    }
    assert stats["failure_rate"].tolist() == pytest.approx([0.25, 0.5, 1.0])
    assert stats.loc["m/a", "cache_hit_rate"] == pytest.approx(1 / 3)
    assert stats.loc["m/b", "cache_hit_rate"] == 0.0
    assert math.isnan(stats.loc["m/c", "cache_hit_rate"])  # no successful row: no rate


def test_failure_rate_interval_is_wilson(results: pd.DataFrame) -> None:
    stats = summarize(results)
    for model, failed, calls in (("m/a", 1, 4), ("m/b", 2, 4), ("m/c", 2, 2)):
        interval = (stats.loc[model, "failure_rate_ci_low"], stats.loc[model, "failure_rate_ci_high"])
        assert interval == pytest.approx(proportion_confint(failed, calls, method="wilson"))


def test_latency_percentiles_use_ok_rows_and_the_cache_hits_original_latency(results: pd.DataFrame) -> None:
    stats = summarize(results)
    # m/a: ok latencies [1.0, 3.0, 2.0 (the hit's original call)] -> p50 2.0, p95 2.0 + 0.9 x 1.0; the timeout ignored
    assert stats.loc["m/a", "latency_p50_s"] == pytest.approx(2.0)
    assert stats.loc["m/a", "latency_p95_s"] == pytest.approx(2.9)
    assert stats.loc["m/a", "n_latency"] == 3
    assert stats.loc["m/b", "latency_p95_s"] == pytest.approx(3.9)
    assert math.isnan(stats.loc["m/c", "latency_p50_s"]) and stats.loc["m/c", "n_latency"] == 0


def test_latency_p95_interpolates_linearly() -> None:
    rows = [_row("m", latency_s=float(i), output_tokens=i) for i in range(1, 11)]
    stats = summarize(results_frame(rows))
    assert stats.loc["m", "latency_p50_s"] == pytest.approx(5.5)
    assert stats.loc["m", "latency_p95_s"] == pytest.approx(9.55)


def test_latency_percentiles_carry_order_statistic_intervals() -> None:
    latencies = np.random.default_rng(0).lognormal(0, 0.5, size=200)
    frame = results_frame([_row("m", prompt_id=i, latency_s=x) for i, x in enumerate(latencies)])
    stats = summarize(frame)
    for q in (0.5, 0.95):
        name = f"latency_p{round(q * 100)}_s"
        theirs = sps.quantile_test(latencies, q=0, p=q).confidence_interval(0.95)
        assert (stats.loc["m", f"{name}_ci_low"], stats.loc["m", f"{name}_ci_high"]) == (theirs.low, theirs.high)
    assert stats.loc["m", "note"] == ""


def test_too_few_calls_for_a_latency_interval_say_so() -> None:
    frame = results_frame([_row("m", prompt_id=i, latency_s=1.0 + i) for i in range(10)])
    stats = summarize(frame)
    assert stats.loc["m", "latency_p50_s_ci_low"] == 2.0  # the 2nd and 9th of 10 values
    assert math.isnan(stats.loc["m", "latency_p95_s_ci_low"]) and math.isnan(stats.loc["m", "latency_p95_s_ci_high"])
    assert stats.loc["m", "note"] == "no 95 % interval of latency p95: needs 72 values, has 10"


def test_one_latency_gives_no_interval(results: pd.DataFrame) -> None:
    stats = summarize(results[results["model"] == "m/b"].iloc[:1])
    assert stats.loc["m/b", "latency_p50_s"] == pytest.approx(2.0)
    assert math.isnan(stats.loc["m/b", "latency_p50_s_ci_low"])


def test_ttft_only_from_rows_that_streamed(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats.loc["m/a", "ttft_p50_s"] == pytest.approx(0.3)
    assert stats.loc["m/a", "n_ttft"] == 2
    assert math.isnan(stats.loc["m/b", "ttft_p50_s"]) and stats.loc["m/b", "n_ttft"] == 0


def test_tokens_per_second_only_from_rows_with_both_numbers(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats.loc["m/a", "output_tokens_per_s"] == pytest.approx(90 / 6.0)  # the hit's original call included
    assert stats.loc["m/a", "n_tokens_per_s"] == 3
    assert stats.loc["m/b", "output_tokens_per_s"] == pytest.approx(10 / 2.0)  # the 4 s row has no token count
    assert stats.loc["m/b", "n_tokens_per_s"] == 1
    assert math.isnan(stats.loc["m/c", "output_tokens_per_s"])


def test_token_sums_say_how_many_rows_reported_and_are_na_when_none_did(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert (stats.loc["m/a", "input_tokens"], stats.loc["m/a", "output_tokens"], stats.loc["m/a", "n_tokens"]) == (
        30, 90, 3,
    )  # fmt: skip
    assert (stats.loc["m/b", "output_tokens"], stats.loc["m/b", "n_tokens"]) == (10, 1)  # 1 of 2 ok rows
    assert stats.loc["m/c", "output_tokens"] is pd.NA and stats.loc["m/c", "n_tokens"] == 0  # unknown, not 0
    assert str(stats["input_tokens"].dtype) == "Int64"


def test_cost_is_nan_and_counted_when_any_successful_rows_cost_is_unknown(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert math.isnan(stats.loc["m/a", "cost_usd"])  # 0.002 + unknown is unknown
    assert stats.loc["m/a", "cost_unknown_calls"] == 1
    assert math.isnan(stats.loc["m/a", "cost_per_1k_calls_usd"])
    assert stats.loc["m/a", "cost_saved_usd"] == pytest.approx(0.003)
    assert stats.loc["m/b", "cost_usd"] == pytest.approx(0.002) and stats.loc["m/b", "cost_unknown_calls"] == 0
    assert stats.loc["m/b", "cost_per_1k_calls_usd"] == pytest.approx(0.002 / 4 * 1000)
    assert stats.loc["m/b", "cost_saved_usd"] == 0.0
    assert stats.loc["m/c", "cost_usd"] == pytest.approx(0.001)  # a billed failure counts


def test_cost_sums_known_costs_of_successes_and_billed_failures(results: pd.DataFrame) -> None:
    known = results[results["cost_source"] != "unknown"]
    stats = summarize(known)
    assert stats.loc["m/a", "cost_usd"] == pytest.approx(0.002)  # the hit costs 0
    assert stats.loc["m/a", "cost_unknown_calls"] == 0


def test_top_error_is_most_common_then_alphabetical(results: pd.DataFrame) -> None:
    stats = summarize(results)
    assert stats.loc["m/a", "top_error"] == "timeout"
    assert stats.loc["m/b", "top_error"] == "rate_limit"  # 1-1 tie with timeout
    assert stats.loc["m/c", "top_error"] == "server_error"
    clean = summarize(results[results["error_type"].isna()])
    assert clean.loc["m/a", "top_error"] is None


def test_score_columns_only_with_a_score_column(results: pd.DataFrame) -> None:
    assert not [c for c in summarize(results).columns if "score" in c]
    scored = results.assign(score=[1.0, 0.0, 0.5, None, 1.0, 0.0, None, None, None, None])
    stats = summarize(scored)
    assert list(stats.columns)[3:9] == [
        "score_mean", "score_ci_low", "score_ci_high", "n_score", "n_score_prompts", "n_score_lost",
    ]  # fmt: skip
    assert stats.loc["m/a", "score_mean"] == pytest.approx(0.375)  # the timeout counts as 0: (1 + 0 + 0.5 + 0) / 4
    assert stats.loc["m/a", "n_score"] == 4
    assert summarize(scored, failures="drop").loc["m/a", "score_mean"] == pytest.approx(0.5)
    assert stats.loc["m/c", "score_mean"] == 0 and stats.loc["m/c", "n_score"] == 2  # both calls failed
    assert math.isnan(summarize(scored, failures="drop").loc["m/c", "score_mean"])


def test_score_of_0_1_answers_has_the_wilson_interval() -> None:
    stats = summarize(_scored(50, {"m": [1.0] * 31 + [0.0] * 19}))
    assert stats.loc["m", "score_mean"] == pytest.approx(0.62)
    interval = (stats.loc["m", "score_ci_low"], stats.loc["m", "score_ci_high"])
    assert interval == pytest.approx(proportion_confint(31, 50, method="wilson"))


def test_continuous_scores_are_averaged_per_prompt_first() -> None:
    values = np.random.default_rng(1).uniform(size=(30, 3))  # 30 prompts x 3 samples
    rows = [_row("m", prompt_id=p, prompt=f"q{p}", sample=s, score=values[p, s]) for p in range(30) for s in range(3)]
    stats = summarize(results_frame(rows))
    per_prompt = values.mean(axis=1)
    assert stats.loc["m", "score_mean"] == pytest.approx(per_prompt.mean())
    interval = (stats.loc["m", "score_ci_low"], stats.loc["m", "score_ci_high"])
    assert interval == pytest.approx(DescrStatsW(per_prompt).tconfint_mean())
    assert stats.loc["m", "n_score"] == 90


def test_every_numeric_score_column_gets_its_interval() -> None:
    frame = _scored(20, {"m": [float(i % 2) for i in range(20)]}, score_length=[i / 20 for i in range(20)])
    frame["score_note"] = "text is not a score"
    stats = summarize(frame)
    assert {"score_length_mean", "score_length_ci_low", "score_length_ci_high", "n_score_length"} <= set(stats.columns)
    assert not [c for c in stats.columns if "score_note" in c]
    assert stats.loc["m", "score_length_mean"] == pytest.approx(0.475)
    interval = (stats.loc["m", "score_length_ci_low"], stats.loc["m", "score_length_ci_high"])
    assert interval == pytest.approx(DescrStatsW([i / 20 for i in range(20)]).tconfint_mean())


def test_cluster_column_gives_cluster_robust_intervals() -> None:
    rng = np.random.default_rng(2)
    sources = np.repeat(np.arange(8), 5)
    values = (0.5 + 0.1 * rng.normal(size=40) + 0.2 * rng.normal(size=8)[sources]).tolist()
    frame = _scored(40, {"m": values}, source=sources.tolist())
    alone, grouped = summarize(frame), summarize(frame, cluster="source")
    fit = OLS(np.array(values), np.ones(40)).fit(cov_type="cluster", cov_kwds={"groups": sources})
    half = sps.t.ppf(0.975, 7) * float(fit.bse[0])
    interval = (grouped.loc["m", "score_ci_low"], grouped.loc["m", "score_ci_high"])
    assert interval == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert grouped.loc["m", "score_mean"] == pytest.approx(alone.loc["m", "score_mean"])
    width = grouped.loc["m", "score_ci_high"] - grouped.loc["m", "score_ci_low"]
    assert width > 1.5 * (alone.loc["m", "score_ci_high"] - alone.loc["m", "score_ci_low"])
    with pytest.raises(InvalidRequestError, match="'passage'"):
        summarize(frame, cluster="passage")


def _reversal() -> pd.DataFrame:
    """b fails 15 of 40 prompts (schema_mismatch), exactly those it would get wrong; a is right on 30."""
    rows = []
    for i in range(40):
        rows.append(_row("a", prompt_id=i, latency_s=1.0, score=float(i < 15 or i >= 25)))
        rows.append(_row("b", prompt_id=i, latency_s=1.0, error_type="schema_mismatch") if i < 15 else
                    _row("b", prompt_id=i, latency_s=1.0, score=1.0))  # fmt: skip
    return results_frame(rows)


def test_a_failure_counts_as_a_wrong_answer_by_default() -> None:
    stats = summarize(_reversal())
    b = stats.loc["b"]
    assert (b["score_mean"], b["n_score"], b["n_score_prompts"], b["n_score_lost"]) == (0.625, 40, 40, 0)
    assert (b["score_ci_low"], b["score_ci_high"]) == pytest.approx(proportion_confint(25, 40, method="wilson"))
    assert b["note"] == "score counts 15 failed call(s) as 0; no 95 % interval of latency p95: needs 72 values, has 25"
    assert stats.loc["a", "score_mean"] == 0.75 and "score" not in stats.loc["a", "note"]
    assert stats.attrs["failures"] == "count"


def test_failures_drop_scores_what_was_answered_and_says_what_was_lost() -> None:
    b = summarize(_reversal(), failures="drop").loc["b"]
    assert (b["score_mean"], b["n_score"], b["n_score_prompts"], b["n_score_lost"]) == (1.0, 25, 25, 15)
    assert (b["score_ci_low"], b["score_ci_high"]) == pytest.approx(proportion_confint(25, 25, method="wilson"))
    assert b["note"].startswith("score on 25 of the 40 prompts, 15 lost to failures; no 95 % interval")
    with pytest.raises(InvalidRequestError, match="failures must be"):
        summarize(_reversal(), failures="ignore")


def test_models_asked_different_prompts_are_flagged() -> None:
    frame = _scored(20, {"m/a": [1.0] * 20, "m/b": [0.0] * 20})
    stats = summarize(frame[(frame["model"] == "m/a") | (frame["prompt_id"] < 8)])
    assert stats.loc["m/b", "note"].startswith("score on 8 of the 20 prompts;")
    assert not stats.loc["m/a", "note"].startswith("score")


def test_groups_keep_the_order_the_models_were_given_in() -> None:
    frame = _scored(3, {"z/last": [1.0, 0.0, 1.0], "a/first": [0.0, 0.0, 1.0]})
    assert list(summarize(frame).index) == ["z/last", "a/first"]


def test_a_bounded_score_keeps_its_interval_inside_0_and_1() -> None:
    frame = _scored(20, {"m": [1.0] * 18 + [0.5, 0.6]})
    assert summarize(frame).loc["m", "score_ci_high"] == 1.0


def test_group_by_another_column(results: pd.DataFrame) -> None:
    results = results.assign(served_by=["x", "x", "y", "y", "x", "x", "x", "x", "y", "y"])
    stats = summarize(results, by="served_by")
    assert stats.index.name == "served_by"
    assert stats["calls"].to_dict() == {"x": 6, "y": 4}
    both = summarize(results, by=["model", "cached"])
    assert both.index.names == ["model", "cached"]
    assert both.loc[("m/a", True), "calls"] == 1
    assert both.loc[("m/a", True), "latency_p50_s"] == pytest.approx(2.0)


def test_missing_columns_are_named(results: pd.DataFrame) -> None:
    with pytest.raises(InvalidRequestError, match="cost_usd"):
        summarize(results.drop(columns=["cost_usd"]))
    with pytest.raises(ValueError, match="'nope'"):
        summarize(results, by="nope")


def test_empty_frame_gives_empty_stats() -> None:
    stats = summarize(results_frame([]))
    assert stats.empty
    assert list(stats.columns)[:3] == ["calls", "ok", "failed"]
    assert stats.columns[-1] == "note"


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


def test_stats_show_reasoning_tokens_and_the_prompt_cache_discount_apart() -> None:
    rows = [
        _row("m/a", latency_s=1.0, input_tokens=100, output_tokens=50, reasoning_tokens=30, cache_discount_usd=0.002),
        _row("m/a", latency_s=1.0, input_tokens=100, output_tokens=20, reasoning_tokens=0, cache_discount_usd=-0.001),
        _row("m/a", latency_s=1.0, input_tokens=100, output_tokens=20),  # a server that reports neither
        _row("m/b", latency_s=1.0, input_tokens=100, output_tokens=20),
    ]
    stats = summarize(results_frame(rows))
    assert stats.loc["m/a", "reasoning_tokens"] == 30 and stats.loc["m/a", "n_reasoning"] == 2
    assert stats.loc["m/a", "cache_discount_usd"] == pytest.approx(0.001)
    assert stats.loc["m/b", "reasoning_tokens"] is pd.NA and stats.loc["m/b", "n_reasoning"] == 0
    assert math.isnan(stats.loc["m/b", "cache_discount_usd"])


def test_a_results_frame_from_before_the_token_details_still_summarizes(results: pd.DataFrame) -> None:
    old = results.drop(columns=["reasoning_tokens", "cached_input_tokens", "cache_write_tokens", "cache_discount_usd"])
    stats = summarize(old)
    assert stats["reasoning_tokens"].isna().all() and stats["cache_discount_usd"].isna().all()
    assert stats.loc["m/a", "input_tokens"] == 30
