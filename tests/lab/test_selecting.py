"""chat()/compare() through a learned selector or a cascade, against real loopback servers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opencode_lab import InvalidRequestError, ModelNotFoundError
from opencode_lab.evals.cascade import cascade
from opencode_lab.evals.selector import learn_selector

SUMS = ["What is 12 + 30 * 4?", "What is 71 + 18 * 3?"]
WORDS = ["Name the river of the city called Oslo", "Name the poem of the author called Keats"]


@pytest.fixture
def two_models(faults, make_lab):
    toml = (
        f'[providers.a]\nbase_url = "{faults[0].base_url}"\n'
        f'[providers.b]\nbase_url = "{faults[1].base_url}"\nmodels = ["y"]\n'
        '[[models.x.deployments]]\nprovider = "a"\nupstream = "fault-model"\ncontext_length = 40\n'
    )
    return make_lab(toml)


@pytest.fixture
def selector(make_task):
    """A is right on arithmetic and costs twice B: A is model ``x``, B is ``b/y``."""
    frame = make_task().replace({"model": {"A": "x", "B": "b/y"}})
    return learn_selector(frame, name="arith-selector")


def test_compare_through_a_selector_asks_the_chosen_model_and_records_why(faults, two_models, selector) -> None:
    prompts = [SUMS[0], WORDS[0], SUMS[1], WORDS[1]]
    frame = two_models.compare(prompts, selector, progress=False)
    assert list(frame.prompt) == prompts and list(frame.prompt_id) == [0, 1, 2, 3]
    assert (frame.model == "arith-selector").all()
    assert list(frame.selected_model) == ["x", "b/y", "x", "b/y"]
    assert faults[0].count() == 2 and faults[1].count() == 2
    assert (frame.response == "echo: " + frame.prompt).all()
    predictions = [json.loads(p) for p in frame.predictions]
    assert all(set(p) == {"x", "b/y"} for p in predictions)
    assert list(frame.predicted_quality) == [p[m] for p, m in zip(predictions, frame.selected_model, strict=True)]


def test_chat_through_a_selector_answers_with_the_chosen_model(two_models, selector) -> None:
    assert two_models.chat(SUMS[0], model=selector).model == "x"
    assert two_models.chat(WORDS[0], model=selector).model == "b/y"


def test_a_prompt_longer_than_a_models_context_window_never_goes_to_it(faults, two_models, selector) -> None:
    long_sum = "What is " + " + ".join(str(n) for n in range(10, 60)) + "?"
    assert selector.select(long_sum)[0].model == "x"  # what the selector would choose without the window
    frame = two_models.compare([long_sum, SUMS[0]], selector, progress=False)
    assert list(frame.selected_model) == ["b/y", "x"]
    assert faults[0].count() == 1


def test_a_cascade_keeps_the_first_answer_that_passes_and_sums_what_every_step_took(faults, two_models) -> None:
    plan = cascade(["b/y", "x"], accept=lambda row: "keep" in row["response"], name="cheap first")
    frame = two_models.compare(["keep this", "escalate this"], plan, progress=False)
    assert list(frame.model) == ["cheap first"] * 2
    assert list(frame.selected_model) == ["b/y", "x"] and list(frame.escalations) == [0, 1]
    assert faults[1].count() == 2 and faults[0].count() == 1
    asked = two_models.compare(["escalate this"], ["b/y", "x"], progress=False)  # from the cache: as first measured
    assert asked.cached.all()
    assert frame.latency_s[1] == pytest.approx(asked.latency_s.sum())
    assert frame.output_tokens[1] == asked.output_tokens.sum()
    assert np.isnan(frame.cost_usd[1])  # neither server reported a cost: unknown, never 0


def test_chat_through_a_cascade_returns_the_accepted_answer(faults, two_models) -> None:
    plan = cascade(["b/y", "x"], accept=lambda row: "keep" in row["response"])
    assert two_models.chat("keep me", model=plan).model == "b/y"
    assert two_models.chat("drop me", model=plan).model == "x"
    assert faults[1].count() == 2 and faults[0].count() == 1


def test_what_selection_cannot_do_yet_is_refused_before_anything_is_sent(faults, two_models, selector) -> None:
    plan = cascade(["b/y", "x"], accept="score")
    with pytest.raises(InvalidRequestError, match="run="):
        two_models.compare(["p"], selector, run="named", progress=False)
    with pytest.raises(InvalidRequestError, match="one sample"):
        two_models.compare(["p"], plan, n=2, progress=False)
    assert faults[0].count() + faults[1].count() == 0


def test_a_toml_selector_is_asked_by_name_and_chooses_by_its_rule(faults, make_lab, selector, tmp_path) -> None:
    selector.save(tmp_path / "arith.json")
    servers = (
        f'[providers.a]\nbase_url = "{faults[0].base_url}"\nmodels = ["x"]\n'
        f'[providers.b]\nbase_url = "{faults[1].base_url}"\nmodels = ["y"]\n'
        '[aliases]\nx = "a/x"\n'
    )
    best = make_lab(servers + '[selectors.smart]\npath = "arith.json"\n')
    frame = best.compare([SUMS[0], WORDS[0]], "smart", progress=False)
    assert list(frame.model) == ["smart", "smart"] and list(frame.selected_model) == ["x", "b/y"]
    as_listed = best.compare([SUMS[0]], ["smart"], progress=False)  # as the CLI's -m passes it
    assert list(as_listed.selected_model) == ["x"]
    assert best.chat([{"role": "user", "content": WORDS[0]}], model=["smart"]).model == "b/y"  # as %%chat does
    thrifty = make_lab(servers + '[selectors.smart]\npath = "arith.json"\nbudget = 1.5\n')
    assert thrifty.chat(SUMS[0], model="smart").model == "b/y"  # x costs 2 a prompt: over the budget


def test_a_toml_selector_over_models_the_lab_does_not_know_fails_before_sending(faults, make_lab, selector, tmp_path):
    selector.save(tmp_path / "arith.json")
    lab = make_lab(
        f'[providers.b]\nbase_url = "{faults[1].base_url}"\nmodels = ["y"]\n[selectors.smart]\npath = "arith.json"\n'
    )
    with pytest.raises(ModelNotFoundError):
        lab.compare([SUMS[0]], "smart", progress=False)
    assert faults[1].count() == 0


def test_a_check_that_asks_a_model_itself_runs_off_the_labs_loop(faults, two_models) -> None:
    def judged(row) -> bool:  # as a judge does: a synchronous call through the same Lab
        return "keep" in two_models.chat(f"Verdict on {row['response']!r}?", model="x").text

    plan = cascade(["b/y", "x"], accept=judged)
    frame = two_models.compare(["keep this", "drop this"], plan, progress=False)
    assert list(frame.escalations) == [0, 1]
    assert two_models.chat("keep me", model=plan).model == "b/y"


def test_a_cascade_escalates_past_a_model_that_fails_in_chat_and_compare(faults, two_models) -> None:
    faults[1].configure(queue=["bad_request", "bad_request"])  # b/y fails once in chat, once in compare
    plan = cascade(["b/y", "x"], accept=lambda row: True)
    assert two_models.chat("anything", model=plan).model == "x"
    frame = two_models.compare(["anything else"], plan, progress=False)
    assert list(frame.selected_model) == ["x"] and list(frame.escalations) == [1]
