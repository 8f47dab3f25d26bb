"""Numbers a researcher can trust: answers cached by what answered, runs bound to their specification,
samples that differ, measurements that survive the cache, unknowns that stay unknown."""

from __future__ import annotations

import pandas as pd
import pytest

from opencode_lab import InvalidRequestError, Lab, RunMismatchError


def _toml(fault, upstream: str = "m1", extra: str = "") -> str:
    return (
        f'[providers.f]\nbase_url = "{fault.base_url}"\n'
        f'[models.smol]\nprovider = "f"\nupstream = "{upstream}"\n{extra}'
    )


def test_re_pointing_a_model_name_is_a_cache_miss_and_the_new_model_answers(fault, make_lab) -> None:
    first = make_lab(_toml(fault, "m1")).chat("q", "smol")
    second = make_lab(_toml(fault, "m2")).chat("q", "smol")  # same cache folder, the name now means m2
    assert (first.served_by, second.served_by) == ("f/m1", "f/m2")
    assert not second.cached
    assert [e["model"] for e in fault.log] == ["m1", "m2"]
    assert make_lab(_toml(fault, "m2")).chat("q", "smol").cached  # and m2's own answer is reused


def test_a_named_run_refuses_another_specification_and_names_the_difference(fault, make_lab) -> None:
    lab = make_lab(_toml(fault))
    lab.compare(["a", "b"], "smol", run="exp", temperature=0.0, progress=False)
    sent = fault.count()
    with pytest.raises(RunMismatchError, match=r"params: \{'temperature': 0.0\} -> \{'temperature': 0.7\}"):
        lab.compare(["a", "b"], "smol", run="exp", temperature=0.7, progress=False)
    with pytest.raises(RunMismatchError, match="system: None -> 'be brief'"):
        lab.compare(["a", "b"], "smol", run="exp", temperature=0.0, system="be brief", progress=False)
    with pytest.raises(RunMismatchError, match="prompts_sha256"):
        lab.compare(["a", "c"], "smol", run="exp", temperature=0.0, progress=False)
    assert fault.count() == sent  # nothing was sent by a refused run


def test_resume_new_starts_a_fresh_run_and_keeps_the_old_one(fault, make_lab) -> None:
    lab = make_lab(_toml(fault, extra='[cache]\nmode = "off"\n'))
    old = lab.compare(["a"], "smol", run="exp", temperature=0.0, progress=False)
    new = lab.compare(["a"], "smol", run="exp", temperature=0.7, resume="new", progress=False)
    assert new.run_id[0] != old.run_id[0]
    assert lab.load_run("exp").run_id[0] == new.run_id[0]
    assert lab.load_run(f"exp@{old.run_id[0]}").run_id[0] == old.run_id[0]
    with pytest.raises(InvalidRequestError, match="resume must be 'auto'"):
        lab.compare(["a"], "smol", run="exp", resume="yes", progress=False)


def test_the_same_specification_resumes_without_sending(fault, make_lab) -> None:
    lab = make_lab(_toml(fault))
    lab.compare(["a", "b"], "smol", run="exp", temperature=0.0, progress=False)
    sent = fault.count()
    again = lab.compare(["a", "b"], "smol", run="exp", temperature=0.0, progress=False)
    assert fault.count() == sent and again.error_type.isna().all()


def test_samples_of_a_seeded_request_get_their_own_seeds_reproducibly(fault, make_lab) -> None:
    lab = make_lab(_toml(fault, extra='[cache]\nmode = "off"\n'))
    lab.compare(["q"], "smol", n=4, temperature=1.0, seed=123, progress=False)
    lab.compare(["q"], "smol", n=4, temperature=1.0, seed=123, progress=False)
    seeds = [e["sampling"]["seed"] for e in fault.log]  # in arrival order: the four samples are concurrent
    assert 123 in seeds[:4]  # sample 0 asks what chat(seed=123) asks
    assert len(set(seeds[:4])) == 4 and sorted(seeds[:4]) == sorted(seeds[4:])


def test_a_remote_row_records_the_seed_it_was_sent_and_none_when_it_was_sent_none(fault, make_lab) -> None:
    """A remote server samples with its own randomness when no seed is sent: none is drawn for it (see
    `HTTPProvider.seed`), so its rows claim no seed, and with one, the per-sample seeds that went out."""
    lab = make_lab(_toml(fault, extra='[cache]\nmode = "off"\n'))
    seeded = lab.compare(["q"], "smol", n=3, temperature=1.0, seed=123, progress=False)
    assert sorted(seeded.seed_used) == sorted(e["sampling"]["seed"] for e in fault.log)
    unseeded = lab.compare(["q"], "smol", n=2, temperature=1.0, progress=False)
    assert unseeded.seed_used.isna().all() and all("seed" not in e["sampling"] for e in fault.log[3:])
    logged = lab.load_run(seeded.run_id[0]).sort_values("sample")
    assert list(logged.seed_used) == list(seeded.sort_values("sample").seed_used)  # the run log keeps them


def test_a_cached_row_reports_the_original_measurements(fault, make_lab) -> None:
    fault.configure(latency_s=0.05, cost_per_token=0.001)
    lab = make_lab(_toml(fault, extra='input_price = 1.0\noutput_price = 1.0\n'))
    first = lab.compare(["a", "b"], "smol", progress=False)
    again = lab.compare(["a", "b"], "smol", progress=False)
    assert again.cached.all() and not first.cached.any()
    pd.testing.assert_series_equal(again.latency_s, first.latency_s)
    pd.testing.assert_series_equal(again.output_tokens, first.output_tokens)
    assert (again.latency_s >= 0.05).all()  # the model's time, not the cache lookup's
    assert (again.cost_usd == 0).all()
    pd.testing.assert_series_equal(again.cost_saved_usd, first.cost_usd, check_names=False)


def test_time_to_first_token_exists_only_for_streamed_answers(fault, make_lab) -> None:
    lab = make_lab(_toml(fault))
    assert lab.chat("whole", "smol", cache=False).ttft_s is None
    streamed = list(lab.stream_events("streamed", "smol", cache=False))[-1]
    assert streamed.ttft_s is not None and streamed.ttft_s <= streamed.latency_s


def test_tokens_a_stream_did_not_report_are_unknown_not_zero(fault, make_lab) -> None:
    fault.configure(stream_usage=False)  # as llama.cpp's server, which ignores stream_options
    lab = make_lab(_toml(fault))
    result = list(lab.stream_events("count me", "smol", cache=False))[-1]
    assert (result.input_tokens, result.output_tokens) == (None, None)
    assert "?→? tok" in result.footer() and "cost unknown" in result.footer()
    row = lab.attempts().iloc[-1]
    assert pd.isna(row.input_tokens) and pd.isna(row.output_tokens)


def test_a_cache_hit_of_an_answer_whose_cost_was_unknown_says_it_saved_an_unknown_amount(fault, make_lab) -> None:
    lab = make_lab(_toml(fault))
    cold, warm = lab.chat("q", "smol"), lab.chat("q", "smol")
    assert "cost unknown" in cold.footer()
    assert warm.cached and "$0 (cache saved unknown)" in warm.footer()


def test_a_cache_hits_footer_gives_the_lookup_time_and_the_original_calls_time_apart(fault, make_lab) -> None:
    fault.configure(latency_s=0.3)
    lab = make_lab(_toml(fault))
    cold, warm = lab.chat("slow", "smol"), lab.chat("slow", "smol")
    assert warm.lookup_s is not None and warm.latency_s == cold.latency_s
    assert f"from the cache in {warm.lookup_s:.2f}s, first answered in {cold.latency_s:.2f}s" in warm.footer()
    assert f" · {cold.latency_s:.2f}s · " in cold.footer() and cold.lookup_s is None


def test_a_budget_with_an_unknown_price_is_refused_before_sending(fault, make_lab) -> None:
    lab = make_lab(_toml(fault))
    with pytest.raises(InvalidRequestError, match="budget_usd needs prices, and f/m1 has no known price"):
        lab.compare(["a"], "smol", budget_usd=1.0, progress=False)
    assert fault.count() == 0


def test_a_budget_estimates_with_max_tokens_or_the_output_seen_so_far(fault, make_lab) -> None:
    """A 2-token answer priced at $1 per token: the budget must not assume 512 output tokens."""
    lab = make_lab(_toml(fault, extra="input_price = 0.0\noutput_price = 1000000.0\n"))
    frame = lab.compare(["one two"] * 4, "smol", budget_usd=20.0, concurrency=1, cache=False, progress=False)
    assert frame.error_type.isna().all()  # 4 answers of 3 words ("echo: one two") cost $12
    capped = lab.compare(["a b"] * 3, "smol", budget_usd=20.0, max_tokens=8, cache=False, progress=False)
    assert list(capped.error_type.fillna("ok")) == ["ok", "ok", "budget_exceeded"]  # 8 each would pass 20 at #3


def test_lab_identities_name_the_server_and_model(fault, make_lab) -> None:
    lab: Lab = make_lab(_toml(fault))
    assert lab.block_on(lab.aidentities("smol")) == [[f"{fault.base_url}|m1"]]


@pytest.mark.llama
@pytest.mark.timeout(300)
def test_seeded_samples_of_smollm2_differ_and_a_rerun_repeats_them(monkeypatch) -> None:
    monkeypatch.setenv("OC_CACHE_MODE", "off")
    prompts = ["Name a color.", "Name an animal.", "Name a city.", "Name a fruit.", "Name a sport."]
    with Lab.from_env() as lab:
        ask = {"n": 4, "temperature": 1.0, "seed": 123, "max_tokens": 12, "progress": False}
        first = lab.compare(prompts, "local/smollm2-135m", **ask)
        again = lab.compare(prompts, "local/smollm2-135m", **ask)
    distinct = first.groupby("prompt_id").response.nunique()
    assert (distinct > 1).sum() >= 4, distinct.to_dict()  # most prompts get more than one answer
    assert list(again.response) == list(first.response)


@pytest.mark.llama
@pytest.mark.timeout(300)
def test_unseeded_samples_keep_their_drawn_seeds_in_the_cache_and_the_run_log_and_replay_by_them() -> None:
    """Without a seed each sample draws one the first time it is asked: a warm rerun replays the samples and
    their seeds, a rerun without the cache draws new ones, and any row's seed asks for its answer again."""
    prompts = ["Name a color.", "Name an animal."]
    ask = {"n": 3, "temperature": 1.0, "max_tokens": 8, "progress": False}
    with Lab.from_env() as lab:
        first = lab.compare(prompts, "local/smollm2-135m", **ask)
        warm = lab.compare(prompts, "local/smollm2-135m", **ask)
        cold = lab.compare(prompts, "local/smollm2-135m", cache=False, **ask)
        logged = lab.load_run(first.run_id[0]).sort_values(["prompt_id", "sample"])
        row = first.iloc[4]
        replayed = lab.chat(row.prompt, "local/smollm2-135m", temperature=1.0, max_tokens=8, seed=int(row.seed_used),
                            cache=False)  # fmt: skip
    assert first.seed_used.notna().all() and first.seed_used.nunique() == 6
    assert warm.cached.all() and list(warm.seed_used) == list(first.seed_used)
    assert list(warm.response) == list(first.response)
    assert set(cold.seed_used).isdisjoint(first.seed_used)
    assert list(logged.seed_used) == list(first.sort_values(["prompt_id", "sample"]).seed_used)
    assert (replayed.text, replayed.seed_used) == (row.response, row.seed_used)
