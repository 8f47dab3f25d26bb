"""``df.oc``: the toolkit reached from a results frame; ``df.oc.wide()``: prompt rows x model columns to read."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from opencode_lab.core.schema import results_frame
from opencode_lab.frontends.accessor import register

PROMPTS = pd.DataFrame({"prompt": ["Paris is nice", "oops [[fault:server_error]]"], "expected": ["Paris", "x"]})


def contains_expected(row) -> float:
    return float(str(row["expected"]).lower() in str(row["response"]).lower())


@pytest.fixture(autouse=True)
def _accessor() -> None:
    """Frames built here with `results_frame` come from no Lab, so nothing has registered ``df.oc`` for them."""
    register()


@pytest.fixture
def lab(fault, make_lab):
    return make_lab(f'[lab]\nmax_retries = 0\n[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x", "y"]\n')


@pytest.fixture
def results(lab):
    return lab.compare(PROMPTS, ["a/x", "a/y"], scorer=contains_expected, progress=False)


def row(**values) -> dict:
    base = {"prompt": "q", "prompt_id": 0, "model": "m", "sample": 0, "response": "answer", "error_type": None}
    return {**base, **values}


# -- the accessor ---------------------------------------------------------------------------------------------------


def test_importing_opencode_lab_does_not_import_pandas():
    code = "import sys, opencode_lab; print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_frame_from_compare_has_the_oc_accessor(results):
    assert results.oc.stats().loc["a/x", "score_mean"] == 0.5  # the failed call scores 0
    assert results.oc.stats(failures="drop").loc["a/x", "score_mean"] == 1.0


def test_a_frame_read_back_from_csv_has_it_too(results, tmp_path):
    results.to_csv(tmp_path / "r.csv", index=False)
    assert list(pd.read_csv(tmp_path / "r.csv").oc.stats().index) == ["a/x", "a/y"]


def test_summary_is_one_short_formatted_column_per_question(results):
    summary = results.oc.summary()
    assert list(summary.columns) == [
        "score", "failed", "latency p50", "latency p95", "tokens/s", "cost", "top error", "note",
    ]  # fmt: skip
    assert summary.loc["a/x", "failed"] == "1/2 (50.0 %)" and summary.loc["a/x", "top error"] == "server_error"
    assert summary.loc["a/x", "score"].startswith("0.500 [")
    assert summary.loc["a/x", "note"].startswith("score counts 1 failed call(s) as 0")


@pytest.mark.parametrize(
    ("prices", "cold"), [("", "unknown"), ("input_price = 1000.0\noutput_price = 1000.0\n", "$0.00800")]
)  # 8 words in and out at $1000 per million
def test_a_warm_reruns_cost_is_what_the_cache_saved_as_the_cold_run_knew_it(fault, make_lab, prices, cold):
    model = 'provider = "a"\nupstream = "x"\n'
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\n[models.m]\n{model}{prices}')
    assert lab.compare(["a b", "c"], "m", progress=False).oc.summary().loc["m", "cost"] == cold
    warm = lab.compare(["a b", "c"], "m", progress=False)
    assert warm.cached.all() and warm.oc.summary().loc["m", "cost"] == f"$0 (cache saved {cold})"


def test_errors_lists_the_failed_rows_cause_first(results):
    errors = results.oc.errors()
    assert list(errors.model) == ["a/x", "a/y"]
    assert list(errors.cause) == ["internal server error (HTTP 500)"] * 2  # no "all 1 attempt(s) for ..." preamble


def test_paired_compares_the_models_on_the_same_prompts(results):
    assert results.oc.paired("score").loc[("a/x", "a/y"), "n_prompts"] == 2  # both failed one: it counts as 0
    assert results.oc.paired("score", failures="drop").loc[("a/x", "a/y"), "n_prompts"] == 1


def test_sample_size_uses_the_frame_as_its_pilot():
    from opencode_lab import sample_size

    register()
    pilot = pd.DataFrame([row(prompt_id=i, model=m, score=float((i + k) % 3 == 0)) for i in range(9) for k, m in
                          enumerate(["a", "b"])])  # fmt: skip
    plan = pilot.oc.sample_size(0.2)
    assert (plan.test, plan.discordance) == ("McNemar", pytest.approx(6 / 9))
    assert plan == sample_size(0.2, discordance=6 / 9)


def test_stats_of_a_frame_that_is_not_a_results_frame_names_what_is_missing():
    register()
    with pytest.raises(ValueError, match="no such column"):
        pd.DataFrame({"x": [1]}).oc.stats()


# -- wide -----------------------------------------------------------------------------------------------------------


def test_wide_has_one_row_per_prompt_and_one_column_per_model(results):
    frame = results.oc.wide().frame
    assert list(frame.index) == list(PROMPTS.prompt) and list(frame.columns) == ["a/x", "a/y"]


def test_wide_marks_scores_and_shows_an_errors_cause_not_the_routers_preamble(results):
    frame = results.oc.wide().frame
    assert frame.loc["Paris is nice", "a/x"] == "✓ echo: Paris is nice"
    assert frame.iloc[1, 0] == "✗ server_error: internal server error (HTTP 500)"


def test_wide_headers_give_each_models_score_as_stats_does(results):
    headers = results.oc.wide().headers
    assert headers["a/x"].startswith("score 0.50 · 1/2 failed, scored 0 · p50 ")  # as stats(): a failure scores 0
    assert results.oc.stats().loc["a/x", "score_mean"] == 0.5


def test_wide_html_wraps_answers_and_puts_expected_under_the_prompt(results):
    shown = results.oc.wide()._repr_html_()
    assert "white-space:pre-wrap" in shown and "expected: Paris" in shown and "color:#c62828" in shown


def test_a_long_answer_shows_its_start_and_unfolds_to_the_rest():
    text = "word " * 200
    shown = results_frame([row(response=text)]).oc.wide(max_chars=100)._repr_html_()
    assert "<details" in shown and f"(+{len(text) - 99:,} chars)" in shown
    assert shown.count("word") == 200  # folded, never dropped


def test_max_chars_none_shows_every_answer_whole():
    assert "<details" not in results_frame([row(response="word " * 200)]).oc.wide(max_chars=None)._repr_html_()


def test_an_answer_cut_by_max_tokens_says_so():
    frame = results_frame([row(response="The capital is", finish_reason="length", output_tokens=48)])
    assert frame.oc.wide().frame.iloc[0, 0] == "The capital is… [cut at max_tokens=48]"


def test_samples_of_one_prompt_share_a_numbered_cell():
    frame = results_frame([row(sample=1, response="second"), row(sample=0, response="first")])
    wide = frame.oc.wide()
    assert wide.frame.iloc[0, 0] == "first\n\nsecond"
    assert ">#1</div>" in wide._repr_html_() and ">#2</div>" in wide._repr_html_()


def test_model_text_is_escaped_in_the_html():
    shown = results_frame([row(response="<script>alert(1)</script>")]).oc.wide()._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;" in shown


def test_the_terminal_repr_is_one_block_per_prompt(results):
    text = repr(results.oc.wide())
    assert text.splitlines()[:3] == ["Paris is nice  (expected: Paris)", "  a/x: ✓ echo: Paris is nice",
                                     "  a/y: ✓ echo: Paris is nice"]  # fmt: skip


def test_wide_refuses_a_frame_without_answers():
    register()
    with pytest.raises(ValueError, match="missing column"):
        pd.DataFrame({"prompt": ["q"]}).oc.wide()
