"""The in-process llama.cpp provider on the two bundled GGUF models."""

from __future__ import annotations

import asyncio
import math
import os

import pytest

from opencode_lab import ChatRequest, ConfigError, ContextWindowError, Lab
from opencode_lab.providers.local import LocalProvider, bundled_models, completion_prompt, default_threads

pytestmark = pytest.mark.llama


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    provider = LocalProvider(bundled_models(tmp_path_factory.mktemp("models")), threads=1)
    yield provider
    asyncio.run(provider.aclose())


def ask(provider: LocalProvider, model: str, prompt: str, **params: object):
    return asyncio.run(provider.complete(model, ChatRequest.build(prompt, **params)))


def test_smollm2_answers_a_factual_question(local) -> None:
    completion = ask(local, "smollm2-135m", "What is the capital of Japan?", temperature=0, seed=1, max_tokens=24)
    assert "Tokyo" in completion.text
    assert completion.usage.input_tokens and completion.usage.output_tokens
    assert completion.usage.cost_usd == 0.0


def test_answers_are_deterministic_at_temperature_zero_with_a_seed(local) -> None:
    first = ask(local, "smollm2-135m", "Name a color.", temperature=0, seed=7, max_tokens=16)
    second = ask(local, "smollm2-135m", "Name a color.", temperature=0, seed=7, max_tokens=16)
    assert first.text == second.text != ""


def test_gemma_base_model_answers_completion_style(local) -> None:
    completion = ask(local, "gemma-3-270m", "What is the capital of France?", temperature=0, seed=1, max_tokens=16)
    assert "Paris" in completion.text
    assert "Question:" not in completion.text


def test_the_completion_prompt_is_a_question_answer_transcript() -> None:
    request = ChatRequest.build("Capital of Italy?", system="Answer briefly.")
    assert completion_prompt(request) == "Answer briefly.\n\nQuestion: Capital of Italy?\n\nAnswer:"


def test_streaming_yields_tokens_and_a_final_completion_with_usage(local) -> None:
    async def go():
        chunks = []
        async for chunk in local.stream(
            "smollm2-135m", ChatRequest.build("Count to five.", temperature=0, seed=1, max_tokens=20)
        ):
            chunks.append(chunk)
        return chunks

    chunks = asyncio.run(go())
    deltas = [c.delta for c in chunks if c.delta]
    final = chunks[-1].completion
    assert len(deltas) > 3
    assert final is not None and final.text == "".join(deltas).rstrip()
    assert final.usage.output_tokens and final.usage.output_tokens > 3


def test_a_prompt_over_the_context_window_is_refused(local) -> None:
    with pytest.raises(ContextWindowError, match="2048-token context"):
        ask(local, "smollm2-135m", "word " * 3000, max_tokens=8)


def test_catalog_marks_gemma_as_a_base_model(local) -> None:
    models = {m.id: m for m in asyncio.run(local.list_models())}
    assert "base" in models["gemma-3-270m"].tags
    assert "base" not in models["smollm2-135m"].tags
    assert models["smollm2-135m"].input_price_per_mtok == 0.0


def test_threads_default_to_the_cores_this_process_may_use(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_threads() == 4


def test_oc_local_threads_sets_the_thread_count_of_every_loaded_model(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OC_LOCAL_THREADS", "1")
    with Lab.from_env() as lab:
        local = lab.providers["local"]
        assert local.threads == 1
        lab.chat("Say ok.", model="local/smollm2-135m", max_tokens=2, temperature=0, seed=1)
        llama = local._load("smollm2-135m").llama
        assert (llama.n_threads, llama.n_threads_batch) == (1, 1)  # generation and prompt evaluation alike


def test_a_bad_thread_count_is_refused_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("OC_LOCAL_THREADS", "0")
    with pytest.raises(ConfigError, match="OC_LOCAL_THREADS"):
        Lab.from_env()


def test_a_local_model_in_toml_needs_a_path(tmp_path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[models.tiny]\nprovider = "local"\nupstream = "tiny"\n')
    with pytest.raises(
        ConfigError, match=r'lab\.toml: \[models\.tiny\]: a local model needs path = "/path/to/model.gguf"'
    ):
        Lab.from_file(path)


def test_local_deployments_take_one_call_at_a_time_and_form_the_last_rotation_pool(local) -> None:
    deployments = {d.id: d for d in local.deployments()}
    assert set(deployments) == {"local/smollm2-135m", "local/gemma-3-270m"}
    assert {d.max_in_flight for d in deployments.values()} == {1}
    with Lab.from_env() as lab:
        assert set(lab.catalog.pool) == set(deployments)


# -- sampling: the model authors' settings unless the caller says otherwise ------------------------------------------

CAPITAL = "What is the capital of France? Answer in one word."


@pytest.fixture
def sent(local, monkeypatch) -> list[dict]:
    """The keywords each call hands llama-cpp-python, recorded on the loaded models themselves."""
    calls: list[dict] = []
    for model, method in (("smollm2-135m", "create_chat_completion"), ("gemma-3-270m", "create_completion")):
        llama = local._load(model).llama
        original = getattr(llama, method)

        def record(*args, _original=original, **kwargs):
            calls.append(kwargs)
            return _original(*args, **kwargs)

        monkeypatch.setattr(llama, method, record)
    return calls


def sampling_of(kwargs: dict) -> tuple:
    return kwargs.get("temperature"), kwargs.get("top_p"), kwargs.get("top_k")


@pytest.mark.parametrize(
    ("model", "expected"),
    [("smollm2-135m", (0.2, 0.9, None)), ("gemma-3-270m", (1.0, 0.95, 64))],  # None: llama.cpp's own top_k
)
def test_a_request_that_sets_no_sampling_uses_the_model_authors_settings(local, sent, model, expected) -> None:
    ask(local, model, "Name a color.", max_tokens=4)
    (kwargs,) = sent
    assert sampling_of(kwargs) == expected


def test_what_the_caller_sets_wins_and_the_rest_stay_the_models(local, sent) -> None:
    ask(local, "gemma-3-270m", "Name a color.", temperature=0, max_tokens=4)
    ask(local, "smollm2-135m", "Name a color.", top_p=0.5, max_tokens=4)
    assert [sampling_of(kwargs) for kwargs in sent] == [(0.0, 0.95, 64), (0.2, 0.5, None)]


def test_smollm2_answers_a_one_word_question_sensibly_at_its_default_sampling(local) -> None:
    """At llama.cpp's 0.8 a third of the draws rambled; at its authors' 0.2 / 0.9 every one names the city."""
    answers = [ask(local, "smollm2-135m", CAPITAL, seed=seed, max_tokens=24).text for seed in range(10)]
    assert all("Paris" in answer for answer in answers), answers


# -- seeds: every answer says which one it was sampled with, and that seed replays it ----------------------------------


def test_an_unseeded_request_draws_a_seed_reports_it_and_that_seed_replays_the_answer(local) -> None:
    sea = {"temperature": 1.0, "max_tokens": 12}
    drawn = ask(local, "smollm2-135m", "Write a line about the sea.", **sea)
    assert drawn.seed is not None and 0 <= drawn.seed < 2**31
    replayed = ask(local, "smollm2-135m", "Write a line about the sea.", seed=drawn.seed, **sea)
    assert (replayed.text, replayed.seed) == (drawn.text, drawn.seed)


def test_freshly_loaded_models_draw_different_samples_as_separate_processes_do() -> None:
    """llama.cpp alone derives an unseeded call's seed from the one the model was loaded with: every process
    that loaded the model repeated the same "random" samples, in the same order."""

    def samples() -> list:
        provider = LocalProvider(bundled_models(), threads=1)
        try:
            return [ask(provider, "smollm2-135m", "Write a line about the sea.", temperature=1.0, max_tokens=12)
                    for _ in range(3)]  # fmt: skip
        finally:
            asyncio.run(provider.aclose())

    first, second = samples(), samples()
    assert {c.seed for c in first}.isdisjoint(c.seed for c in second)
    assert [c.text for c in first] != [c.text for c in second]


def test_the_seed_llama_cpp_reads_as_random_is_replaced_by_a_drawn_seed_it_reports(local) -> None:
    """llama.cpp reads 2**32 - 1 as "draw your own seed" and would not say which: we draw it, and report it."""
    line = {"temperature": 1.0, "max_tokens": 8}
    random = ask(local, "smollm2-135m", "Write a line about the sea.", seed=2**32 - 1, **line)
    assert random.seed is not None and 0 <= random.seed < 2**31
    assert ask(local, "smollm2-135m", "Write a line about the sea.", seed=random.seed, **line).text == random.text


# -- provider-specific options and log-probabilities ------------------------------------------------------------------


def test_llama_cpp_options_reach_the_model_and_win_over_its_authors_settings(local, sent) -> None:
    ask(local, "gemma-3-270m", "Name a color.", max_tokens=4, options={"top_k": 1, "repeat_penalty": 1.3})
    (kwargs,) = sent
    assert (kwargs["top_k"], kwargs["repeat_penalty"]) == (1, 1.3)


def _check_distribution(entries: tuple, top: int) -> None:
    """Each position's alternatives: most likely first, at most *top*, probabilities that sum to at most 1;
    at temperature 0 the chosen token is the most likely one."""
    assert entries
    for entry in entries:
        probabilities = [math.exp(logprob) for _, logprob in entry.top]
        assert 1 <= len(entry.top) <= top
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
        assert (entry.token, entry.logprob) == pytest.approx(entry.top[0])


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma-3-270m"])
def test_local_top_logprobs_form_a_valid_distribution(local, model: str) -> None:
    completion = ask(local, model, "What is the capital of Japan?", temperature=0, max_tokens=8, top_logprobs=5)
    _check_distribution(completion.logprobs, 5)
    assert "".join(e.token for e in completion.logprobs).strip() == completion.text  # a stop sequence's tokens not


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma-3-270m"])
def test_streamed_local_logprobs_match_the_streamed_text(local, model: str) -> None:
    request = ChatRequest.build("What is the capital of Japan?", temperature=0, max_tokens=8, top_logprobs=3)

    async def final():
        return [chunk async for chunk in local.stream(model, request)][-1].completion

    completion = asyncio.run(final())
    _check_distribution(completion.logprobs, 3)
    assert "".join(e.token for e in completion.logprobs).strip() == completion.text
