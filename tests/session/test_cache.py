"""The joblib.Memory response cache: keys, TTL, corruption, samples, privacy."""

from __future__ import annotations

import logging
import os
import stat
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencode_lab import ChatRequest
from opencode_lab.core.params import NAMES, Params
from opencode_lab.core.structured import Schema
from opencode_lab.session.cache import ResponseCache, canonical_key

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
    }[name]


def test_the_model_spec_as_typed_is_not_part_of_the_key() -> None:
    a = ChatRequest.build("hi", model="smollm2-135m")
    b = ChatRequest.build("hi", model="local/smollm2-135m")
    assert canonical_key(a, ["local/smollm2-135m"], 0) == canonical_key(b, ["local/smollm2-135m"], 0)


def value(text: str = "hello") -> dict:
    return {"text": text, "served_by": "p/x", "provider": "p", "cost_usd": 0.5}


def test_a_stored_response_comes_back(tmp_path) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    assert cache.get("k") == value()
    assert cache.get("other") is None
    assert cache.info()["entries"] == 1


@pytest.mark.slow
def test_an_expired_entry_is_a_miss(tmp_path) -> None:
    cache = ResponseCache("file", tmp_path, ttl_ms=200)
    cache.put("k", value())
    assert cache.get("k") is not None
    time.sleep(0.3)
    assert cache.get("k") is None


def test_a_corrupt_entry_is_a_miss_with_a_warning(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    (output,) = list((tmp_path / "responses").rglob("output.pkl"))
    output.write_bytes(output.read_bytes()[:10])
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None
    assert caplog.records, "a corrupt entry must be reported"
    cache.put("k", value("again"))
    assert cache.get("k")["text"] == "again"


def test_the_cache_folder_is_readable_by_its_owner_only(tmp_path) -> None:
    """Every entry lives under one 0700 folder: no other user can even reach the files."""
    (tmp_path / "responses").mkdir(mode=0o755)
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    assert stat.S_IMODE(os.stat(tmp_path / "responses").st_mode) == 0o700
    assert any(p.is_file() for p in (tmp_path / "responses").rglob("*"))


def test_memory_mode_keeps_entries_for_the_process_only(tmp_path) -> None:
    cache = ResponseCache("memory")
    cache.put("k", value())
    assert cache.get("k") == value()
    assert not (tmp_path / "responses").exists()


def test_off_mode_stores_nothing() -> None:
    cache = ResponseCache("off")
    cache.put("k", value())
    assert cache.get("k") is None and not cache.enabled


def test_clear_empties_the_cache(tmp_path) -> None:
    cache = ResponseCache("file", tmp_path)
    cache.put("k", value())
    cache.clear()
    assert cache.get("k") is None
