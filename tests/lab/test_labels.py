"""Human labels: kept in the run log with who and when, read back as a score column, as battles for ratings(),
and against a judge as Cohen's κ; diff() of two logged runs."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pandas as pd
import pytest

from opencode_lab import InvalidRequestError, agreement, ratings, scorers
from opencode_lab.evals.labels import label_value


@pytest.fixture
def lab(faults, make_lab):
    toml = (
        f'[providers.a]\nbase_url = "{faults[0].base_url}"\nmodels = ["x"]\n'
        f'[providers.b]\nbase_url = "{faults[1].base_url}"\nmodels = ["y"]\n'
    )
    return make_lab(toml)


@pytest.fixture
def run(lab) -> str:
    prompts = pd.DataFrame({"prompt": ["p0", "p1", "p2"], "expected": ["p0", "nope", "p2"]})
    lab.compare(prompts, ["a/x", "b/y"], run="labelled", scorer=scorers.contains(), progress=False)
    return "labelled"


def test_a_label_is_stored_with_who_and_when_and_read_back(lab, run) -> None:
    lab.label(run, 0, "a/x", "correct", who="ana", note="checked by hand")
    lab.label(run, 1, "b/y", 0.25, who="ben")
    labels = lab.labels(run)
    assert labels[["prompt_id", "model", "label", "value", "who"]].values.tolist() == [
        [0, "a/x", "correct", 1.0, "ana"], [1, "b/y", "0.25", 0.25, "ben"]]  # fmt: skip
    assert labels["run"].eq(run).all() and labels["note"].iloc[0] == "checked by hand"
    assert str(labels["at"].dtype) == "datetime64[ns, UTC]"
    with closing(sqlite3.connect(lab.runlog.path)) as con:  # in the file, for the next session
        assert con.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 2


def test_labels_become_the_score_human_column_of_the_loaded_run(lab, run) -> None:
    lab.label(run, 0, "a/x", "wrong", who="ana")
    lab.label(run, 0, "a/x", "correct", who="ana")  # ana changed her mind: her last label counts
    lab.label(run, 0, "a/x", "wrong", who="ben")  # two people: their verdicts are averaged
    frame = lab.load_run(run)
    assert frame.loc[(frame.prompt_id == 0) & (frame.model == "a/x"), "score_human"].tolist() == [0.5]
    assert frame["score_human"].isna().sum() == 5
    assert "score_human_mean" in lab.stats(frame).columns


def test_a_label_for_a_row_the_run_does_not_have_is_refused_before_anything_is_stored(lab, run) -> None:
    with pytest.raises(InvalidRequestError, match=r"no row prompt_id=7, model='a/x'.*models: a/x, b/y"):
        lab.label(run, 7, "a/x", "correct")
    with pytest.raises(InvalidRequestError, match="did you mean 'correct'"):
        lab.label(run, 0, "a/x", "corect")
    with pytest.raises(InvalidRequestError, match=r"preference over 'b/y'.*better, tie, worse"):
        lab.label(run, 0, "a/x", "correct", over="b/y")
    with pytest.raises(InvalidRequestError, match="no run named"):
        lab.label("other", 0, "a/x", "correct")
    assert lab.labels(run).empty


def test_preferences_and_paired_verdicts_are_battles_for_ratings(lab, run) -> None:
    lab.label(run, 0, "a/x", "better", over="b/y", who="ana")
    lab.label(run, 1, "a/x", "correct", who="ana")
    lab.label(run, 1, "b/y", "wrong", who="ana")
    lab.label(run, 2, "a/x", "correct", who="ana")
    lab.label(run, 2, "b/y", "correct", who="ana")
    battles = lab.labels(run, battles=True)
    assert battles[["model_a", "model_b", "score"]].values.tolist() == [
        ["a/x", "b/y", 1.0], ["a/x", "b/y", 1.0], ["a/x", "b/y", 0.5]]  # fmt: skip
    rated = ratings(battles, bootstrap=50)
    assert list(rated.index) == ["a/x", "b/y"] and rated.loc["a/x", "wins"] == 2 and rated.loc["a/x", "ties"] == 1


def test_a_judge_is_checked_against_the_people_who_labelled(lab, run) -> None:
    for prompt_id, model, verdict in [(0, "a/x", "correct"), (0, "b/y", "correct"), (1, "a/x", "correct"),
                                      (1, "b/y", "wrong"), (2, "a/x", "correct"), (2, "b/y", "correct")]:
        lab.label(run, prompt_id, model, verdict)
    frame = lab.load_run(run)
    judged = frame.assign(score_judge=[1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    result = agreement(judged, "score_judge")
    assert result.n == 6 and result.observed == pytest.approx(5 / 6)


def test_label_words_and_numbers() -> None:
    assert label_value("Correct") == (1.0, "correct") and label_value("partial") == (0.5, "partial")
    assert label_value("tie", over="m") == (0.5, "tie") and label_value(1) == (1.0, "1")
    for bad in (1.5, float("nan"), True, None):
        with pytest.raises(InvalidRequestError):
            label_value(bad)  # type: ignore[arg-type]


def test_two_logged_runs_are_diffed_by_name_and_scored_again(lab, run) -> None:
    prompts = pd.DataFrame({"prompt": ["p0", "p1", "p2"], "expected": ["p0", "nope", "p2"]})
    lab.compare(prompts, ["a/x", "b/y"], run="shouted", template="{prompt}!", progress=False)
    ends_plainly = scorers.regex(r"p\d$")  # the log keeps answers, not scores: both runs are scored again
    result = lab.diff(run, "shouted", scorer=ends_plainly)
    assert list(result.summary.index) == ["a/x", "b/y"]
    assert result.summary["regressions"].tolist() == [3, 3]
    assert result.regressions()["response_new"].str.endswith("!").all()
