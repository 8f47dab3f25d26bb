"""Structured output: ``schema=`` on chat, compare, the CLI and %%chat; validated answers; mismatches as rows."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys

import pydantic
import pytest

from opencode_lab import InvalidRequestError, Params, SchemaMismatchError, judge
from opencode_lab.core.structured import Schema
from opencode_lab.frontends.magics import ChatMagics

PERSON = {
    "title": "person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


class Person(pydantic.BaseModel):
    name: str
    age: int


@pytest.fixture
def lab(make_lab, judge_toml):
    """``judge`` answers what the judge server's ``reply`` says."""
    return make_lab(judge_toml)


def test_the_schema_goes_on_the_wire_as_openais_response_format(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"name": "Ada", "age": 36}'
    lab.chat("Who?", "judge", schema=PERSON)
    (body,) = judge_server.requests
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    assert "schema" not in body


def test_a_valid_answer_carries_its_parsed_object(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"name": "Ada", "age": 36}'
    assert lab.chat("Who?", "judge", schema=PERSON).data == {"name": "Ada", "age": 36}


def test_a_pydantic_model_class_is_a_schema(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"name": "Ada", "age": 36}'
    result = lab.chat("Who?", "judge", schema=Person)
    assert Person.model_validate(result.data) == Person(name="Ada", age=36)
    assert judge_server.requests[0]["response_format"]["json_schema"]["name"] == "Person"


def test_an_answer_in_a_code_fence_is_accepted(judge_server, lab) -> None:
    judge_server.reply = lambda body: '```json\n{"name": "Ada", "age": 36}\n```'
    assert lab.chat("Who?", "judge", schema=PERSON).data == {"name": "Ada", "age": 36}


def test_an_answer_that_does_not_match_raises_schema_mismatch_with_the_raw_text(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"name": "Ada"}'
    with pytest.raises(SchemaMismatchError, match="'age' is a required property") as caught:
        lab.chat("Who?", "judge", schema=PERSON)
    assert caught.value.text == '{"name": "Ada"}' and caught.value.error_type == "schema_mismatch"
    assert len(judge_server.requests) == 1  # not retried: the same request gets the same answer


def test_in_compare_a_mismatch_is_an_error_row_and_matches_get_a_data_column(judge_server, lab) -> None:
    judge_server.reply = lambda body: (
        "I am not sure." if "Bob" in body["messages"][-1]["content"] else '{"name": "Ada", "age": 36}'
    )
    frame = lab.compare(["Ada?", "Bob?"], "judge", schema=PERSON, progress=False)
    assert list(frame.columns[2:4]) == ["response", "data"]
    assert frame.data[0] == {"name": "Ada", "age": 36} and frame.data[1] is None
    assert list(frame.error_type.fillna("ok")) == ["ok", "schema_mismatch"]
    assert "the answer is not JSON" in frame.error[1] and "raw answer: 'I am not sure.'" in frame.error[1]


def test_a_stream_that_ends_off_schema_fails_as_a_mismatch(fault, make_lab) -> None:
    lab = make_lab(f'[providers.e]\nbase_url = "{fault.base_url}"\nmodels = ["echo"]\n')
    with pytest.raises(SchemaMismatchError, match="raw answer: 'echo: Who\\?'"):
        list(lab.stream("Who?", "e/echo", schema=PERSON))


def test_the_schema_is_part_of_the_cache_key(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"name": "Ada", "age": 36}'
    lab.chat("Who?", "judge", schema=PERSON)
    lab.chat("Who?", "judge", schema=PERSON)
    assert len(judge_server.requests) == 1
    lab.chat("Who?", "judge", schema={**PERSON, "required": ["name"]})
    lab.chat("Who?", "judge")
    assert len(judge_server.requests) == 3


def test_the_schema_is_part_of_a_runs_specification(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"name": "Ada", "age": 36}'
    lab.compare(["Ada?"], "judge", schema=PERSON, run="people", progress=False)
    assert lab.runlog.run_meta("people")["spec"]["params"]["schema"] == PERSON


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "no-such-type"}, "schema is not a valid JSON Schema"),
        ("{not json", "schema is not JSON"),
        (42, "schema must be a JSON Schema dict, a pydantic model class or JSON text, not int"),
        ({"type": "number", "maximum": float("inf")}, "schema is not a JSON value"),
    ],
)
def test_a_bad_schema_is_refused_before_anything_is_sent(judge_server, lab, schema, message) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        lab.compare(["Who?"], "judge", schema=schema, progress=False)
    assert judge_server.requests == []


def test_equal_schemas_make_equal_hashable_parameters() -> None:
    one, two = Params.build(schema=PERSON), Params.build(schema=json.dumps(PERSON))
    assert one == two and hash(one) == hash(two)
    assert one.payload() == {"schema": PERSON}


def test_percent_percent_chat_takes_a_schema_option() -> None:
    args = ChatMagics.chat.parser.parse_args(shlex.split(f"-m judge --schema '{json.dumps(PERSON)}'"))
    assert Schema.of(args.schema) == Schema.of(PERSON)


@pytest.mark.slow
def test_the_cli_reads_a_schema_from_a_file(judge_server, judge_toml, tmp_path) -> None:
    judge_server.reply = lambda body: '{"name": "Ada", "age": 36}'
    config, schema = tmp_path / "lab.toml", tmp_path / "person.json"
    config.write_text(judge_toml)
    schema.write_text(json.dumps(PERSON))
    out = subprocess.run(
        [sys.executable, "-m", "opencode_lab", "--config", str(config), "chat", "-m", "judge", "--schema",
         f"@{schema}", "Who?"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"name": "Ada", "age": 36}
    assert judge_server.requests[0]["response_format"]["json_schema"]["schema"] == PERSON


# -- the judge asks for its verdict under a schema ---------------------------------------------------------------


def test_the_judge_asks_for_a_verdict_under_its_schema(judge_server, lab) -> None:
    judge_server.reply = lambda body: '{"score": 4, "reason": "fine"}'
    score = judge("judge", lab=lab)({"prompt": "2+2?", "response": "4"})
    verdict = judge_server.requests[0]["response_format"]["json_schema"]
    assert verdict["name"] == "verdict" and verdict["schema"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    assert score.value == 0.75


def test_a_judge_server_ignoring_the_schema_gives_nan_unless_free_text_was_asked(judge_server, lab) -> None:
    """A structured verdict was asked for: prose is not fished for a score (an answer could plant one)."""
    judge_server.reply = lambda body: "Score: 2 because it is wrong."
    score = judge("judge", lab=lab)({"prompt": "2+2?", "response": "5"})
    assert math.isnan(score.value) and score.reason == "unparsable verdict: 'Score: 2 because it is wrong.'"
    assert judge("judge", structured=False, lab=lab)({"prompt": "2+2?", "response": "5"}).value == 0.25


def test_a_refusal_under_a_schema_is_nan_keeping_the_raw_text(judge_server, lab) -> None:
    judge_server.reply = lambda body: "I cannot grade this."
    score = judge("judge", lab=lab)({"prompt": "2+2?", "response": "5"})
    assert score.reason == "unparsable verdict: 'I cannot grade this.'"


# -- the bundled SmolLM2, constrained by llama.cpp's JSON-schema grammar ------------------------------------------

REVIEW = {
    "title": "review",
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "stars": {"type": "number"},
        "summary": {"type": "string", "maxLength": 40},
    },
    "required": ["sentiment", "stars", "summary"],
}
REVIEWS = [
    "The pizza was great!", "Terrible service, never again.", "It was ok.", "I love this phone.",
    "The movie was boring.", "Best coffee in town.", "The hotel room was dirty.", "Fast delivery, nice packaging.",
    "The book was too long.", "Amazing concert last night!",
]  # fmt: skip


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_returns_valid_json_for_ten_of_ten_prompts(make_lab) -> None:
    lab = make_lab()
    frame = lab.compare(
        [f"Review: {text}\nReply as JSON." for text in REVIEWS], "local/smollm2-135m",
        schema=REVIEW, temperature=0, seed=1, max_tokens=96, progress=False,
    )  # fmt: skip
    assert frame.error_type.isna().all(), frame.error.dropna().tolist()
    schema = Schema.of(REVIEW)
    assert all(schema.errors(data) == [] for data in frame.data)
    assert {d["sentiment"] for d in frame.data} <= {"positive", "negative", "neutral"}


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_judges_offline_with_parseable_verdicts(make_lab) -> None:
    lab = make_lab()
    frame = lab.compare(
        ["What is the capital of France?", "How many days are in a week?"], "local/smollm2-135m",
        temperature=0, seed=1, max_tokens=24, progress=False,
        scorer={"judge": judge("local/smollm2-135m", rubric="Is the answer correct?")},
    )  # fmt: skip
    assert frame.score_judge.between(0, 1).all(), frame.reason_judge.tolist()
    assert (frame.judge_cost_usd == 0).all()  # a local judge costs nothing
