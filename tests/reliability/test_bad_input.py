"""Bad input: a clear, typed error before any request is sent, never a traceback from deep inside.

Each refused call leaves the fault server's request count at 0, raises a `LabError`
subclass whose message names the problem, and the raise happens in opencode_lab
(not in httpx or another library).  Providers that answer nonsense (a 200 without
choices, a non-JSON body, invalid UTF-8 in a stream) become typed error rows.
The last part states the request canonicaliser and cache key as properties.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opencode_lab import (
    ChatRequest,
    ConfigError,
    ContextWindowError,
    InvalidRequestError,
    Lab,
    LabError,
    ModelNotFoundError,
    ratings,
)
from opencode_lab.core.errors import error_type_of
from opencode_lab.session.cache import canonical_key

from .conftest import REPO, child_env

TOML = """
[providers.a]
base_url = "{url}"
models = ["x"]

[models.small]
provider = "a"
upstream = "small-model"
context_length = 64

[models.big]
provider = "a"
upstream = "big-model"
context_length = 100000

[aliases]
fits = ["small", "big"]

[lab]
max_retries = 0
breaker_failures = 1000
"""
LONG = "word " * 200  # ~290 estimated tokens: over small's 64, well within big's window
FRAME = pd.DataFrame({"question": ["what is 2+2"], "topic": ["math"]})


def tool(parameters: Any) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "lookup", "parameters": parameters}}]


def self_containing() -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    parameters["properties"]["again"] = parameters
    return parameters


BATTLES = pd.DataFrame(
    {"model_a": ["m", "n"], "model_b": ["n", "m"], "winner": ["m", "n"], "pair": [[0], [1]]}
)
TYPO = tool({"type": "object", "properties": {"q": {"type": "str"}}})
NAN = tool({"type": "object", "properties": {"n": {"type": "number", "maximum": float("nan")}}})


@pytest.fixture
def lab(fault, make_lab) -> Lab:
    return make_lab(TOML, url=fault.base_url)


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Lab], Any]
    error: type[LabError]
    says: tuple[str, ...]  # regexes the message must match (case-insensitive)


CASES = [
    Case("empty prompt", lambda lab: lab.chat("", "a/x"), InvalidRequestError, ("prompt", "empty")),
    Case("blank prompt", lambda lab: lab.chat("  \n\t", "a/x"), InvalidRequestError, ("prompt", "empty")),
    Case(
        "empty user message",
        lambda lab: lab.chat([{"role": "user", "content": ""}], "a/x"),
        InvalidRequestError,
        ("user message",),
    ),
    Case("empty prompt in a stream", lambda lab: list(lab.stream("", "a/x")), InvalidRequestError, ("empty",)),
    Case(
        "empty prompt among compare rows",
        lambda lab: lab.compare(["fine", " "], "a/x", progress=False),
        InvalidRequestError,
        ("prompt 1", "empty"),
    ),
    Case(
        "prompt over the context window",
        lambda lab: lab.chat(LONG, "small"),
        ContextWindowError,
        ("small", r"\b64\b", "tokens"),
    ),
    Case(
        "prompt over the context window in a stream",
        lambda lab: list(lab.stream(LONG, "small")),
        ContextWindowError,
        ("small", r"\b64\b"),
    ),
    Case("unknown model", lambda lab: lab.chat("hi", "a/xx"), ModelNotFoundError, ("'a/xx'", "did you mean", "a/x")),
    Case(
        "unknown model among compare models",
        lambda lab: lab.compare(["hi"], ["a/x", "smal"], progress=False),
        ModelNotFoundError,
        ("'smal'", "did you mean", "small"),
    ),
    Case(
        "temperature -1",
        lambda lab: lab.chat("hi", "a/x", temperature=-1),
        InvalidRequestError,
        ("temperature", "-1"),
    ),
    Case(
        "temperature as a string",
        lambda lab: lab.chat("hi", "a/x", temperature="0.7"),
        InvalidRequestError,
        ("temperature", "number", "'0.7'"),
    ),
    Case(
        "temperature -1 in compare",
        lambda lab: lab.compare(["hi"], "a/x", temperature=-1, progress=False),
        InvalidRequestError,
        ("temperature",),
    ),
    Case("max_tokens 0", lambda lab: lab.chat("hi", "a/x", max_tokens=0), InvalidRequestError, ("max_tokens", "0")),
    Case(
        "max_tokens 0 in compare",
        lambda lab: lab.compare(["hi"], "a/x", max_tokens=0, progress=False),
        InvalidRequestError,
        ("max_tokens",),
    ),
    Case("n=0", lambda lab: lab.compare(["hi"], "a/x", n=0, progress=False), InvalidRequestError, (r"\bn\b", "0")),
    Case(
        "prompts DataFrame without a prompt column",
        lambda lab: lab.compare(FRAME, "a/x", progress=False),
        InvalidRequestError,
        ("'prompt' column", "question", "template"),
    ),
    Case(
        "template field that is not a column",
        lambda lab: lab.compare(FRAME, "a/x", template="About {subject}: {question}", progress=False),
        InvalidRequestError,
        (r"\{subject\}", "not a column", "question"),
    ),
    Case(
        "lone surrogate in a prompt",
        lambda lab: lab.chat("broken \ud800 text", "a/x"),
        InvalidRequestError,
        ("utf-8|surrogate|unicode",),
    ),
    Case(
        "lone surrogate among compare rows",
        lambda lab: lab.compare(["fine", "broken \udc80 text"], "a/x", progress=False),
        InvalidRequestError,
        ("utf-8|surrogate|unicode",),
    ),
    Case(
        "a typo in a tool's parameter schema",
        lambda lab: lab.chat("hi", "a/x", tools=TYPO),
        InvalidRequestError,
        ("tool 'lookup' parameters", "not a valid JSON Schema", "'str'"),
    ),
    Case(
        "a typo in a tool's parameter schema in compare",
        lambda lab: lab.compare(["hi"], "a/x", tools=TYPO, progress=False),
        InvalidRequestError,
        ("tool 'lookup' parameters", "not a valid JSON Schema", "'str'"),
    ),
    Case(
        "NaN in a tool's parameters",
        lambda lab: lab.compare(["hi"], "a/x", tools=NAN, progress=False),
        InvalidRequestError,
        ("tool 'lookup' parameters", "nan"),
    ),
    Case(
        "tool parameters that contain themselves",
        lambda lab: lab.chat("hi", "a/x", tools=tool(self_containing())),
        InvalidRequestError,
        ("tool 'lookup' parameters", "contains itself"),
    ),
    Case("strategy as a number", lambda lab: lab.chat("hi", "a/x", strategy=5), InvalidRequestError, ("strategy",)),
    Case("seed 2**32", lambda lab: lab.chat("hi", "a/x", seed=2**32), InvalidRequestError, ("seed", "at most")),
    Case("seed 2**80", lambda lab: lab.chat("hi", "a/x", seed=2**80), InvalidRequestError, ("seed", "at most")),
    Case("seed -1", lambda lab: lab.chat("hi", "a/x", seed=-1), InvalidRequestError, ("seed", "at least 0")),
    Case(
        "max_tokens 10**23",
        lambda lab: lab.compare(["hi"], "a/x", max_tokens=10**23, progress=False),
        InvalidRequestError,
        ("max_tokens", "at most 2147483647"),
    ),
    Case(
        "template with an unknown conversion",
        lambda lab: lab.compare(FRAME, "a/x", template="{question!z}", progress=False),
        InvalidRequestError,
        (r"\{question!z\}", "unknown conversion"),
    ),
    Case(
        "template whose format spec does not fit the value",
        lambda lab: lab.compare(FRAME, "a/x", template="{question:>d}", progress=False),
        InvalidRequestError,
        ("template cannot be filled for prompt 0", "format code 'd'"),
    ),
    Case(
        "lone surrogate in a run name",
        lambda lab: lab.compare(["hi"], "a/x", run="a\ud800", progress=False),
        InvalidRequestError,
        ("run", "surrogate"),
    ),
    Case(
        "ratings clustered by a column of lists",
        lambda lab: ratings(BATTLES, cluster="pair"),
        InvalidRequestError,
        ("cluster='pair'", "one label per battle"),
    ),
    Case(
        "lone surrogate in a streamed system prompt",
        lambda lab: list(lab.stream("hi", "a/x", system="be \udfff brief")),
        InvalidRequestError,
        ("utf-8|surrogate|unicode",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_before_any_request(case: Case, lab: Lab, fault) -> None:
    """A typed error naming the problem, raised by opencode_lab itself, and nothing sent."""
    try:
        case.call(lab)
    except Exception as exc:  # the type is what is under test
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}"
        assert isinstance(exc, case.error), f"{type(exc).__name__} from {where}: {exc}"
        assert "/opencode_lab/" in where and "site-packages" not in where, f"raised deep inside: {where}"
        for pattern in case.says:
            assert re.search(pattern, str(exc), re.IGNORECASE), f"{str(exc)!r} does not say {pattern!r}"
    else:
        pytest.fail(f"{case.name} was accepted")
    assert fault.count() == 0


def test_a_compare_row_over_the_context_window_is_a_typed_error_row(lab: Lab, fault) -> None:
    """In compare the over-long prompt is a ``context_window`` row with zero attempts; the others run."""
    frame = lab.compare(["short one", LONG], "small", progress=False)
    assert frame["error_type"].isna().iloc[0] and frame["error_type"].iloc[1] == "context_window"
    assert frame["attempts"].iloc[1] == 0 and "64" in frame["error"].iloc[1]
    assert [e["prompt"] for e in fault.log] == ["short one"]


def test_failover_to_a_model_that_fits_happens_when_allowed(lab: Lab, fault) -> None:
    """chat() with a model list, and compare(fallback=True), skip the small window for one that fits."""
    assert lab.chat(LONG, ["small", "big"]).served_by == "a/big-model"
    frame = lab.compare([LONG + "again"], "fits", fallback=True, progress=False)
    assert frame["served_by"].tolist() == ["a/big-model"] and frame["error_type"].isna().all()
    assert [e["model"] for e in fault.log] == ["big-model", "big-model"]  # the small model was never asked


def test_a_compare_without_fallback_never_takes_a_failover_answer_from_the_cache(lab: Lab, fault) -> None:
    """compare() keeps failover off by default: an answer chat() got by failing over to another model is not
    served to a compare of the same alias from the cache (it would corrupt the comparison)."""
    assert lab.chat(LONG, "fits").served_by == "a/big-model"  # chat fails over by design
    frame = lab.compare([LONG], "fits", progress=False)
    assert frame["served_by"].isna().all() or set(frame["served_by"]) <= {"a/small-model"}, (
        f"a compare without fallback returned {frame['served_by'].tolist()} (cached={frame['cached'].tolist()})"
    )
    assert frame["error_type"].tolist() == ["context_window"]


@pytest.mark.parametrize(
    ("fault_name", "says"),
    [("empty_choices", "no choices"), ("malformed", "not JSON"), ("bad_utf8", "JSON|UTF-8")],
)
def test_a_nonsense_answer_is_a_typed_malformed_response_row(lab: Lab, fault, fault_name: str, says: str) -> None:
    """A 200 without choices, a non-JSON body, a body with a non-UTF-8 byte: a ``malformed_response`` row whose
    error names what was wrong; the neighbouring row is unaffected."""
    frame = lab.compare(["fine", f"[[fault:{fault_name}]] nonsense"], "a/x", progress=False)
    assert frame["error_type"].isna().iloc[0] and frame["response"].iloc[0] == "echo: fine"
    assert frame["error_type"].iloc[1] == "malformed_response"
    assert re.search(says, frame["error"].iloc[1], re.IGNORECASE), frame["error"].iloc[1]


def test_a_non_utf8_byte_in_a_stream_is_a_typed_error(lab: Lab, fault) -> None:
    """The stream raises a `LabError` of type ``malformed_response`` that says the bytes were not UTF-8."""
    with pytest.raises(LabError) as raised:
        list(lab.stream("[[fault:bad_utf8]] stream me", "a/x"))
    assert error_type_of(raised.value) == "malformed_response"
    assert "UTF-8" in str(raised.value), str(raised.value)
    assert fault.log[0]["outcome"] == "bad_utf8"


def test_a_malformed_toml_file_is_a_config_error_naming_file_and_line(tmp_path: Path) -> None:
    """The error names the file and the line, from the API and from the CLI (exit 2, no traceback)."""
    bad = tmp_path / "broken.toml"
    bad.write_text('[lab]\ntimeout_s = 1\nstrategy = "round_robin\n')
    with pytest.raises(ConfigError) as raised:
        Lab.from_file(bad)
    assert str(bad) in str(raised.value) and "line 3" in str(raised.value)
    done = subprocess.run(
        [sys.executable, "-m", "opencode_lab", "--config", str(bad), "chat", "hi"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(bad) in done.stderr and "line 3" in done.stderr


def test_a_wrong_value_in_toml_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[lab]\ntimeout_s = "soon"\n')
    with pytest.raises(ConfigError, match=r"timeout_s.*'soon'"):
        Lab.from_file(path)


@pytest.mark.parametrize("value", ["a/b,,c/d", "a/b,", " , a/b"])
def test_an_empty_item_in_the_openrouter_model_list_is_a_config_error(monkeypatch, value: str) -> None:
    monkeypatch.setenv("OPENROUTER_MODEL_LIST", value)
    with pytest.raises(ConfigError, match="OPENROUTER_MODEL_LIST has an empty item"):
        Lab.from_env()


# -- the request canonicaliser and the cache key, as properties ---------------------------------------------------

TEXTS = st.sampled_from(["a", "b", "A", "a ", "é", "e\u0301", "ß", "ss", "\u200bA", "日本", "😀", "a\nb", "a\r\nb"])
NUMBERS = st.sampled_from([None, 0, 0.0, -0.0, 0.5, 1, 1.0, 2])
MESSAGES = st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), TEXTS), min_size=1, max_size=3)


@st.composite
def raw_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Inputs as a caller writes them: message dicts, ints where floats are meant, a stop string or list."""
    messages = [{"role": r, "content": c} for r, c in draw(MESSAGES)]
    messages.append({"role": "user", "content": draw(TEXTS)})
    stop = draw(st.sampled_from([None, "x", ["x"], ["x", "y"], ["y", "x"]]))
    return {
        "prompt": messages,
        "temperature": draw(NUMBERS),
        "top_p": draw(st.sampled_from([None, 0, -0.0, 0.0, 1, 1.0, 0.25])),
        "max_tokens": draw(st.sampled_from([None, 1, 2])),
        "seed": draw(st.sampled_from([None, 0, 1])),
        "stop": stop,
        "resolved": draw(st.sampled_from([("m",), ("n",), ("m", "n"), ("n", "m")])),
        "sample": draw(st.sampled_from([0, 1])),
    }


def key_of(raw: dict[str, Any]) -> str:
    params = {k: v for k, v in raw.items() if k not in ("resolved", "sample")}
    return canonical_key(ChatRequest.build(**params), list(raw["resolved"]), raw["sample"])


def meaning(raw: dict[str, Any]) -> tuple[Any, ...]:
    """What the provider is asked, compared by value: 1 == 1.0, -0.0 == 0.0, "x" means ["x"]."""
    stop = raw["stop"]
    return (
        tuple((m["role"], m["content"]) for m in raw["prompt"]),
        raw["temperature"],
        raw["top_p"],
        raw["max_tokens"],
        raw["seed"],
        (stop,) if isinstance(stop, str) else tuple(stop or ()),
        raw["resolved"],
        raw["sample"],
    )


PROPERTY = settings(max_examples=300, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


PLAIN = {
    "prompt": [{"role": "user", "content": "hi"}],
    **dict.fromkeys(("temperature", "top_p", "max_tokens", "seed", "stop")),
    "resolved": ("m",),
    "sample": 0,
}


@PROPERTY
@given(raw_requests(), raw_requests())
@example({**PLAIN, "temperature": 0.0}, {**PLAIN, "temperature": -0.0})
@example({**PLAIN, "top_p": 1}, {**PLAIN, "top_p": 1.0})
@example({**PLAIN, "stop": "x"}, {**PLAIN, "stop": ["x"]})
@pytest.mark.slow
def test_keys_are_equal_exactly_when_the_requests_mean_the_same(first: dict, second: dict) -> None:
    """Key equality is request equality: equal inputs (1 vs 1.0, "x" vs ["x"], -0.0 vs 0.0) share a key, and any
    difference in messages, their order or roles, parameters, models or sample gives another key."""
    same = meaning(first) == meaning(second)
    assert (key_of(first) == key_of(second)) == same, (meaning(first), meaning(second))


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), TEXTS), min_size=2, max_size=4), st.data())
@pytest.mark.slow
def test_reordering_or_recasting_messages_changes_the_key(pairs: list[tuple[str, str]], data: st.DataObject) -> None:
    """Message order and roles are part of what a model sees, so both are part of the key."""
    pairs = [*pairs, ("user", "final")]
    base = canonical_key(ChatRequest.build([{"role": r, "content": c} for r, c in pairs]), ["m"], 0)
    shuffled = data.draw(st.permutations(pairs))
    key = canonical_key(ChatRequest.build([{"role": r, "content": c} for r, c in shuffled]), ["m"], 0)
    assert (key == base) == (shuffled == pairs)
    i = data.draw(st.integers(0, len(pairs) - 2))
    role = data.draw(st.sampled_from([r for r in ("system", "user", "assistant") if r != pairs[i][0]]))
    recast = [*pairs[:i], (role, pairs[i][1]), *pairs[i + 1 :]]
    assert canonical_key(ChatRequest.build([{"role": r, "content": c} for r, c in recast]), ["m"], 0) != base


@PROPERTY
@given(st.text(min_size=1, max_size=30).filter(str.strip), st.text(min_size=1, max_size=30).filter(str.strip))
@pytest.mark.slow
def test_unicode_text_is_keyed_losslessly(first: str, second: str) -> None:
    """Any two different texts (NFC vs NFD, zero-width characters, whitespace...) key apart, and the key keeps the
    exact text: it decodes back to the same characters."""
    for text in (first, second):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return  # lone surrogates are refused by the canonicaliser (see the bad-input cases)
    keys = [canonical_key(ChatRequest.build(t), ["m"], 0) for t in (first, second)]
    assert (keys[0] == keys[1]) == (first == second)
    assert json.loads(keys[0])["messages"] == [["user", first]]


KEY_SCRIPT = """
import json, sys
from opencode_lab import ChatRequest, ChatResult
from opencode_lab.session.cache import ResponseCache, canonical_key
from opencode_lab.session.records import cache_value
requests = [
    ChatRequest.build("hello", temperature=0.7, seed=3),
    ChatRequest.build([{"role": "user", "content": "日本 é"}], system="brief", max_tokens=9, stop=["x", "y"]),
    ChatRequest.build("a\\r\\nb 😀", top_p=0.25),
]
keys = [canonical_key(r, ["m", "n"], i) for i, r in enumerate(requests)]
cache = ResponseCache("file", sys.argv[2])
if sys.argv[1] == "write":
    for k in keys:
        cache.put(k, cache_value(ChatResult("stored " + k[:20], "m", "p/x", "p")))
found = [bool(cache.get(k)) for k in keys]
print(json.dumps({"keys": keys, "found": found}))
"""


@pytest.mark.slow
def test_keys_and_cache_entries_are_stable_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """A key computed under one PYTHONHASHSEED is byte-identical under another, and an entry one process stores is
    found by a process with a different hash seed."""
    outputs = []
    for seed, mode in (("0", "write"), ("4242", "read"), ("random", "read")):
        done = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT, mode, str(tmp_path)],
            capture_output=True,
            text=True,
            env=child_env(PYTHONHASHSEED=seed),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outputs[0]["keys"] == outputs[1]["keys"] == outputs[2]["keys"]
    assert all(all(o["found"]) for o in outputs)
