"""GeminiServer speaks the real Gemini API: the official ``google-genai`` SDK parses all it sends.

The SDK is a dev-only dependency; opencode_lab itself never imports it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from opencode_lab.testing.gemini_server import GeminiServer

pytestmark = pytest.mark.slow  # drives the vendor SDKs, which take seconds to import

KEY = "AIza-test-0123456789"
REPLY = '```json\n{"score": 4, "reason": "short and right"}\n```'
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
NO_AUTO = types.AutomaticFunctionCallingConfig(disable=True)


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "sunny"


@pytest.fixture(scope="module")
def server() -> Iterator[GeminiServer]:
    with GeminiServer(models=["gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro"]) as srv:
        yield srv


@pytest.fixture
def client(server: GeminiServer) -> genai.Client:
    server.reset()
    return genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(base_url=server.base_url, retry_options=types.HttpRetryOptions(attempts=1)),
    )


def test_the_sdk_parses_a_response(client: genai.Client, server: GeminiServer) -> None:
    config = types.GenerateContentConfig(
        system_instruction="be brief", temperature=0.5, top_p=0.9, max_output_tokens=10, stop_sequences=["x"], seed=3
    )
    response = client.models.generate_content(model="gemini-2.0-flash", contents="hello there", config=config)
    assert response.text == "echo: hello there"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (2, 3, 5)
    assert server.log[-1]["sampling"] == {
        "temperature": 0.5,
        "topP": 0.9,
        "maxOutputTokens": 10,
        "stopSequences": ["x"],
        "seed": 3,
        "system": "be brief",
    }


def test_the_sdk_parses_every_streamed_chunk(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="one two three"))
    assert "".join(c.text for c in chunks) == "echo: one two three"
    assert [c.candidates[0].finish_reason for c in chunks][-1] == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 4


def test_the_sdk_reads_a_scripted_reply_whole_and_streamed(client: genai.Client, server: GeminiServer) -> None:
    server.reply = lambda body: REPLY
    whole = client.models.generate_content(model="g", contents="grade this")
    chunks = list(client.models.generate_content_stream(model="g", contents="grade this"))
    assert whole.text == "".join(c.text for c in chunks) == REPLY
    assert whole.usage_metadata.candidates_token_count == len(REPLY.split())


def test_a_function_call_parses_whole_and_streamed(client: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=[get_weather], automatic_function_calling=NO_AUTO)
    prompt = 'weather? [[call:get_weather {"city": "Paris"}]]'
    whole = client.models.generate_content(model="g", contents=prompt, config=config)
    streamed = list(client.models.generate_content_stream(model="g", contents=prompt, config=config))
    for response in (whole, streamed[-1]):
        (call,) = response.function_calls
        assert (call.name, call.args) == ("get_weather", {"city": "Paris"})


def test_a_function_response_turn_gets_a_text_answer(client: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=[get_weather], automatic_function_calling=NO_AUTO)
    call = client.models.generate_content(model="g", contents="weather?", config=config).function_calls[0]
    contents = [
        types.Content(role="user", parts=[types.Part(text="weather?")]),
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(
            role="user", parts=[types.Part.from_function_response(name=call.name, response={"result": "sunny"})]
        ),
    ]
    answer = client.models.generate_content(model="g", contents=contents, config=config)
    assert answer.text == "echo: sunny"


def test_inline_image_data_is_logged_by_its_content_hash(client: genai.Client, server: GeminiServer) -> None:
    parts = [types.Part.from_bytes(data=PNG, mime_type="image/png"), "what is this?"]
    client.models.generate_content(model="g", contents=parts)
    assert server.log[-1]["images"] == ["sha256:" + hashlib.sha256(PNG).hexdigest()]


def test_the_sdk_pages_through_the_model_list(client: genai.Client) -> None:
    names = [m.name for m in client.models.list(config={"page_size": 2})]
    assert names == ["models/gemini-2.0-flash", "models/gemini-2.5-flash", "models/gemini-2.5-pro"]


@pytest.mark.parametrize(
    ("outcome", "error", "code", "status"),
    [
        ("rate_limit", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("unavailable", errors.ServerError, 503, "UNAVAILABLE"),
        ("server_error", errors.ServerError, 500, "INTERNAL"),
        ("unauthorized", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("context_length", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("not_found_model", errors.ClientError, 404, "NOT_FOUND"),
    ],
)
def test_the_sdk_raises_its_typed_error(client, outcome: str, error: type, code: int, status: str) -> None:
    with pytest.raises(error) as info:
        client.models.generate_content(model="g", contents=f"[[fault:{outcome}]]")
    assert (info.value.code, info.value.status) == (code, status)


def test_a_rate_limit_carries_a_retry_delay(client: genai.Client, server: GeminiServer) -> None:
    server.configure(retry_after=7)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="g", contents="[[fault:rate_limit]]")
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in info.value.details["error"][
        "details"
    ]


def test_a_mid_stream_error_raises_in_the_sdk(client: genai.Client) -> None:
    received = []
    with pytest.raises(errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(model="g", contents="one two [[fault:error_event]]"):
            received.append(chunk.text)
    assert received == ["echo:"] and info.value.code == 503


def test_a_blocked_prompt_is_prompt_feedback(client: genai.Client) -> None:
    response = client.models.generate_content(model="g", contents="[[fault:blocked]]")
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not response.candidates


def test_a_safety_stop_is_a_finish_reason(client: genai.Client) -> None:
    response = client.models.generate_content(model="g", contents="[[fault:safety]]")
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.text is None


def test_a_request_without_a_key_is_refused_as_the_api_would(server: GeminiServer) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    response = httpx.post(f"{server.base_url}/v1beta/models/g:generateContent", json=body)
    assert response.status_code == 403 and response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_an_unknown_generation_config_field_is_refused_as_the_api_would(server: GeminiServer) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"max_tokens": 5}}
    response = httpx.post(
        f"{server.base_url}/v1beta/models/g:generateContent", json=body, headers={"x-goog-api-key": KEY}
    )
    assert response.status_code == 400 and "Unknown name 'max_tokens'" in response.json()["error"]["message"]


def test_the_sdk_parses_log_probabilities_and_thinking_and_cached_counts(
    client: genai.Client, server: GeminiServer
) -> None:
    server.configure(usage={"thoughtsTokenCount": 7, "cachedContentTokenCount": 1})
    config = types.GenerateContentConfig(response_logprobs=True, logprobs=2)
    response = client.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    result = response.candidates[0].logprobs_result
    assert [c.token for c in result.chosen_candidates] == ["echo:", " hi"]
    assert [c.token for c in result.top_candidates[0].candidates] == ["echo:", "alt1"]
    usage = response.usage_metadata
    assert (usage.thoughts_token_count, usage.cached_content_token_count) == (7, 1)
