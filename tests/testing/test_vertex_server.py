"""VertexServer speaks Vertex AI for Gemini and Claude: google-genai (vertexai=True) and AnthropicVertex parse it.

Both SDKs are dev-only dependencies; opencode_lab itself never imports them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from opencode_lab.testing.faults import GENERIC
from opencode_lab.testing.vertex_server import OUTCOMES, VertexServer

if TYPE_CHECKING:  # the SDKs are imported by the tests that use them: a worker that runs none never pays for them
    import anthropic
    from google import genai

pytestmark = pytest.mark.slow  # drives the vendor SDKs, which take seconds to import

TOKEN = "ya29.static-test-token"
GEMINI = "gemini-2.0-flash"
CLAUDE = "claude-3-5-haiku@20241022"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
#: the error statuses, which both SDKs raise as errors (the content faults are checked one by one)
ERRORS = sorted(OUTCOMES - GENERIC - {"blocked", "safety", "error_event"})


@pytest.fixture(scope="module")
def server() -> Iterator[VertexServer]:
    with VertexServer(models=[GEMINI, CLAUDE]) as srv:
        yield srv


@pytest.fixture
def google_sdk(server: VertexServer) -> genai.Client:
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials

    server.reset()
    server.configure(api_key=TOKEN)
    options = types.HttpOptions(
        base_url=server.root_url, api_version="v1", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(
        vertexai=True,
        project="lab-project",
        location="us-central1",
        credentials=Credentials(TOKEN),
        http_options=options,
    )


@pytest.fixture
def claude_sdk(server: VertexServer) -> Iterator[anthropic.AnthropicVertex]:
    import anthropic

    server.reset()
    server.configure(api_key=TOKEN)
    with anthropic.AnthropicVertex(
        region="us-central1",
        project_id="lab-project",
        access_token=TOKEN,
        base_url=server.root_url + "/v1",
        max_retries=0,
    ) as sdk:
        yield sdk


def ask_claude(sdk: anthropic.AnthropicVertex, content: object, **kw: object) -> anthropic.types.Message:
    return sdk.messages.create(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": content}], **kw)


# -- Gemini on Vertex, through google-genai -------------------------------------------------------


def test_google_genai_parses_an_answer_at_the_vertex_path(google_sdk: genai.Client, server: VertexServer) -> None:
    answer = google_sdk.models.generate_content(model=GEMINI, contents="hello there")
    assert answer.text == "echo: hello there" and answer.usage_metadata.total_token_count == 5
    entry = server.log[-1]
    assert (entry["project"], entry["location"], entry["publisher"], entry["outcome"]) == (
        "lab-project",
        "us-central1",
        "google",
        "ok",
    )


def test_google_genai_parses_every_streamed_chunk(google_sdk: genai.Client) -> None:
    from google.genai import types

    chunks = list(google_sdk.models.generate_content_stream(model=GEMINI, contents="one two three"))
    assert "".join(c.text or "" for c in chunks) == "echo: one two three"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_google_genai_parses_a_function_call_and_an_image_goes_in(google_sdk: genai.Client, server) -> None:
    from google.genai import types

    tool = types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])
    prompt = 'weather in Paris? [[call:get_weather {"city": "Paris"}]]'
    answer = google_sdk.models.generate_content(
        model=GEMINI, contents=prompt, config=types.GenerateContentConfig(tools=[tool])
    )
    call = answer.function_calls[0]
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    picture = types.Part.from_bytes(data=PNG, mime_type="image/png")
    google_sdk.models.generate_content(model=GEMINI, contents=["what is this?", picture])
    assert len(server.log[-1]["images"]) == 1


@pytest.mark.parametrize("outcome", ERRORS)
def test_google_genai_raises_every_error_status(google_sdk: genai.Client, outcome: str) -> None:
    from google.genai import errors

    with pytest.raises(errors.APIError) as info:
        google_sdk.models.generate_content(model=GEMINI, contents=f"hi [[fault:{outcome}]]")
    assert info.value.code >= 400 and info.value.message


def test_a_token_the_server_does_not_expect_is_refused(server: VertexServer) -> None:
    from google import genai
    from google.genai import errors, types
    from google.oauth2.credentials import Credentials

    server.reset()
    server.configure(api_key=TOKEN)
    options = types.HttpOptions(
        base_url=server.root_url, api_version="v1", retry_options=types.HttpRetryOptions(attempts=1)
    )
    sdk = genai.Client(
        vertexai=True, project="p", location="us-central1", credentials=Credentials("ya29.other"), http_options=options
    )
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model=GEMINI, contents="hi")
    assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"


# -- Claude on Vertex, through AnthropicVertex ----------------------------------------------------


def test_anthropic_vertex_parses_a_message(claude_sdk: anthropic.AnthropicVertex, server: VertexServer) -> None:
    message = ask_claude(claude_sdk, "hello there", system="be brief")
    assert [(b.type, b.text) for b in message.content] == [("text", "echo: hello there")]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 3
    assert (server.log[-1]["publisher"], server.log[-1]["model"]) == ("anthropic", CLAUDE)


def test_anthropic_vertex_parses_every_streamed_event(claude_sdk: anthropic.AnthropicVertex) -> None:
    with claude_sdk.messages.stream(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].text == "echo: one two three" and final.usage.output_tokens == 4


def test_anthropic_vertex_parses_a_tool_use_and_an_image_goes_in(
    claude_sdk: anthropic.AnthropicVertex, server: VertexServer
) -> None:
    tool = {"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}
    message = ask_claude(claude_sdk, 'weather? [[call:get_weather {"city": "Paris"}]]', tools=[tool])
    use = message.content[0]
    assert (use.type, use.name, use.input, message.stop_reason) == (
        "tool_use",
        "get_weather",
        {"city": "Paris"},
        "tool_use",
    )
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    }
    ask_claude(claude_sdk, [{"type": "text", "text": "what is this?"}, image])
    assert len(server.log[-1]["images"]) == 1


@pytest.mark.parametrize("outcome", ERRORS)
def test_anthropic_vertex_raises_every_error_status(claude_sdk: anthropic.AnthropicVertex, outcome: str) -> None:
    import anthropic

    with pytest.raises(anthropic.APIStatusError) as info:
        ask_claude(claude_sdk, f"hi [[fault:{outcome}]]")
    assert info.value.status_code >= 400


def test_anthropic_vertex_sees_an_error_event_mid_stream(claude_sdk: anthropic.AnthropicVertex) -> None:
    import anthropic

    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        claude_sdk.messages.stream(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "a b [[fault:error_event]]"}]
        ) as stream,
    ):
        list(stream)


# -- the token endpoint ---------------------------------------------------------------------------


def test_tokens_are_issued_counted_and_expire(server: VertexServer) -> None:
    from google import genai
    from google.genai import errors, types
    from google.oauth2.credentials import Credentials

    server.reset()
    server.token_lifetime_s = 0  # dead on arrival
    stale = Credentials(None, refresh_token="r", token_uri=server.token_url, client_id="c", client_secret="s")
    options = types.HttpOptions(
        base_url=server.root_url, api_version="v1", retry_options=types.HttpRetryOptions(attempts=1)
    )
    sdk = genai.Client(vertexai=True, project="p", location="us-central1", credentials=stale, http_options=options)
    try:
        with pytest.raises(errors.ClientError) as info:
            sdk.models.generate_content(model=GEMINI, contents="hi")
    finally:
        server.token_lifetime_s = 3600
    assert server.tokens == ["ya29.loopback-1"] and info.value.code == 401
