"""Tool calls: declarations and functions in, one ``tool_calls`` shape out, whichever provider answers."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from typing import Literal

import pytest

from opencode_lab import ChatRequest, InvalidRequestError, Lab, RunMismatchError
from opencode_lab.core.tools import ToolCall, tool_from_function
from opencode_lab.session.cache import canonical_key
from opencode_lab.testing import FaultServer
from opencode_lab.testing.anthropic_server import AnthropicServer
from opencode_lab.testing.gemini_server import GeminiServer

PROVIDERS = ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash")
CALL = 'weather in Paris? [[call:get_weather {"city": "Paris", "unit": "celsius"}]]'


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: list[int] | None = None) -> str:
    """Current weather in a city.

    Args:
        city: the city's name, e.g. Paris
        unit: temperature unit
    """
    return "sunny"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}


# -- declarations ---------------------------------------------------------------------------------


def test_a_function_becomes_a_schema_from_its_hints_and_docstring() -> None:
    tool = tool_from_function(get_weather)
    assert tool.name == "get_weather" and tool.description == "Current weather in a city."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city's name, e.g. Paris"},
            "unit": {"enum": ["celsius", "fahrenheit"], "description": "temperature unit"},
            "days": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["city"],
    }


def test_an_enum_hint_becomes_its_values() -> None:
    def convert(value: float, unit: Unit) -> float:
        """Convert."""
        return value

    assert tool_from_function(convert).parameters["properties"]["unit"] == {"enum": ["celsius", "fahrenheit"]}


def test_a_parameter_without_a_hint_is_refused_naming_it() -> None:
    def bad(city):  # type: ignore[no-untyped-def]
        return city

    with pytest.raises(InvalidRequestError, match="parameter 'city' needs a type hint"):
        ChatRequest.build("hi", tools=[bad])


def test_openai_and_flat_declarations_are_the_same_tool() -> None:
    flat = dict(WEATHER["function"])
    assert ChatRequest.build("hi", tools=[WEATHER]).tools == ChatRequest.build("hi", tools=[flat]).tools


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("get_weather", "tools must be a list"),
        ([WEATHER, WEATHER], "two tools named 'get_weather'"),
        ([{"name": "x y"}], "name 'x y' must be letters"),
        ([{"name": "f", "parameters": {"type": "string"}}], "schema of type 'object'"),
        ([42], "must be a tool declaration"),
    ],
)
def test_a_bad_tool_list_is_refused_before_sending(tools: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        ChatRequest.build("hi", tools=tools)


def test_a_tool_result_must_answer_a_call_that_was_made() -> None:
    with pytest.raises(InvalidRequestError, match="answers tool call 'nope'"):
        ChatRequest.build([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}])


def test_arguments_that_are_not_a_json_object_parse_to_none_and_keep_the_raw_text() -> None:
    call = ToolCall.parse("c1", "get_weather", '{"city": ')
    assert call.arguments is None and call.raw_arguments == '{"city": '


def test_tools_are_part_of_the_cache_key() -> None:
    plain = ChatRequest.build("hi")
    with_tool = ChatRequest.build("hi", tools=[WEATHER])
    other_tool = ChatRequest.build("hi", tools=[{**WEATHER["function"], "description": "changed"}])
    keys = {canonical_key(r, [["m"]], 0) for r in (plain, with_tool, other_tool)}
    assert len(keys) == 3
    assert '"tools"' not in canonical_key(plain, [["m"]], 0)  # keys made before tools existed still match


# -- one shape across providers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def vendors() -> Iterator[tuple[AnthropicServer, GeminiServer]]:
    with AnthropicServer() as anthropic, GeminiServer() as gemini:
        yield anthropic, gemini


@pytest.fixture
def lab(fault: FaultServer, vendors, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """One Lab with three native providers, each on its loopback server (model lists left unchecked)."""
    anthropic, gemini = vendors
    anthropic.reset()
    gemini.reset()
    fault.configure(models=["gpt-4o-mini"])
    anthropic.configure(models=["claude-3-5-haiku-latest"])
    gemini.configure(models=["gemini-2.0-flash"])
    for var, value in {
        "OPENAI_API_KEY": "sk-test-tools-openai-0123",
        "OPENAI_BASE_URL": fault.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-tools-0123",
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "GEMINI_API_KEY": "AIza-test-tools-0123",
        "GEMINI_BASE_URL": gemini.base_url,
    }.items():
        monkeypatch.setenv(var, value)
    with Lab.from_env() as lab:
        yield lab


@pytest.mark.parametrize("model", PROVIDERS)
def test_a_tool_call_has_one_shape_whatever_the_provider(lab: Lab, model: str) -> None:
    result = lab.chat(CALL, model=model, tools=[get_weather], cache=False)
    (call,) = result.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris", "unit": "celsius"})
    assert isinstance(call.id, str) and call.id
    assert result.finish_reason == "tool_calls" and result.text == ""


@pytest.mark.parametrize("model", PROVIDERS)
def test_a_streamed_tool_call_has_the_same_shape(lab: Lab, model: str) -> None:
    *deltas, result = lab.stream_events(CALL, model=model, tools=[WEATHER], cache=False)
    assert deltas == []
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Paris", "unit": "celsius"})]


@pytest.mark.parametrize("model", PROVIDERS)
def test_a_follow_up_turn_with_the_tools_result_gets_an_answer(lab: Lab, model: str) -> None:
    first = lab.chat("weather in Paris?", model=model, tools=[get_weather], cache=False)
    (call,) = first.tool_calls
    conversation = [
        {"role": "user", "content": "weather in Paris?"},
        first,  # a result is its own assistant turn, tool calls included
        {"role": "tool", "tool_call_id": call.id, "content": get_weather(**call.arguments)},
    ]
    answer = lab.chat(conversation, model=model, tools=[get_weather], cache=False)
    assert answer.text == "echo: sunny" and answer.tool_calls == () and answer.finish_reason == "stop"


def test_the_three_servers_were_offered_the_tool_in_their_own_form(lab: Lab, fault: FaultServer, vendors) -> None:
    for model in PROVIDERS:
        lab.chat("hi", model=model, tools=[get_weather], cache=False)
    anthropic, gemini = vendors
    assert [e["tools"] for e in (fault.log[-1], anthropic.log[-1], gemini.log[-1])] == [["get_weather"]] * 3


def test_a_cached_tool_call_comes_back_whole(lab: Lab) -> None:
    first = lab.chat(CALL, model=PROVIDERS[1], tools=[get_weather])
    again = lab.chat(CALL, model=PROVIDERS[1], tools=[get_weather])
    assert again.cached and again.tool_calls == first.tool_calls


def test_other_tools_miss_the_cache(lab: Lab) -> None:
    lab.chat(CALL, model=PROVIDERS[1], tools=[get_weather])
    assert not lab.chat(CALL, model=PROVIDERS[1], tools=[WEATHER]).cached  # a different description


def test_a_local_model_is_refused_tools_before_sending(make_lab, tmp_path) -> None:
    lab = make_lab(f'[models.tiny]\nprovider = "local"\npath = "{tmp_path / "absent.gguf"}"\n')
    with pytest.raises(InvalidRequestError, match="model 'local/tiny' cannot call tools"):
        lab.chat("hi", model="local/tiny", tools=[get_weather])


# -- compare(tools=...) ---------------------------------------------------------------------------


def test_compare_shows_which_model_calls_the_tool_correctly(lab: Lab) -> None:
    prompts = [CALL, 'weather? [[call:get_weather {"unit": "kelvin"}]]', "no directive: example arguments"]
    frame = lab.compare(prompts, list(PROVIDERS), tools=[get_weather], progress=False, cache=False)
    assert len(frame) == 9 and frame.error_type.isna().all()
    assert frame.groupby("prompt", sort=False).tool_call_valid.all().tolist() == [True, False, True]
    first = json.loads(frame.tool_calls[0])
    assert [(c["name"], c["arguments"]) for c in first] == [("get_weather", {"city": "Paris", "unit": "celsius"})]


def test_compare_without_tools_leaves_the_tool_columns_empty(lab: Lab) -> None:
    frame = lab.compare(["hi"], PROVIDERS[0], progress=False, cache=False)
    assert frame.tool_calls.isna().all() and not frame.tool_call_valid.any()


def test_a_named_run_remembers_its_tools(lab: Lab) -> None:
    lab.compare(["hi"], PROVIDERS[0], tools=[get_weather], run="tools-run", progress=False)
    with pytest.raises(RunMismatchError, match="tools"):
        lab.compare(["hi"], PROVIDERS[0], tools=[WEATHER], run="tools-run", progress=False)
