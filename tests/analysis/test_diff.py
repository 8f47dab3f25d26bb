"""diff(): a new run against its baseline, prompt by prompt, with the paired test across runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from opencode_lab import InvalidRequestError
from opencode_lab.analysis.diff import BETTER, SAME, WORSE, diff
from opencode_lab.core.schema import results_frame


def run(scores: list[float], model: str = "m", template: str = "{}", **columns: object) -> pd.DataFrame:
    """A results frame: prompt i scored scores[i]; NaN scores are failed calls."""
    return results_frame([
        {"prompt": template.format(f"question {i}"), "model": model, "prompt_id": i, "sample": 0, "run_id": "r",
         "response": None if math.isnan(s) else f"answer {i}", "error_type": "timeout" if math.isnan(s) else None,
         "score": s, **columns}
        for i, s in enumerate(scores)
    ])  # fmt: skip


def both(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def test_rows_align_by_the_input_prompt_so_a_changed_template_is_what_is_compared() -> None:
    base = run([1.0] * 20, template="Q: {}")
    new = run([1.0] * 12 + [0.0] * 8, template="Answer briefly. {}")
    result = diff(base, new)
    row = result.summary.loc["m"]
    assert row["n_prompts"] == 20 and row["regressions"] == 8 and row["improvements"] == 0
    assert row["baseline"] == 1.0 and row["new"] == pytest.approx(0.6) and row["change"] == pytest.approx(-0.4)
    assert row["verdict"].startswith("worse by 40 points") and result.regressed
    assert list(result.regressions()["prompt_id"]) == list(range(12, 20))
    assert result.regressions()["prompt"].iloc[0] == "Q: question 12"  # the baseline's text
    assert set(result.prompts["status"]) == {WORSE, SAME}


def test_the_paired_test_is_mcnemars_as_statsmodels_computes_it() -> None:
    base = [1.0] * 10 + [0.0] * 5 + [1.0] * 15
    new = [1.0] * 10 + [1.0] * 5 + [0.0] * 2 + [1.0] * 13
    row = diff(run(base), run(new)).summary.loc["m"]
    expected = mcnemar([[10, 2], [5, 13]], exact=False, correction=False).pvalue  # [[both, only base], ...]
    assert row["test"] == "McNemar" and row["p_value"] == pytest.approx(expected, rel=1e-9)
    assert row["regressions"] == 2 and row["improvements"] == 5
    assert row["verdict"] == "no detectable difference"


def test_an_improvement_is_not_a_regression() -> None:
    result = diff(run([0.0] * 20), run([1.0] * 20))
    assert result.summary.loc["m", "verdict"].startswith("better by 100 points")
    assert not result.regressed and len(result.improvements()) == 20 and result.prompts["status"].eq(BETTER).all()


def test_failures_count_as_zero_on_a_bounded_score() -> None:
    result = diff(run([1.0] * 10), run([math.nan] * 6 + [1.0] * 4))
    row = result.summary.loc["m"]
    assert row["regressions"] == 6 and row["new"] == pytest.approx(0.4)
    assert "failed on 6 prompt(s) (timeout), counted as 0" in row["note"]


def test_lower_is_better_for_latency() -> None:
    base = run([1.0] * 6, latency_s=0.5)
    new = base.assign(latency_s=[0.9, 1.0, 1.1, 0.95, 1.05, 1.2])
    result = diff(base, new, "latency_s")
    assert result.regressed and result.summary.loc["m", "regressions"] == 6
    assert result.summary.loc["m", "test"] == "paired t"


def test_each_model_is_compared_with_itself_at_a_bonferroni_level() -> None:
    base = both(run([1.0] * 10), run([1.0] * 10, model="k"))
    new = both(run([1.0] * 10), run([0.0] * 10, model="k"))
    result = diff(base, new)
    assert list(result.summary.index) == ["m", "k"]
    assert result.summary["ci_level"].tolist() == pytest.approx([0.975, 0.975])
    assert result.summary.loc["m", "verdict"] == "no detectable difference"
    assert result.summary.loc["k", "verdict"].startswith("worse") and result.regressed


def test_one_model_per_run_or_a_named_pair_compares_two_models() -> None:
    result = diff(run([1.0] * 4, model="old"), run([1.0] * 4, model="new"))
    assert list(result.summary.index) == ["old → new"]
    two = both(run([1.0] * 4, model="a"), run([0.0] * 4, model="b"))
    named = diff(two, two, models=("a", "b"))
    assert named.summary.loc["a → b", "regressions"] == 4


def test_runs_without_a_common_model_or_a_score_are_refused_with_the_way_out() -> None:
    two = both(run([1.0], model="a"), run([1.0], model="b"))
    with pytest.raises(InvalidRequestError, match=r"share no model.*models=\(baseline model, new model\)"):
        diff(two, run([1.0], model="c"))
    with pytest.raises(InvalidRequestError, match="has no model 'z'"):
        diff(two, two, models=("a", "z"))
    with pytest.raises(InvalidRequestError, match=r"no column 'score' .*scorer="):
        diff(run([1.0]).drop(columns=["score"]), run([1.0]))


def test_prompts_only_one_run_asked_are_listed_without_a_status() -> None:
    result = diff(run([1.0] * 3), run([1.0] * 4))
    assert result.summary.loc["m", "n_prompts"] == 3
    assert result.prompts["status"].isna().sum() == 1
