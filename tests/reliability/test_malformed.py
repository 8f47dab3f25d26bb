"""Every misbehaviour of a server is one of our errors, through the whole Lab.

A fault server's ``raw`` outcome serves each hostile response byte for byte (status,
headers, body; JSON for a plain call, SSE for a stream).  ``chat`` and ``stream``
must raise a `LabError` of the declared type, and ``compare`` must give that model
an error row while the healthy model's row is intact.  Further down: streams that
finish and then hang, bodies that trickle, catalogs with impossible numbers and
model files that are not models.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from opencode_lab import LabError, StreamInterruptedError
from opencode_lab.core.errors import error_type_of
from opencode_lab.providers.http import MAX_BODY_BYTES

INF, NAN = float("inf"), float("nan")
DEEP = "[" * 100_000 + "]" * 100_000
MB = 1 << 20

TOML = """
[providers.bad]
base_url = "{bad}"

[providers.good]
base_url = "{good}"

[models.bad]
provider = "bad"
upstream = "fault-model"

[models.good]
provider = "good"
upstream = "fault-model"

[lab]
max_retries = {max_retries}
timeout_s = {timeout_s}
deadline_s = {deadline_s}
"""


def plain(**over: Any) -> str:
    """A non-streamed answer ("hi"), with some fields replaced."""
    answer = {
        "id": "raw-1",
        "model": "fault-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
    return json.dumps({**answer, **over})


def message(**fields: Any) -> str:
    return plain(choices=[{"index": 0, "message": {"role": "assistant", **fields}, "finish_reason": "stop"}])


def sse(*chunks: Any, done: bool = True) -> str:
    """An SSE body of *chunks* (objects, or raw strings sent as they are), then ``[DONE]``."""
    lines = [c if isinstance(c, str) else json.dumps({"model": "fault-model", **c}) for c in chunks]
    return "".join(f"data: {line}\n\n" for line in lines) + ("data: [DONE]\n\n" if done else "")


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


@dataclass(frozen=True)
class Case:
    plain: str
    stream: str
    error_type: str = "malformed_response"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    repeat: int = 1
    hang: bool = False
    streamed: str | None = None  # the text the stream delivers before it breaks: the error's partial_text


def usage_case(**usage: Any) -> Case:
    chunks = sse(delta(content="hi"), delta("stop"), {"choices": [], "usage": usage})
    return Case(plain(usage=usage), chunks, streamed="hi")


def content_case(content: Any) -> Case:
    return Case(message(content=content), sse(delta(content=content), delta("stop")))


CASES = {
    "gzip_header_on_a_body_that_is_not_gzip": Case(
        plain(), sse(delta(content="hi"), delta("stop")), headers={"Content-Encoding": "gzip"}
    ),
    "usage_infinity": usage_case(prompt_tokens=INF, completion_tokens=1),
    "usage_nan": usage_case(prompt_tokens=1, completion_tokens=NAN),
    "usage_negative": usage_case(prompt_tokens=-3, completion_tokens=1),
    "usage_string": usage_case(prompt_tokens="12", completion_tokens=1),
    "usage_fractional": usage_case(prompt_tokens=1.5, completion_tokens=1),
    "cost_infinity": usage_case(prompt_tokens=1, completion_tokens=1, cost=INF),
    "usage_not_an_object": Case(
        plain(usage="lots"), sse(delta(content="hi"), {"choices": [], "usage": [1, 2]}), streamed="hi"
    ),
    "json_nested_100000_deep": Case(DEEP, sse(DEEP)),
    "json_array_not_object": Case("[1, 2]", sse("[1, 2]")),
    "choices_a_string": Case(plain(choices="hi"), sse({"choices": "hi"})),
    "choices_an_int": Case(plain(choices=5), sse({"choices": 5})),
    "choice_a_string": Case(plain(choices=["hi"]), sse({"choices": ["hi"]})),
    "message_or_delta_a_string": Case(
        plain(choices=[{"index": 0, "message": "hi", "finish_reason": "stop"}]),
        sse({"choices": [{"index": 0, "delta": "hi", "finish_reason": None}]}),
    ),
    "content_an_int": content_case(42),
    "content_a_dict": content_case({"text": "hi"}),
    "content_parts_not_text": content_case([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]),
    "content_parts_not_objects": content_case(["hi"]),
    "finish_reason_an_int": Case(
        plain(choices=[{"index": 0, "message": {"content": "hi"}, "finish_reason": 1}]),
        sse(delta(content="hi"), {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]}),
        streamed="hi",
    ),
    "redirect_3xx": Case(
        "moved", "moved", "provider_error", status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"}
    ),
    "error_object_with_code_400_in_a_200": Case(
        json.dumps({"error": {"message": "invalid temperature", "code": 400}}),
        sse({"error": {"message": "invalid temperature", "code": 400}}),
        "bad_request",
    ),
    "body_over_the_cap": Case("x" * MB, "x" * MB, repeat=MAX_BODY_BYTES // MB + 1),
    "declared_length_over_the_cap": Case(
        plain(), sse(delta(content="hi")), headers={"Content-Length": str(MAX_BODY_BYTES + 1)}, hang=True
    ),
}


@pytest.fixture
def servers(faults):
    """(bad, good): the bad one answers every chat with its scripted raw response."""
    bad, good = faults[0], faults[1]
    bad.configure(mix={"raw": 1.0}, hang_s=10.0)
    return bad, good


def build(make_lab, servers, *, max_retries: int = 0, timeout_s: float = 10, deadline_s: float = 30):
    """A Lab with models ``bad`` and ``good`` on the two servers."""
    bad, good = servers
    limits = {"max_retries": max_retries, "timeout_s": timeout_s, "deadline_s": deadline_s}
    return make_lab(TOML, bad=bad.base_url, good=good.base_url, **{k: str(v) for k, v in limits.items()})


@pytest.fixture
def lab(make_lab, servers):
    return build(make_lab, servers)


def script(server, case: Case, *, stream: bool) -> None:
    body = case.stream if stream else case.plain
    raw = {"status": case.status, "headers": case.headers, "body": body, "repeat": case.repeat, "hang": case.hang}
    server.configure(raw=raw)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_chat_raises_the_declared_lab_error(lab, servers, case: Case) -> None:
    script(servers[0], case, stream=False)
    with pytest.raises(LabError) as info:
        lab.chat("q", "bad", cache=False)
    assert error_type_of(info.value) == case.error_type, info.value


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_stream_raises_the_declared_lab_error_keeping_the_text_that_came(lab, servers, case: Case) -> None:
    script(servers[0], case, stream=True)
    shown: list[str] = []
    with pytest.raises(LabError) as info:
        shown.extend(lab.stream("q", "bad", cache=False))
    assert error_type_of(info.value) == case.error_type, info.value
    error = getattr(info.value, "last", None) or info.value
    assert getattr(error, "partial_text", None) == case.streamed
    assert "".join(shown) == (case.streamed or "")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_compare_gives_an_error_row_and_keeps_the_healthy_row(lab, servers, case: Case) -> None:
    script(servers[0], case, stream=False)
    frame = lab.compare(["q1", "q2"], ["bad", "good"], progress=False, cache=False).set_index(["model", "prompt"])
    assert set(frame.loc["bad", "error_type"]) == {case.error_type}
    assert frame.loc["good", "response"].tolist() == ["echo: q1", "echo: q2"]
    assert frame.loc["good", "error_type"].isna().all()


def test_content_given_as_text_parts_is_joined_into_the_answer(lab, servers) -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    script(servers[0], Case(message(content=parts), sse(delta(content=parts), delta("stop"))), stream=False)
    assert lab.chat("q", "bad", cache=False).text == "Hello, world"
    script(servers[0], Case(message(content=parts), sse(delta(content=parts), delta("stop"))), stream=True)
    assert "".join(lab.stream("q", "bad", cache=False)) == "Hello, world"


def test_a_redirect_is_not_retried_and_names_where_it_points(make_lab, servers) -> None:
    bad = servers[0]
    lab = build(make_lab, servers, max_retries=3)
    script(bad, CASES["redirect_3xx"], stream=False)
    with pytest.raises(LabError, match=r"redirected to http://127\.0\.0\.1:9/elsewhere") as info:
        lab.chat("q", "bad", cache=False)
    assert len(info.value.attempts) == 1 and bad.count("raw") == 1


def test_an_error_object_with_code_400_is_not_retried(make_lab, servers) -> None:
    bad, good = servers
    lab = build(make_lab, servers, max_retries=3)
    script(bad, CASES["error_object_with_code_400_in_a_200"], stream=False)
    with pytest.raises(LabError, match="invalid temperature"):
        lab.chat("q", ["bad", "good"], cache=False)
    assert bad.count("raw") == 1 and good.count() == 0  # a bad request fails everywhere: no failover either


# -- streams that stop without ending, bodies that never stop -----------------------------------------------------


@pytest.mark.slow
def test_a_stream_that_finished_and_then_hangs_returns_its_answer(lab, servers) -> None:
    body = sse(delta(content="all "), delta(content="done"), delta("stop"), done=False)
    servers[0].configure(raw={"body": body, "hang": True})
    started = time.monotonic()
    events = list(lab.stream_events("q", "bad", cache=False))
    assert "".join(e for e in events if isinstance(e, str)) == "all done"
    assert events[-1].finish_reason == "stop"
    assert time.monotonic() - started < 8  # not the 10 s timeout, let alone the 30 s deadline


def test_a_stream_that_finished_and_then_dropped_the_connection_returns_its_answer(lab, servers) -> None:
    servers[0].configure(queue=["cut_before_end"])  # the whole answer and its finish, then no [DONE]
    events = list(lab.stream_events("one two", "bad", cache=False))
    assert "".join(e for e in events if isinstance(e, str)) == "echo: one two"
    assert events[-1].finish_reason == "stop"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", plain()), ("text/html", "<html><body>Please sign in</body></html>")],
    ids=["json", "html"],
)
def test_a_reply_to_a_stream_that_is_no_event_stream_is_one_clear_attempt(
    make_lab, servers, content_type: str, body: str
) -> None:
    bad = servers[0]
    lab = build(make_lab, servers, max_retries=3)
    script(bad, Case(body, body, headers={"Content-Type": content_type}), stream=True)
    with pytest.raises(LabError, match=f"the server answered {content_type}, not text/event-stream") as info:
        "".join(lab.stream("q", "bad", cache=False))
    assert error_type_of(info.value) == "provider_error" and bad.count("raw") == 1


@pytest.mark.parametrize(("stream", "trickle"), [(False, " "), (True, ": keep-alive\n")], ids=["plain", "stream"])
@pytest.mark.slow
def test_a_trickling_body_gets_timeout_s_not_the_deadline(make_lab, servers, stream: bool, trickle: str) -> None:
    bad = servers[0]
    lab = build(make_lab, servers, timeout_s=1, deadline_s=60)
    bad.configure(raw={"trickle": trickle, "trickle_s": 0.02}, hang_s=60)
    started = time.monotonic()
    with pytest.raises(LabError) as info:
        "".join(lab.stream("q", "bad", cache=False)) if stream else lab.chat("q", "bad", cache=False)
    assert error_type_of(info.value) == "timeout"
    assert time.monotonic() - started < 20  # one attempt of about timeout_s, nowhere near the 60 s deadline


@pytest.mark.slow
def test_a_stream_that_trickles_after_some_text_keeps_the_text(make_lab, servers) -> None:
    bad = servers[0]
    lab = build(make_lab, servers, timeout_s=1, deadline_s=60)
    bad.configure(
        raw={"body": sse(delta(content="a partial answer."), done=False), "trickle": ": ping\n", "trickle_s": 0.02}
    )
    shown: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        shown.extend(lab.stream("q", "bad", cache=False))
    assert shown == ["a partial answer."]
    assert info.value.partial_text == "a partial answer."


# -- catalogs and model files --------------------------------------------------------------------------------------


def test_an_openrouter_catalog_with_infinite_numbers_drops_them(make_lab, fault, monkeypatch) -> None:
    fault.configure(
        models=[
            {"id": "fault-model", "context_length": INF, "pricing": {"prompt": "Infinity", "completion": "NaN"}},
            {"id": "other", "context_length": 8192, "pricing": {"prompt": "0.000001", "completion": "0.000002"}},
        ]
    )
    monkeypatch.setenv("OPENROUTER_BASE_URL", fault.base_url)
    monkeypatch.setenv("OPENROUTER_MODEL_LIST", "fault-model")
    lab = make_lab("")
    assert lab.chat("hello", "openrouter/fault-model", cache=False).text == "echo: hello"
    models = lab.models()
    assert pd.isna(models.loc["openrouter/fault-model", "context_length"])
    assert models.loc["openrouter/other", "context_length"] == 8192


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is not a model at all", "is not a GGUF model file"),
        (b"GGUF\x03\x00\x00\x00" + b"\x7f" * 4000, "could not load"),
    ],
    ids=["not_gguf", "gguf_magic_then_garbage"],
)
def test_a_garbage_gguf_file_is_a_clear_error_naming_it(
    make_lab, fault, tmp_path: Path, content: bytes, problem: str
) -> None:
    model = tmp_path / "junk.gguf"
    model.write_bytes(content)
    lab = make_lab(
        f'[providers.good]\nbase_url = "{fault.base_url}"\n\n'
        '[models.good]\nprovider = "good"\nupstream = "fault-model"\n\n'
        f'[models.junk]\nprovider = "local"\npath = "{model}"\n'
    )
    with pytest.raises(LabError, match=problem) as info:
        lab.chat("q", "junk", cache=False)
    assert str(model) in str(info.value) and error_type_of(info.value) == "model_unavailable"
    frame = lab.compare(["q"], ["junk", "good"], progress=False, cache=False).set_index("model")
    assert frame.loc["junk", "error_type"] == "model_unavailable"
    assert frame.loc["good", "response"] == "echo: q"
