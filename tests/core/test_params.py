"""Request parameters are declared once, in `Params`; everything else derives from that declaration."""

from __future__ import annotations

import dataclasses

import pytest

from opencode_lab import ChatRequest, InvalidRequestError, Params
from opencode_lab.core.params import NAMES, options, reject_unknown


def test_the_declaration_lists_the_sampling_parameters_the_schema_the_modern_controls_and_where_to_go() -> None:
    assert NAMES == (
        "temperature", "max_tokens", "seed", "top_p", "stop", "schema",
        "reasoning_effort", "reasoning_budget", "logprobs", "top_logprobs", "options", "regions", "provider_routing",
    )  # fmt: skip
    assert tuple(f.name for f in dataclasses.fields(Params)) == NAMES


def test_build_validates_and_normalises() -> None:
    params = Params.build(temperature=-0.0, max_tokens=5, seed=3, top_p=1, stop="END")
    assert params == Params(temperature=0.0, max_tokens=5, seed=3, top_p=1.0, stop=("END",))
    assert str(params.temperature) == "0.0"  # -0.0 would give a different cache key


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": 2.5}, "temperature must be between 0.0 and 2.0"),
        ({"temperature": float("nan")}, "temperature must be a number"),
        ({"top_p": float("inf")}, "top_p must be a number"),
        ({"max_tokens": 0}, "max_tokens must be at least 1"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"stop": ["ok", ""]}, "stop must be a string or a list of non-empty strings"),
        ({"reasoning_effort": "hgh"}, "reasoning_effort must be one of none, minimal, low, medium, high.*'high'"),
        ({"reasoning_budget": -1}, "reasoning_budget must be at least 0"),
        ({"logprobs": "yes"}, "logprobs must be True or False"),
        ({"top_logprobs": 21}, "top_logprobs must be at most 20"),
        ({"top_logprobs": 2, "logprobs": False}, "top_logprobs needs logprobs"),
        ({"options": {"temperature": 0.2}}, "options key 'temperature' is a parameter of its own: pass temperature="),
        ({"options": {"x": float("nan")}}, r"options\['x'\] must be a JSON value"),
        ({"options": {"x": object()}}, r"options\['x'\] must be a JSON value"),
        ({"options": {"": 1}}, "options keys must be non-empty strings"),
        ({"options": ["top_k"]}, "an option must be written key=value"),
        ({"options": 5}, "options must be a mapping"),
    ],
)
def test_bad_values_name_the_parameter(values: dict, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        Params.build(**values)


def test_an_unknown_parameter_names_the_closest_valid_one() -> None:
    with pytest.raises(InvalidRequestError, match="unknown request parameter 'temprature'; did you mean 'temperature'"):
        Params.build(temprature=0.5)


def test_reject_unknown_lists_the_valid_names_when_nothing_is_close() -> None:
    with pytest.raises(InvalidRequestError, match=r"unknown keyword 'zzz' \(valid: a, b\)"):
        reject_unknown({"zzz": 1}, ["b", "a"])


def test_the_payload_holds_only_what_was_set_in_wire_form() -> None:
    assert Params().payload() == {}
    assert Params.build(top_p=0.5, stop=["a", "b"]).payload() == {"top_p": 0.5, "stop": ["a", "b"]}


def test_a_changed_payload_never_changes_the_parameters_it_came_from() -> None:
    params = Params.build(temperature=0.5, stop=["END"])
    params.payload()["temperature"] = 2.0
    params.canonical()["stop"] = []
    assert params.payload() == params.canonical() == {"temperature": 0.5, "stop": ["END"]}
    assert params == Params.build(temperature=0.5, stop=["END"]) and hash(params) == hash(Params(0.5, stop=("END",)))


def test_a_request_asking_another_prompt_keeps_model_parameters_and_tools_and_validates_the_prompt() -> None:
    request = ChatRequest.build("first", model="m", system="be brief", temperature=0.1)
    other = request.asking("second", "be brief")
    assert (other.model, other.params) == (request.model, request.params)
    assert [m.content for m in other.messages] == ["be brief", "second"]
    with pytest.raises(InvalidRequestError, match="prompt is empty"):
        request.asking("  ")


def test_routing_parameters_steer_the_request_but_are_never_sent() -> None:
    params = Params.build(top_p=0.5, regions="EU-*", provider_routing='{"data_collection": "deny"}')
    assert params.payload() == {"top_p": 0.5}
    assert params.canonical() == {"top_p": 0.5, "regions": ["eu-*"], "provider_routing": {"data_collection": "deny"}}
    assert Params.build(**params.canonical()) == params


def test_every_parameter_is_a_command_line_option() -> None:
    by_name = {o.name: o for o in options()}
    assert tuple(by_name) == NAMES
    assert by_name["stop"].repeated and not by_name["top_p"].repeated
    assert by_name["top_p"].parse("0.25") == 0.25 and by_name["max_tokens"].parse("7") == 7


def test_options_are_one_value_whatever_order_or_form_they_were_given_in() -> None:
    as_mapping = Params.build(options={"top_k": 40, "safety": [{"category": "x"}]})
    as_texts = Params.build(options=['safety=[{"category": "x"}]', "top_k=40"])
    assert as_mapping == as_texts and hash(as_mapping) == hash(as_texts)
    assert as_mapping.payload() == {"options": {"safety": [{"category": "x"}], "top_k": 40}}
    assert Params.build(**as_mapping.payload()) == as_mapping  # a run's specification builds it again


def test_an_option_value_that_is_not_json_is_kept_as_text() -> None:
    assert dict(Params.build(options="stop_word=END").options) == {"stop_word": "END"}


def test_top_logprobs_implies_logprobs_and_false_is_not_asking() -> None:
    assert Params.build(top_logprobs=3) == Params.build(logprobs=True, top_logprobs=3)
    assert Params.build(logprobs=False) == Params()


def test_the_new_controls_are_command_line_options() -> None:
    by_name = {o.name: o for o in options()}
    assert by_name["reasoning_effort"].flag == "--reasoning-effort"
    assert (by_name["options"].flag, by_name["options"].short, by_name["options"].repeated) == ("--option", "-o", True)
    assert by_name["logprobs"].parse("true") is True
