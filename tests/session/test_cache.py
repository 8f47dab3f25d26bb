"""The response cache: keys, the value format (versioned JSON, checked on every read), TTL, the in-process
LRU in front of the joblib store, and folders others can write to or nobody can."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencode_lab import ChatRequest, ChatResult
from opencode_lab.core.params import NAMES, Options, Params
from opencode_lab.core.provider_routing import ProviderRouting
from opencode_lab.core.structured import Schema
from opencode_lab.core.tools import ToolCall
from opencode_lab.session.cache import ResponseCache, canonical_key, key_digest
from opencode_lab.session.cache_format import FORMAT, MIGRATIONS
from opencode_lab.session.cache_memory import OVERHEAD, Held, MemoryStore
from opencode_lab.session.cache_store import MAX_ENTRY_BYTES
from opencode_lab.session.records import cache_value

TEXT = st.text(min_size=1, max_size=40).filter(str.strip)


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    return ChatRequest.build(
        draw(TEXT),
        system=draw(st.none() | TEXT),
        temperature=draw(st.none() | st.floats(0, 2, allow_nan=False)),
        max_tokens=draw(st.none() | st.integers(1, 4096)),
        seed=draw(st.none() | st.integers(0, 2**31)),
        top_p=draw(st.none() | st.floats(0, 1, allow_nan=False)),
    )


@given(requests(), st.integers(0, 5))
def test_equal_requests_give_equal_keys(request: ChatRequest, sample: int) -> None:
    twin = ChatRequest(request.messages, request.model, Params(**vars(request.params)))
    assert canonical_key(request, ["m"], sample) == canonical_key(twin, ["m"], sample)


@settings(max_examples=200)
@given(
    requests(),
    st.sampled_from(["content", "model", "sample", "system", *NAMES]),
)
@pytest.mark.slow
def test_any_change_in_an_output_relevant_field_changes_the_key(request: ChatRequest, field: str) -> None:
    from dataclasses import replace

    from opencode_lab.core.types import Message

    base = canonical_key(request, ["m"], 0)
    models, sample, changed = ["m"], 0, request
    if field == "content":
        changed = replace(
            request, messages=(*request.messages[:-1], Message("user", request.messages[-1].content + "!"))
        )
    elif field in NAMES:
        changed = replace(request, params=replace(request.params, **{field: _another(request.params, field)}))
    elif field == "system":
        changed = replace(request, messages=(*request.messages, request.messages[-1]))
    elif field == "model":
        models = ["other"]
    else:
        sample = 1
    assert canonical_key(changed, models, sample) != base


def _another(params: Params, name: str) -> object:
    """A valid value for parameter *name* different from the one *params* holds."""
    current = getattr(params, name)
    return {
        "temperature": (current or 0.0) + 0.5,
        "max_tokens": (current or 0) + 1,
        "seed": (current or 0) + 1,
        "top_p": 0.5 if current != 0.5 else 0.25,
        "stop": ("END",) if current != ("END",) else ("STOP",),
        "schema": Schema.of({"type": "object"}) if current is None else None,
        "reasoning_effort": "high" if current != "high" else "low",
        "reasoning_budget": (current or 0) + 1,
        "logprobs": None if current else True,
        "top_logprobs": (current or 0) + 1,
        "options": Options([("top_k", "40")]) if current != Options([("top_k", "40")]) else Options(),
        "regions": ("eu-*",) if current != ("eu-*",) else ("us-*",),
        "provider_routing": ProviderRouting.of({"data_collection": "deny"}) if current is None else None,
    }[name]


def test_the_model_spec_as_typed_is_not_part_of_the_key() -> None:
    a = ChatRequest.build("hi", model="smollm2-135m")
    b = ChatRequest.build("hi", model="local/smollm2-135m")
    assert canonical_key(a, ["local/smollm2-135m"], 0) == canonical_key(b, ["local/smollm2-135m"], 0)


# -- values: what a call stores, as the session makes it ------------------------------------------------------


def value(text: str = "hello", **changes: Any) -> dict[str, Any]:
    """A stored answer exactly as a session stores one (`records.cache_value`)."""
    result = ChatResult(
        text=text,
        model="m",
        served_by="p/x",
        provider="p",
        finish_reason="stop",
        latency_s=0.25,
        input_tokens=3,
        output_tokens=5,
        cost_usd=0.5,
        cost_source="catalog",
        tool_calls=(ToolCall.parse("call-1", "lookup", '{"q": 1}'),),
    )
    return cache_value(result) | changes


def entry_path(folder: Path, key: str) -> Path:
    return folder / "responses" / "answers" / key_digest(key)[:32] / "output.json"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name.startswith("opencode_lab") and r.levelno >= logging.WARNING
    ]


def test_a_stored_response_comes_back(tmp_path: Path) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    assert cache.get("k") == value() | {"stored_at": cache.get("k")["stored_at"]}
    assert cache.get("other") is None
    assert ResponseCache("file", tmp_path).get("k")["text"] == "hello"  # another session reads it from disk
    assert cache.info()["entries"] == 1


def test_an_entry_is_versioned_json_naming_the_key_it_answers(tmp_path: Path) -> None:
    ResponseCache("file", tmp_path).put("k", value())
    entry = json.loads(entry_path(tmp_path, "k").read_bytes())
    assert entry["format"] == FORMAT and entry["key_sha256"] == key_digest("k")
    assert entry["text"] == "hello" and entry["tool_calls"][0]["arguments"] == {"q": 1}


def test_an_unknown_cost_survives_the_round_trip_as_unknown(tmp_path: Path) -> None:
    ResponseCache("file", tmp_path).put("k", value(cost_usd=math.nan))
    assert math.isnan(ResponseCache("file", tmp_path).get("k")["cost_usd"])


def test_the_seed_an_answer_was_sampled_with_comes_back_with_it(tmp_path: Path) -> None:
    ResponseCache("file", tmp_path).put("k", value(seed_used=2_147_483_647))
    assert ResponseCache("file", tmp_path).get("k")["seed_used"] == 2_147_483_647


def test_an_entry_from_before_seeds_were_kept_is_read_with_its_seed_unknown(tmp_path: Path) -> None:
    ResponseCache("file", tmp_path).put("k", value("old answer", seed_used=7))
    path = entry_path(tmp_path, "k")
    old = {name: field for name, field in json.loads(path.read_bytes()).items() if name != "seed_used"}
    path.write_bytes(_json(old | {"format": 1}))  # as format 1 wrote it
    answer = ResponseCache("file", tmp_path).get("k")
    assert answer is not None and (answer["text"], answer["seed_used"]) == ("old answer", None)


def test_an_entry_from_before_regions_were_kept_is_read_with_where_it_was_answered_unknown(tmp_path: Path) -> None:
    ResponseCache("file", tmp_path).put("k", value("old answer", region="eu-west-1", upstream_provider="Groq"))
    path = entry_path(tmp_path, "k")
    kept = {name: field for name, field in json.loads(path.read_bytes()).items()}
    old = {name: field for name, field in kept.items() if name not in ("region", "upstream_provider")}
    path.write_bytes(_json(old | {"format": 2}))  # as format 2 wrote it
    answer = ResponseCache("file", tmp_path).get("k")
    assert answer is not None and (answer["region"], answer["upstream_provider"]) == (None, None)


def test_token_details_and_logprobs_come_back_with_the_answer(tmp_path: Path) -> None:
    logprobs = [{"token": "hi", "logprob": -0.25, "top": [["hi", -0.25], ["yo", -1.5]]}]
    stored = value(reasoning_tokens=4, cached_input_tokens=2, cache_write_tokens=0, logprobs=logprobs)
    ResponseCache("file", tmp_path).put("k", stored)
    answer = ResponseCache("file", tmp_path).get("k")
    assert answer is not None and answer["logprobs"] == logprobs
    assert (answer["reasoning_tokens"], answer["cached_input_tokens"], answer["cache_write_tokens"]) == (4, 2, 0)


def test_an_entry_from_before_token_details_is_read_with_them_unknown(tmp_path: Path) -> None:
    ResponseCache("file", tmp_path).put("k", value("old answer"))
    path = entry_path(tmp_path, "k")
    newer = ("reasoning_tokens", "cached_input_tokens", "cache_write_tokens", "logprobs")
    old = {name: field for name, field in json.loads(path.read_bytes()).items() if name not in newer}
    path.write_bytes(_json(old | {"format": 3}))  # as format 3 wrote it
    answer = ResponseCache("file", tmp_path).get("k")
    assert answer is not None and answer["text"] == "old answer"
    assert [answer[name] for name in newer] == [None] * 4


@pytest.mark.parametrize(
    "bad", [[{"token": "hi", "logprob": 0.5, "top": []}], [{"token": 1, "logprob": -1, "top": []}], "not a list"]
)
def test_an_entry_with_impossible_logprobs_is_refused(tmp_path: Path, bad: list[Any]) -> None:
    ResponseCache("file", tmp_path).put("k", value())
    path = entry_path(tmp_path, "k")
    path.write_bytes(_json(json.loads(path.read_bytes()) | {"logprobs": bad}))
    assert ResponseCache("file", tmp_path).get("k") is None


@pytest.mark.parametrize("reader", ["same session", "another session"])
def test_an_entry_older_than_the_ttl_is_a_miss(tmp_path: Path, reader: str) -> None:
    cache = ResponseCache("file", tmp_path, ttl_ms=60_000)
    cache.put("old", value(stored_at=time.time() - 120))
    cache.put("new", value(stored_at=time.time() - 30))
    if reader == "another session":
        cache = ResponseCache("file", tmp_path, ttl_ms=60_000)
    assert cache.get("old") is None
    assert cache.get("new") is not None


# -- entries that must not be used: written on disk as a damaged or foreign-version cache would be -----------


def _json(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry).encode()


def _without(name: str) -> Callable[[dict[str, Any]], bytes]:
    return lambda entry: _json({k: v for k, v in entry.items() if k != name})


def _with(**fields: Any) -> Callable[[dict[str, Any]], bytes]:
    return lambda entry: _json(entry | fields)


DAMAGED: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "served_by missing": _without("served_by"),
    "text None": _with(text=None),
    "text 5": _with(text=5),
    "latency_s 'abc'": _with(latency_s="abc"),
    "latency_s NaN": _with(latency_s=math.nan),
    "provider empty": _with(provider=""),
    "input_tokens -1": _with(input_tokens=-1),
    "output_tokens true": _with(output_tokens=True),
    "cost_usd Infinity": _with(cost_usd=math.inf),
    "cost_usd negative": _with(cost_usd=-0.5),
    "stored_at a string": _with(stored_at="yesterday"),
    "seed_used 1.5": _with(seed_used=1.5),
    "seed_used '7'": _with(seed_used="7"),
    "seed_used true": _with(seed_used=True),
    "tool_calls a string": _with(tool_calls="lookup()"),
    "a tool call without a name": _with(tool_calls=[{"id": "c", "arguments": None, "raw_arguments": ""}]),
    "an unexpected field": _with(answer="42"),
    "no format": _without("format"),
    "format as a string": _with(format="1"),
    "format 0, which nothing migrates": _with(format=0),
    "another key's entry": _with(key_sha256="0" * 64),
    "a JSON list": lambda entry: _json([entry]),
    "not JSON": lambda entry: b"garbage",
    "truncated": lambda entry: _json(entry)[:40],
    "empty": lambda entry: b"",
    "invalid UTF-8": lambda entry: b'{"text": "\xff\xfe"}',
    "nested 100,000 deep": lambda entry: b"[" * 100_000 + b"]" * 100_000,
    "a pickle of the entry": lambda entry: pickle.dumps(entry),
}


def damage(path: Path, how: Callable[[dict[str, Any]], bytes]) -> None:
    path.write_bytes(how(json.loads(path.read_bytes())))


@pytest.mark.parametrize("how", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_entry_is_a_miss_with_one_warning_naming_it(
    tmp_path: Path, how: Callable[[dict[str, Any]], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    damage(entry_path(tmp_path, "k"), how)
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None  # the session that wrote it reads the file again: it changed
        assert ResponseCache("file", tmp_path).get("k") is None
    (warning,) = {w for w in warnings_of(caplog)}  # one per session, the same words
    assert str(entry_path(tmp_path, "k")) in warning and "treated as a miss" in warning
    cache.put("k", value("again"))  # the answer asked again replaces it
    assert ResponseCache("file", tmp_path).get("k")["text"] == "again"


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _link_to_another_entry(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent.parent / key_digest("other")[:32] / "output.json")


def _oversized(path: Path) -> None:
    os.truncate(path, MAX_ENTRY_BYTES + 1)  # sparse: nothing is written, and nothing may be read


@pytest.mark.parametrize(
    "replace", [_fifo, _directory, _link_to_another_entry, _oversized], ids=["fifo", "directory", "symlink", "huge"]
)
def test_an_entry_that_is_not_a_regular_file_of_sane_size_is_a_miss_and_never_blocks(
    tmp_path: Path, replace: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    cache.put("other", value("the other answer"))
    replace(entry_path(tmp_path, "k"))
    with caplog.at_level(logging.WARNING):
        assert ResponseCache("file", tmp_path).get("k") is None
    assert len(warnings_of(caplog)) == 1


def test_many_damaged_entries_give_one_warning_per_session(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = ResponseCache("file", tmp_path)
    for i in range(5):
        writer.put(f"k{i}", value())
        damage(entry_path(tmp_path, f"k{i}"), DAMAGED["text None"])
    reader = ResponseCache("file", tmp_path)
    with caplog.at_level(logging.WARNING):
        assert all(reader.get(f"k{i}") is None for i in range(5))
    assert len(warnings_of(caplog)) == 1


def test_an_entry_of_a_newer_format_is_a_miss_with_one_clear_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ResponseCache("file", tmp_path)
    for key in ("k1", "k2"):
        writer.put(key, value())
        damage(entry_path(tmp_path, key), _with(format=FORMAT + 1, confidence=0.9))
    reader = ResponseCache("file", tmp_path)
    with caplog.at_level(logging.WARNING):
        assert reader.get("k1") is None and reader.get("k2") is None
    (warning,) = warnings_of(caplog)
    assert "newer opencode_lab" in warning and f"format {FORMAT + 1}" in warning


def test_an_older_format_is_brought_forward_by_its_registered_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`MIGRATIONS` is where a format registers the step from the one before it (a stand-in for the step
    into the current format here): an older entry is read through it, not refused."""

    def rename_answer(entry: dict[str, Any]) -> dict[str, Any]:
        entry = dict(entry)
        entry["text"] = entry.pop("answer")
        return entry

    monkeypatch.setitem(MIGRATIONS, FORMAT - 1, rename_answer)
    ResponseCache("file", tmp_path).put("k", value("migrated"))
    path = entry_path(tmp_path, "k")
    old = json.loads(path.read_bytes())
    old["answer"] = old.pop("text")
    path.write_bytes(_json(old | {"format": FORMAT - 1}))
    assert ResponseCache("file", tmp_path).get("k")["text"] == "migrated"


def test_reading_an_entry_cannot_run_code(tmp_path: Path) -> None:
    """A pickle that runs code when loaded, written as an entry and where older versions kept their pickles
    (``output.pkl`` in joblib's layout), is never unpickled."""

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return os.mkdir, (str(tmp_path / "ran"),)

    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    entry_path(tmp_path, "k").write_bytes(pickle.dumps(Payload()))
    legacy = tmp_path / "responses" / "opencode_lab" / "session" / "cache" / "_stored" / ("0" * 32)
    legacy.mkdir(parents=True)
    (legacy / "output.pkl").write_bytes(pickle.dumps(Payload()))
    assert ResponseCache("file", tmp_path).get("k") is None
    assert not (tmp_path / "ran").exists()
    assert ResponseCache("file", tmp_path).info()["entries"] == 1  # the old pickle is not an entry


def test_an_answer_the_format_refuses_is_not_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache("file", tmp_path)
    with caplog.at_level(logging.WARNING):
        cache.put("k", value(input_tokens=-3))
    assert cache.get("k") is None and not entry_path(tmp_path, "k").exists()
    assert len(warnings_of(caplog)) == 1


# -- the in-process LRU in front of the disk ---------------------------------------------------------------


def test_the_lru_never_outlives_the_file_it_holds(tmp_path: Path) -> None:
    """Another session sharing the folder replaces or clears an entry: the next lookup here sees it."""
    here, there = ResponseCache("file", tmp_path), ResponseCache("file", tmp_path)
    here.put("k", value("first"))
    assert here.get("k")["text"] == "first"
    there.put("k", value("refreshed"))
    assert here.get("k")["text"] == "refreshed"
    there.clear()
    assert here.get("k") is None


def test_the_lru_drops_the_least_recently_used_answer() -> None:
    store = MemoryStore(entries=2)
    for digest in ("a", "b"):
        store.put(digest, Held(value(), None))
    assert store.get("a") is not None  # a is now the most recently used
    store.put("c", Held(value(), None))
    assert [store.get(d) is not None for d in "abc"] == [True, False, True]


def test_the_lru_is_bounded_by_the_size_of_its_answers() -> None:
    store = MemoryStore(size=3 * (OVERHEAD + 100))
    for digest in "abcd":
        store.put(digest, Held(value("x" * 100), None))
    assert store.entries() == 3 and store.get("a") is None


def test_a_cached_answer_needs_no_trip_to_the_loop(fault, fault_toml, make_lab) -> None:
    """chat() finds a cached answer on the calling thread: it comes back while the session's loop is busy."""
    lab = make_lab(fault_toml(fault))
    first = lab.chat("q", "m")
    busy, release = threading.Event(), threading.Event()

    def block() -> None:
        busy.set()
        release.wait()

    lab.loop.loop.call_soon_threadsafe(block)
    busy.wait()
    try:
        hit = lab.chat("q", "m")
    finally:
        release.set()
    assert hit.cached and hit.text == first.text and fault.count() == 1
    assert lab.results()["cached"].tolist() == [False, True]


def test_memory_mode_keeps_entries_for_the_process_only(tmp_path: Path) -> None:
    cache = ResponseCache("memory")
    cache.put("k", value())
    assert cache.get("k")["text"] == "hello"
    assert not (tmp_path / "responses").exists()


def test_off_mode_stores_nothing() -> None:
    cache = ResponseCache("off")
    cache.put("k", value())
    assert cache.get("k") is None and not cache.enabled


def test_clear_empties_the_cache(tmp_path: Path) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    cache.clear()
    assert cache.get("k") is None and ResponseCache("file", tmp_path).get("k") is None


# -- through chat() and compare(): a damaged entry is asked again, never an error or a wrong answer ----------


@pytest.mark.parametrize("via", ["chat", "compare"])
@pytest.mark.parametrize("how", ["served_by missing", "text None", "text 5", "latency_s 'abc'"])
def test_a_damaged_entry_is_asked_again_by_chat_and_compare(
    how: str, via: str, fault, fault_toml, make_lab, caplog: pytest.LogCaptureFixture
) -> None:
    toml = fault_toml(fault)
    first = make_lab(toml).chat("q", "m", temperature=0)
    (path,) = (make_lab(toml).settings.cache_dir / "responses").rglob("output.json")
    damage(path, DAMAGED[how])
    lab = make_lab(toml)  # a later session: nothing of the entry held in memory
    with caplog.at_level(logging.WARNING):
        if via == "chat":
            again = lab.chat("q", "m", temperature=0)
            cached, text = again.cached, again.text
        else:
            frame = lab.compare(["q"], "m", temperature=0, progress=False)
            cached, text = frame["cached"][0], frame["response"][0]
            assert frame["error_type"].isna().all()
    assert not cached and text == first.text and fault.count() == 2
    (warning,) = warnings_of(caplog)
    assert str(path) in warning
    assert make_lab(toml).chat("q", "m", temperature=0).cached  # the answer asked again was stored over it


def test_a_compare_answers_its_cached_rows_before_anything_is_sent(fault, make_lab) -> None:
    """Cached rows are looked up in one pass before the first request: they are free, so even a spent
    budget answers them and refuses only the rows it would have to pay for."""
    lab = make_lab(
        f'[providers.a]\nbase_url = "{fault.base_url}"\n'
        '[models.paid]\nprovider = "a"\nupstream = "x"\ninput_price = 10000.0\noutput_price = 10000.0\n'
    )
    lab.compare(["a", "b"], "paid", max_tokens=10, progress=False)
    frame = lab.compare(["a", "new", "b"], "paid", max_tokens=10, budget_usd=0.0, progress=False)
    assert frame["cached"].tolist() == [True, False, True]
    assert frame["error_type"].tolist()[1] == "budget_exceeded" and frame["response"][0] == "echo: a"
    assert fault.count() == 2


# -- folders others can write to, and folders that refuse writes -------------------------------------------


def test_a_folder_others_can_write_to_is_named_in_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ResponseCache("file", tmp_path).put("k", value())
    (tmp_path / "responses").chmod(0o777)
    with caplog.at_level(logging.WARNING):
        cache = ResponseCache("file", tmp_path)
        assert cache.get("k") is not None  # entries cannot run code: still served, after the warning
    (warning,) = warnings_of(caplog)
    assert f"{tmp_path / 'responses'} is writable by other users" in warning
    assert stat.S_IMODE((tmp_path / "responses").stat().st_mode) == 0o700  # and no longer


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user takes root")
def test_a_folder_of_another_user_is_named_in_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ResponseCache("file", tmp_path).put("k", value())
    os.chown(tmp_path / "responses", 65534, 65534)
    with caplog.at_level(logging.WARNING):
        ResponseCache("file", tmp_path).get("k")
    (warning,) = warnings_of(caplog)
    assert f"{tmp_path / 'responses'} belongs to another user (uid 65534)" in warning


def test_a_group_writable_umask_raises_no_false_alarm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With umask 002 (user private groups) the folders the cache makes are still owner-only."""
    old = os.umask(0o002)
    try:
        ResponseCache("file", tmp_path).put("k", value())
        with caplog.at_level(logging.WARNING):
            assert ResponseCache("file", tmp_path).get("k") is not None
    finally:
        os.umask(old)
    assert warnings_of(caplog) == []


def test_the_cache_folder_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Every entry lives under one 0700 folder: no other user can even reach the files."""
    (tmp_path / "responses").mkdir(mode=0o755)
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    assert stat.S_IMODE(os.stat(tmp_path / "responses").st_mode) == 0o700
    assert any(p.is_file() for p in (tmp_path / "responses").rglob("*"))


def test_answers_the_folder_refuses_to_store_are_kept_for_the_session_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file where the entries' folder should be: every write fails in the file system, for root too
    (the read-only mount itself is tested in tests/reliability/test_shared_cache.py)."""
    ResponseCache("file", tmp_path)
    (tmp_path / "responses" / "answers").rmdir()
    (tmp_path / "responses" / "answers").write_text("in the way")
    cache = ResponseCache("file", tmp_path)
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            cache.put(f"k{i}", value(f"answer {i}"))
    assert [cache.get(f"k{i}")["text"] for i in range(3)] == ["answer 0", "answer 1", "answer 2"]
    (warning,) = warnings_of(caplog)
    assert f"cannot store answers in the cache folder {tmp_path / 'responses'}" in warning
    assert ResponseCache("file", tmp_path).get("k0") is None  # kept for this session only
