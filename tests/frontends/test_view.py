"""Triage: the filters, a call's transcript, and the Panel view driven in-process (the browser test drives it
through JupyterLab)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from opencode_lab import scorers
from opencode_lab.core.schema import results_frame
from opencode_lab.frontends.accessor import register
from opencode_lab.frontends.triage import disagreements, select, transcript_html
from opencode_lab.frontends.view import View


def _results() -> pd.DataFrame:
    rows = []
    for i in range(5):
        for model in ("a/x", "b/y"):
            failed = i == 2 and model == "b/y"
            rows.append({
                "prompt": f"What is {i} + {i}?", "model": model, "prompt_id": i, "sample": 0, "run_id": "r",
                "response": None if failed else ("<b>bold</b>" if i == 3 else str(2 * i)),
                "error_type": "timeout" if failed else None,
                "error": "all 1 attempt(s) for 'b/y' failed; last error: b/y: timed out after 5 s" if failed else None,
                "finish_reason": "length" if i == 4 else "stop", "expected": str(2 * i),
                "score": math.nan if failed else float(i % 2 == 1 or model == "a/x"),
                "reason": "timed out" if failed else None,
            })  # fmt: skip
    return results_frame(rows)


def test_failures_cut_answers_score_ranges_and_search_select_their_rows() -> None:
    frame = _results()
    assert select(frame, "failures").tolist() == [r == 5 for r in range(10)]
    assert frame[select(frame, "cut")].prompt_id.tolist() == [4, 4]
    assert frame[select(frame, score_range=(0, 0.5))].index.tolist() == [1, 9]
    assert frame[select(frame, search="TIMED out")].index.tolist() == [5]  # error text and reasons are searched
    assert frame[select(frame, "failures", search="2 + 2")].index.tolist() == [5]
    with pytest.raises(ValueError, match="show must be one of all, failures, disagreements, cut"):
        select(frame, "broken")
    with pytest.raises(ValueError, match="no score column 'score_f1'; score columns: score"):
        select(frame, scorer="score_f1", score_range=(0, 1))


def test_disagreements_are_prompts_where_models_score_differently_or_one_fails() -> None:
    frame = _results()
    assert frame[disagreements(frame)].prompt_id.tolist() == [0, 0, 2, 2, 4, 4]
    unscored = frame.drop(columns=["score"]).assign(response=["a", "a", "b", "B ", "c", "d", "e", "e", "f", "f"])
    assert unscored[disagreements(unscored)].prompt_id.tolist() == [2, 2]  # the failed row differs too


def test_a_transcript_tells_the_whole_call_escaped() -> None:
    frame = _results()
    html = transcript_html(frame.iloc[6])
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "prompt as sent" in html and "What is 3 + 3?" in html and "expected" in html
    failed = transcript_html(frame.iloc[5])
    assert "error: timeout" in failed and "timed out after 5 s" in failed and "all 1 attempt" not in failed
    assert "cut at the token limit" in transcript_html(frame.iloc[8])


def test_the_view_filters_opens_a_call_and_labels_it_in_the_run_log(faults, make_lab) -> None:
    lab = make_lab(f'[providers.a]\nbase_url = "{faults[0].base_url}"\nmodels = ["x", "y"]\n')
    prompts = pd.DataFrame({"prompt": ["p0", "p1", "[[fault:bad_request]] p2"], "expected": ["p0", "zz", "p2"]})
    results = lab.compare(prompts, ["a/x", "a/y"], run="v", scorer=scorers.contains(), progress=False)
    register()
    view = results.oc.view(lab=lab, who="tester")
    assert len(view.table.value) == 6 and "6</b> of 6 rows" in view.count.value
    view.show.value = "failures"
    assert list(view.table.value["status"]) == ["failed: bad_request"] * 2
    view.show.value = "all"
    view.score_range.value = (0.0, 0.5)
    assert view.table.value["prompt"].tolist() == ["p1", "p1"]
    view.table.selection = [1]
    assert "echo: p1" in view.transcript.value and not view.buttons[2].disabled
    view.label("wrong")
    assert view.status.value == "saved: wrong (tester)"
    assert view.table.value["label"].tolist() == ["", "wrong"]
    assert lab.labels("v")[["prompt_id", "model", "label", "who"]].values.tolist() == [[1, "a/y", "wrong", "tester"]]


def test_without_a_kernel_the_view_degrades_to_a_static_table() -> None:
    view = View(_results())
    data, _ = view._repr_mimebundle_()
    static = data["text/html"].split('<div class="oc-view-static">', 1)[1]
    assert static.startswith("<style>") and "What is 0 + 0?" in static and "static view" in static
    assert ".oc-view:has([data-root-id] *)>.oc-view-static{display:none}" in data["text/html"]
    assert data["text/plain"].startswith("View of 10 results rows")
    assert "application/vnd.holoviews_exec.v0+json" in data


def test_a_label_without_a_logged_run_says_why_it_was_not_saved(make_lab) -> None:
    view = View(_results(), lab=make_lab(""), who="tester")
    view.open(0)
    view.label("correct")
    assert view.status.value.startswith("not saved: no run named or with id 'r'")
