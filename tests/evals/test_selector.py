"""Learned selectors: what they learn, how they choose, how they are proved and how they are kept."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from opencode_lab import ConfigError, InvalidRequestError
from opencode_lab.evals.selector import Selector, learn_selector


@pytest.mark.parametrize("estimator", ["knn", "linear"])
def test_on_a_task_with_structure_the_selector_beats_every_model_and_nears_the_oracle(
    arithmetic_task, estimator
) -> None:
    report = learn_selector(arithmetic_task, estimator=estimator).evaluate()
    aiq = dict(zip(report.metrics.system, report.metrics.aiq, strict=True))
    assert aiq["selector"] > max(aiq["A"], aiq["B"], aiq["random mixture"])
    assert aiq["selector"] >= 0.9 * aiq["oracle"]
    assert report.better and report.verdict.startswith("The selector beats")


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_when_nothing_predicts_quality_the_report_says_the_selector_is_no_better(make_task, seed) -> None:
    coin = make_task(seed=seed, scores=lambda rng, _: (float(rng.random() < 0.6), float(rng.random() < 0.4)))
    report = learn_selector(coin).evaluate()
    assert not report.better
    assert "no better than the best single model" in report.verdict


def test_the_report_has_every_system_with_an_interval_and_two_model_measures(arithmetic_task) -> None:
    report = learn_selector(arithmetic_task).evaluate(bootstrap=50)
    assert set(report.points.kind) == {"model", "oracle", "selector", "cascade"}
    metrics = report.metrics.set_index("system")
    assert set(metrics.index) == {"A", "B", "oracle", "selector", "random mixture", "cascade (perfect check)"}
    assert (metrics.aiq_low <= metrics.aiq + 1e-12).all() and (metrics.aiq <= metrics.aiq_high + 1e-12).all()
    assert metrics.loc["selector", "strong"] == "A" and metrics.loc["selector", "weak"] == "B"
    assert metrics.loc["selector", "cpt50"] <= metrics.loc["selector", "cpt80"] <= 1


def test_a_prompt_text_is_never_predicted_by_a_model_that_saw_it() -> None:
    texts = [f"question number {i} about {w}" for i, w in enumerate(["cats", "dogs", "owls", "bees"] * 10)]
    rows = [
        {
            "prompt": t,
            "model": m,
            "score": (i + 1) / 100 if m == "A" else 0.5,
            "cost_usd": c,
            "prompt_id": pid,
            "sample": sample,
        }
        for i, t in enumerate(texts)
        for pid in (i, i + 1000)
        for sample in (0, 1)
        for m, c in (("A", 2.0), ("B", 1.0))
    ]  # every text asked twice under two ids, two samples each: a prompt-id or row split would leak it
    selector = learn_selector(pd.DataFrame(rows), k=1)
    assert len(selector.data.table) == len(texts)
    predicted, folds = selector.cross_predict(5, seed=0)
    own = selector.data.quality[:, 0]
    assert not np.isclose(predicted[:, 0], own).any()  # a 1-NN that had seen the text would return its own score
    assert sorted(np.bincount(folds)) == [8] * 5


def test_failed_rows_count_as_zero_and_samples_are_averaged() -> None:
    rows = pd.DataFrame(
        [
            {"prompt": "p", "model": "A", "score": None, "error_type": "ServerError", "cost_usd": 1.0},
            {"prompt": "p", "model": "A", "score": 1.0, "error_type": None, "cost_usd": 3.0},
            {"prompt": "p", "model": "B", "score": None, "error_type": None, "cost_usd": 1.0},
            {"prompt": "q", "model": "B", "score": 0.25, "error_type": None, "cost_usd": None},
        ]
    )
    selector = learn_selector(rows, k=1)
    assert selector.data.quality.tolist() == [
        [0.5, pytest.approx(np.nan, nan_ok=True)],
        [pytest.approx(np.nan, nan_ok=True), 0.25],
    ]
    assert selector.costs == {"A": 2.0, "B": 1.0}


def test_the_rules_choose_by_target_budget_and_willingness_to_pay(arithmetic_task) -> None:
    selector = learn_selector(arithmetic_task)
    sums, words = "What is 12 + 30 * 4?", "Name the river of the city called Oslo"
    assert [c.model for c in selector.select([sums, words])] == ["A", "B"]
    assert [c.model for c in selector.select([sums, words], willingness_to_pay=0)] == ["B", "B"]
    assert [c.model for c in selector.select([sums, words], budget=1.5)] == ["B", "B"]
    assert [c.model for c in selector.select([sums, words], target=0.9)] == ["A", "B"]
    choice = selector.select(sums)[0]
    assert set(choice.predictions) == {"A", "B"} and choice.predicted_quality == choice.predictions["A"]


def test_a_model_ruled_out_for_a_prompt_is_never_chosen_and_no_eligible_model_is_refused(arithmetic_task) -> None:
    selector = learn_selector(arithmetic_task)
    assert selector.select("What is 12 + 30?", eligible=np.array([[False, True]]))[0].model == "B"
    with pytest.raises(InvalidRequestError, match="fits none"):
        selector.select("What is 12 + 30?", eligible=np.array([[False, False]]))


def test_bad_input_is_refused_naming_the_culprit(arithmetic_task) -> None:
    with pytest.raises(InvalidRequestError, match="'quality_score' is not in the results"):
        learn_selector(arithmetic_task, quality="quality_score")
    with pytest.raises(InvalidRequestError, match="chooses between models"):
        learn_selector(arithmetic_task[arithmetic_task.model == "A"])
    with pytest.raises(InvalidRequestError, match="reports no 'cost_usd'"):
        learn_selector(arithmetic_task.assign(cost_usd=np.nan))
    with pytest.raises(InvalidRequestError, match="estimator"):
        learn_selector(arithmetic_task, estimator="mlp")
    with pytest.raises(InvalidRequestError, match="give one of"):
        learn_selector(arithmetic_task).select("x", target=0.5, budget=1)


def test_named_columns_are_features_too(make_task) -> None:
    frame = make_task(scores=lambda rng, _: (0.0, 1.0))
    frame["topic"] = np.where(frame.prompt_id % 2 == 0, "maths", "words")
    frame.loc[(frame.topic == "maths") & (frame.model == "A"), "score"] = 1.0
    frame.loc[(frame.topic == "maths") & (frame.model == "B"), "score"] = 0.0
    selector = learn_selector(frame, features=["topic"], estimator="linear")
    prompts = pd.DataFrame({"prompt": ["anything at all", "anything at all"], "topic": ["maths", "words"]})
    assert [c.model for c in selector.select(prompts)] == ["A", "B"]


def test_a_saved_selector_is_plain_json_and_loads_to_the_same_predictions(arithmetic_task, tmp_path) -> None:
    selector = learn_selector(arithmetic_task, name="arith")
    path = selector.save(tmp_path / "arith.json")
    document = json.loads(path.read_text())
    assert document["format"] == "opencode_lab.selector" and document["version"] == 1
    loaded = Selector.load(path, models=["B", "A"])
    prompts = ["What is 3 + 4?", "Name the poem"]
    pd.testing.assert_frame_equal(loaded.predict(prompts), selector.predict(prompts))
    assert loaded.name == "arith" and loaded.costs == selector.costs


def test_loading_refuses_another_model_set_a_damaged_file_and_another_version(arithmetic_task, tmp_path) -> None:
    path = learn_selector(arithmetic_task).save(tmp_path / "s.json")
    with pytest.raises(ConfigError, match="trained on models"):
        Selector.load(path, models=["A", "C"])
    document = json.loads(path.read_text())
    path.write_text(json.dumps(document | {"version": 99}))
    with pytest.raises(ConfigError, match="version 99"):
        Selector.load(path)
    del document["training"]
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="damaged"):
        Selector.load(path)
    path.write_text("not json")
    with pytest.raises(ConfigError, match="cannot read"):
        Selector.load(path)
    with pytest.raises(ConfigError, match="not a regular file"):
        Selector.load(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": ["A"]}, "at least two"),
        ({"models": ["A", "A"]}, "named twice"),
        ({"table": {"prompt": [1, 2]}}, "'prompt' column of strings"),
        ({"quality": [[1.0]]}, "prompts x models"),
    ],
)
def test_a_hostile_training_table_is_refused_as_damaged(arithmetic_task, tmp_path, change, message) -> None:
    path = learn_selector(arithmetic_task).save(tmp_path / "s.json")
    document = json.loads(path.read_text())
    document["training"] |= change
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=message):
        Selector.load(path)


class _DigitsOnly:
    """A feature step of one's own: the share of digits in the prompt, nothing else."""

    def fit(self, table):
        return self

    def transform(self, table):
        text = table["prompt"].astype(str)
        return (text.str.count(r"\d") / text.str.len()).to_numpy()[:, None]

    def spec(self):
        return {"type": "digits-only"}


def test_a_feature_step_of_ones_own_replaces_the_lexical_one(arithmetic_task, tmp_path) -> None:
    selector = learn_selector(arithmetic_task, features=_DigitsOnly(), estimator="linear")
    assert [c.model for c in selector.select(["What is 12 + 30 * 4?", "Name the poem"])] == ["A", "B"]
    with pytest.raises(ConfigError, match="unknown feature step 'digits-only'"):
        Selector.load(selector.save(tmp_path / "digits.json"))


def test_a_loaded_selector_replays_a_cascade_only_on_results_it_is_given(arithmetic_task, tmp_path) -> None:
    from opencode_lab import cascade

    loaded = Selector.load(learn_selector(arithmetic_task).save(tmp_path / "s.json"))
    plan = cascade(["B", "A"], accept=lambda row: row["response"] == "B says")
    with pytest.raises(InvalidRequestError, match="pass results="):
        loaded.evaluate(cascade=plan, bootstrap=10)
    report = loaded.evaluate(cascade=plan, results=arithmetic_task, bootstrap=10)
    point = report.points.query("system == @plan.name and setting == 1.0").iloc[0]
    assert point.cost == 1.0 and point.quality == pytest.approx((arithmetic_task.query("model == 'B'").score).mean())


def test_the_figure_draws_every_system_with_its_aiq_in_the_legend(arithmetic_task) -> None:
    report = learn_selector(arithmetic_task).evaluate(bootstrap=10)
    labels = [t.get_text() for t in report.figure().legends[0].get_texts()]
    for system in ("random mixtures", "A (AIQ", "B (AIQ", "oracle (AIQ", "selector (AIQ", "cascade (perfect check)"):
        assert any(label.startswith(system) for label in labels), (system, labels)


def test_with_three_models_the_plane_has_every_model_and_no_two_model_measures(make_task) -> None:
    frame = make_task(n=60)
    third = frame[frame.model == "B"].assign(model="C", cost_usd=0.5, score=0.0)
    report = learn_selector(pd.concat([frame, third])).evaluate(bootstrap=20)
    assert {"A", "B", "C", "oracle", "selector"} <= set(report.metrics.system)
    assert "apgr" not in report.metrics.columns
    assert report.points.query("kind == 'selector'").cost.min() == 0.5  # willing to pay nothing: always C


def test_a_selector_named_like_a_model_or_a_bad_bootstrap_is_refused(arithmetic_task) -> None:
    with pytest.raises(InvalidRequestError, match="distinct names"):
        learn_selector(arithmetic_task, name="A").evaluate()
    with pytest.raises(InvalidRequestError, match="bootstrap"):
        learn_selector(arithmetic_task).evaluate(bootstrap=0)
    with pytest.raises(InvalidRequestError, match="folds"):
        learn_selector(arithmetic_task).evaluate(folds=1)


def test_a_cached_row_costs_what_its_answer_cost_not_the_nothing_it_paid(arithmetic_task) -> None:
    rerun = arithmetic_task.assign(cached=True, cost_saved_usd=arithmetic_task.cost_usd, cost_usd=0.0)
    assert learn_selector(rerun).costs == {"A": 2.0, "B": 1.0}
