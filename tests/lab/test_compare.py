"""compare(): one tidy row per prompt x model x sample, failures as rows, free reruns, budgets, resumable runs."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from opencode_lab import InvalidRequestError, ModelNotFoundError
from opencode_lab.core.schema import RESULT_COLUMNS


@pytest.fixture
def two_models(faults, make_lab):
    toml = (
        f'[providers.a]\nbase_url = "{faults[0].base_url}"\nmodels = ["x"]\n'
        f'[providers.b]\nbase_url = "{faults[1].base_url}"\nmodels = ["y"]\n'
    )
    return make_lab(toml)


def test_one_row_per_prompt_model_and_sample_in_input_order(two_models) -> None:
    frame = two_models.compare(["p0", "p1", "p2"], ["a/x", "b/y"], n=2, progress=False)
    assert list(frame.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert list(frame.columns[:3]) == ["prompt", "model", "response"]  # what a researcher reads first
    assert list(frame.columns[len(RESULT_COLUMNS) - 2 : len(RESULT_COLUMNS)]) == ["prompt_id", "run_id"]
    assert len(frame) == 12
    assert list(zip(frame.prompt_id, frame.model, frame["sample"], strict=True))[:4] == [
        (0, "a/x", 0),
        (0, "a/x", 1),
        (0, "b/y", 0),
        (0, "b/y", 1),
    ]
    assert (frame.response == "echo: " + frame.prompt).all()


@pytest.mark.slow
def test_row_order_follows_the_input_whatever_the_completion_order(faults, two_models) -> None:
    faults[0].configure(latency_s=0.05, latency_jitter_s=0.1, seed=3)
    prompts = [f"q{i}" for i in range(30)]
    frame = two_models.compare(prompts, ["a/x", "b/y"], progress=False, concurrency=16)
    assert list(frame.prompt) == [p for p in prompts for _ in range(2)]


def test_a_second_identical_compare_makes_no_provider_call(faults, two_models) -> None:
    first = two_models.compare(["p0", "p1"], ["a/x", "b/y"], progress=False)
    calls = faults[0].count() + faults[1].count()
    second = two_models.compare(["p0", "p1"], ["a/x", "b/y"], progress=False)
    assert faults[0].count() + faults[1].count() == calls == 4
    assert list(second.response) == list(first.response)
    assert second.cached.all() and (second.cost_usd == 0).all()


def test_samples_at_nonzero_temperature_are_cached_separately(fault, make_lab) -> None:
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')
    first = lab.compare("tell me", "a/x", n=3, temperature=0.9, progress=False)
    assert first.response.nunique() == 3
    again = lab.compare("tell me", "a/x", n=3, temperature=0.9, progress=False)
    assert list(again.response) == list(first.response) and again.cached.all()
    assert lab.cache.info()["entries"] == 3


def test_refresh_calls_again_and_overwrites(fault, make_lab) -> None:
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')
    first = lab.compare("tell me", "a/x", temperature=0.9, progress=False)
    refreshed = lab.compare("tell me", "a/x", temperature=0.9, cache="refresh", progress=False)
    again = lab.compare("tell me", "a/x", temperature=0.9, progress=False)
    assert fault.count() == 2
    assert refreshed.response[0] != first.response[0]
    assert again.response[0] == refreshed.response[0]


def test_failures_are_rows_not_exceptions(two_models) -> None:
    frame = two_models.compare(["fine", "broken [[fault:unauthorized]]", "also fine"], ["a/x"], progress=False)
    assert list(frame.error_type.fillna("ok")) == ["ok", "auth", "ok"]
    assert frame.response[1] is None or pd.isna(frame.response[1])
    assert "a/x" in frame.error[1]


@pytest.mark.slow
def test_failover_to_a_different_model_is_off_by_default(faults, two_models) -> None:
    faults[0].configure(mix={"server_error": 1.0})
    frame = two_models.compare(["p"], [["a/x", "b/y"]] if False else ["a/x"], progress=False)
    assert frame.error_type[0] == "server_error"
    assert faults[1].count() == 0


def test_a_prompts_dataframe_carries_its_other_columns(two_models) -> None:
    prompts = pd.DataFrame({"prompt": ["two", "three"], "expected": ["echo: two", "echo: three"]})
    frame = two_models.compare(
        prompts, "a/x", progress=False, scorer=lambda row: float(row["response"] == row["expected"])
    )
    assert list(frame.expected) == ["echo: two", "echo: three"]
    assert list(frame.score) == [1.0, 1.0]


def test_a_template_is_filled_from_each_row(two_models) -> None:
    prompts = pd.DataFrame({"city": ["Paris", "Rome"]})
    frame = two_models.compare(
        prompts, "a/x", template='Where is {city}? Reply as JSON {{"city": ...}}', progress=False
    )
    assert list(frame.prompt) == [
        'Where is Paris? Reply as JSON {"city": ...}',
        'Where is Rome? Reply as JSON {"city": ...}',
    ]


@pytest.mark.parametrize(
    ("prompts", "kwargs", "error", "message"),
    [
        (pd.DataFrame({"question": ["q"]}), {}, InvalidRequestError, "no 'prompt' column"),
        (pd.DataFrame({"city": ["Paris"]}), {"template": "{town}?"}, InvalidRequestError, "{town}"),
        (["ok", ""], {}, InvalidRequestError, "prompt 1 is empty"),
        (["ok"], {"n": 0}, InvalidRequestError, "n must be a positive integer"),
        ([], {}, InvalidRequestError, "prompts is empty"),
        (["ok"], {"temperature": 5}, InvalidRequestError, "temperature"),
    ],
)
def test_bad_input_fails_before_any_request(fault, two_models, prompts, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        two_models.compare(prompts, "a/x", progress=False, **kwargs)
    assert fault.count() == 0


def test_an_unknown_model_fails_before_any_request(faults, two_models) -> None:
    with pytest.raises(ModelNotFoundError, match="a/x"):
        two_models.compare(["p"], ["a/x", "a/z"], progress=False)
    assert faults[0].count() == 0


def test_a_budget_stops_issuing_requests(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.a]\nbase_url = "{fault.base_url}"\n'
        '[models.paid]\nprovider = "a"\nupstream = "x"\ninput_price = 10000.0\noutput_price = 10000.0\n'
    )
    frame = lab.compare(
        [f"question {i}" for i in range(20)], "paid", max_tokens=10, budget_usd=0.5, concurrency=1, progress=False
    )
    spent = frame.cost_usd.sum()
    assert spent <= 0.5
    assert (frame.error_type == "budget_exceeded").sum() > 0
    assert fault.count() == frame.error_type.isna().sum()


@pytest.mark.slow
def test_a_named_run_resumes_and_sends_only_the_missing_rows(fault, make_lab) -> None:
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n[cache]\nmode = "off"\n')
    prompts = [f"q{i}" for i in range(6)]
    first = lab.compare([*prompts[:3], "q3 [[fault:server_error]]", *prompts[4:]], "a/x", run="exp", progress=False)
    assert first.error_type.notna().sum() == 1
    sent = fault.count()
    resumed = lab.compare([*prompts[:3], "q3 [[fault:server_error]]", *prompts[4:]], "a/x", run="exp", progress=False)
    resent = {entry["prompt"] for entry in fault.log[sent:]}
    assert resent == {"q3 [[fault:server_error]]"}  # only the failed row is sent again
    assert resumed.run_id.nunique() == 1 and resumed.run_id[0] == first.run_id[0]
    assert list(resumed.response[:3]) == list(first.response[:3])
    assert len(lab.load_run("exp")) == 6


@pytest.mark.slow
def test_rows_a_resumed_run_reads_back_are_flagged_as_the_cache_flags_its_hits(fault, make_lab) -> None:
    """Cache off: the second compare answers from the run log, and says so exactly as a cache hit would."""
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n[cache]\nmode = "off"\n')
    first = lab.compare(["q0", "q1"], "a/x", run="flags", progress=False)
    again = lab.compare(["q0", "q1"], "a/x", run="flags", progress=False)
    assert not first.cached.any() and again.cached.all()
    assert (again.cost_usd == 0.0).all()
    assert list(again.cost_saved_usd) == pytest.approx(list(first.cost_usd), nan_ok=True)
    assert list(again.latency_s) == list(first.latency_s)  # the original call's measurements, as a hit keeps them


@pytest.mark.slow
def test_stats_summarises_a_compare(two_models) -> None:
    frame = two_models.compare(["p0", "p1", "oops [[fault:server_error]]"], ["a/x", "b/y"], progress=False)
    stats = two_models.stats(frame)
    assert list(stats.index) == ["a/x", "b/y"]
    assert list(stats.calls) == [3, 3] and list(stats.failed) == [1, 1]
    assert stats.loc["a/x", "top_error"] == "server_error"


@pytest.mark.slow
def test_an_expired_cache_entry_leads_to_a_new_call(fault, make_lab) -> None:
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n[cache]\nttl_ms = 300\n')
    lab.compare("hello", "a/x", progress=False)
    assert lab.compare("hello", "a/x", progress=False).cached[0]
    time.sleep(0.4)
    again = lab.compare("hello", "a/x", progress=False)
    assert not again.cached[0] and fault.count() == 2


def test_a_corrupted_cache_file_is_a_miss_not_a_wrong_answer(fault, make_lab) -> None:
    lab = make_lab(f'[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')
    first = lab.compare("hello", "a/x", progress=False)
    (output,) = (lab.settings.cache_dir / "responses").rglob("output.json")
    output.write_bytes(b"\x80\x04garbage")
    again = lab.compare("hello", "a/x", progress=False)
    assert not again.cached[0] and again.response[0] == first.response[0]
    assert fault.count() == 2


def test_every_request_parameter_reaches_the_request_body(fault, make_lab) -> None:
    lab = make_lab(f'[providers.f]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')
    lab.compare(["q"], "f/x", temperature=0.5, max_tokens=9, seed=4, top_p=0.5, stop=["END"], progress=False)
    (entry,) = fault.log
    assert entry["sampling"] == {"temperature": 0.5, "max_tokens": 9, "seed": 4, "top_p": 0.5, "stop": ["END"]}
