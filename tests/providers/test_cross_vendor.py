"""One conversation, five wire formats: the same tool calls, image and answer columns from every vendor's server.

OpenAI-compatible, Anthropic, Gemini, Bedrock (Converse, SigV4) and Vertex (Gemini and Claude,
OAuth tokens) each answer on their own loopback server; a comparison cannot tell them apart but
by the ``model`` column.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from opencode_lab import Lab
from opencode_lab.core.content import Image
from opencode_lab.testing import FaultServer
from opencode_lab.testing.anthropic_server import AnthropicServer
from opencode_lab.testing.bedrock_server import BedrockServer
from opencode_lab.testing.gemini_server import GeminiServer
from opencode_lab.testing.vertex_server import VertexServer

MODELS = (
    "openai/gpt-4o-mini",
    "anthropic/claude-3-5-haiku-latest",
    "gemini/gemini-2.0-flash",
    "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
    "vertex/gemini-2.0-flash",
    "vertex/claude-3-5-haiku@20241022",
)
CALL = 'weather in Paris? [[call:get_weather {"city": "Paris", "unit": "celsius"}]]'
#: what a results row says of an answer: every vendor fills the same ones
ANSWER_COLUMNS = ["response", "finish_reason", "input_tokens", "output_tokens", "cost_usd", "tool_calls", "error_type"]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return "sunny"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[AnthropicServer, GeminiServer, BedrockServer, VertexServer]]:
    with AnthropicServer() as anthropic, GeminiServer() as gemini, BedrockServer() as bedrock, VertexServer() as vertex:
        yield anthropic, gemini, bedrock, vertex


@pytest.fixture
def lab(
    fault: FaultServer, servers, aws: None, gcp: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Lab]:
    anthropic, gemini, bedrock, vertex = servers
    for server, ids in (
        (fault, ["gpt-4o-mini"]),
        (anthropic, ["claude-3-5-haiku-latest"]),
        (gemini, ["gemini-2.0-flash"]),
        (bedrock, ["anthropic.claude-3-5-haiku-20241022-v1:0"]),
        (vertex, ["gemini-2.0-flash", "claude-3-5-haiku@20241022"]),
    ):
        server.reset()
        server.configure(models=ids)
    for var, value in {
        "OPENAI_API_KEY": "sk-test-cross-openai-0123",
        "OPENAI_BASE_URL": fault.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-cross-0123",
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "GEMINI_API_KEY": "AIza-test-cross-0123",
        "GEMINI_BASE_URL": gemini.base_url,
    }.items():
        monkeypatch.setenv(var, value)
    toml = tmp_path / "clouds.toml"
    toml.write_text(
        f'[providers.bedrock]\ntype = "bedrock"\nregion = "us-east-1"\nbase_url = "{bedrock.base_url}"\n'
        f'[providers.vertex]\ntype = "vertex"\nlocation = "us-central1"\nbase_url = "{vertex.root_url}"\n'
        f'credentials_file = "{gcp(vertex.token_url)}"\n'
    )
    with Lab.from_file(toml) as lab:
        yield lab


def test_a_tool_call_has_one_shape_and_one_set_of_columns_from_every_vendor(lab: Lab) -> None:
    frame = lab.compare([CALL], list(MODELS), tools=[get_weather], progress=False, cache=False).set_index("model")
    assert list(frame.index) == list(MODELS) and frame.error_type.isna().all()
    calls = {model: json.loads(frame.loc[model, "tool_calls"]) for model in MODELS}
    for model, made in calls.items():
        assert [sorted(c) for c in made] == [["arguments", "id", "name"]], model
        assert [(c["name"], c["arguments"]) for c in made] == [("get_weather", {"city": "Paris", "unit": "celsius"})]
    assert set(frame.finish_reason) == {"tool_calls"} and frame.tool_call_valid.all()
    filled = frame[ANSWER_COLUMNS].notna()
    assert (filled == filled.iloc[0]).all().all(), filled  # what one vendor reports, every vendor reports


def test_the_tools_result_gets_the_same_answer_from_every_vendor(lab: Lab) -> None:
    answers = {}
    for model in MODELS:
        first = lab.chat("weather in Paris?", model=model, tools=[get_weather], cache=False)
        (call,) = first.tool_calls
        conversation = [
            {"role": "user", "content": "weather in Paris?"},
            first,
            {"role": "tool", "tool_call_id": call.id, "content": get_weather(**call.arguments)},
        ]
        answer = lab.chat(conversation, model=model, tools=[get_weather], cache=False)
        answers[model] = (answer.text, answer.finish_reason, answer.tool_calls)
    assert set(answers.values()) == {("echo: sunny", "stop", ())}


def test_the_same_image_reaches_every_vendor_and_the_answers_line_up(
    lab: Lab, fault: FaultServer, servers, tmp_path: Path
) -> None:
    picture = tmp_path / "dot.png"
    picture.write_bytes(PNG)
    prompts = pd.DataFrame({"prompt": ["what is this?"], "picture": [picture]})
    frame = lab.compare(prompts, list(MODELS), images="picture", progress=False, cache=False)
    assert frame.error_type.isna().all() and set(frame.response) == {"echo: what is this?"}
    filled = frame[ANSWER_COLUMNS].notna()
    assert (filled == filled.iloc[0]).all().all(), filled
    logs = [fault.log, *(s.log for s in servers)]
    seen = [e["images"] for log in logs for e in log if e.get("prompt") == "what is this?"]
    assert seen == [[Image.of(PNG).digest]] * len(MODELS)
