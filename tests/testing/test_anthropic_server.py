"""AnthropicServer speaks the real Messages API: the official ``anthropic`` SDK parses all it sends.

The SDK is a dev-only dependency; opencode_lab itself never imports it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

import httpx
import pytest

from opencode_lab.testing.anthropic_server import THOUGHT, AnthropicServer

if TYPE_CHECKING:
    import anthropic

pytestmark = pytest.mark.slow  # drives the vendor SDKs, which take seconds to import

KEY = "sk-ant-test-0123456789"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
REPLY = '```json\n{"score": 4, "reason": "short and right"}\n```'
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer(models=["claude-3-5-haiku-latest", "claude-sonnet-4-0", "claude-opus-4-0"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def sdk() -> ModuleType:
    """The SDK, imported by these tests alone: a worker that runs none of them never pays for it."""
    import anthropic

    return anthropic


@pytest.fixture
def client(sdk: ModuleType, server: AnthropicServer) -> Iterator[anthropic.Anthropic]:
    server.reset()
    with sdk.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        yield client


def ask(client: anthropic.Anthropic, content: str, **kw: object) -> anthropic.types.Message:
    return client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=64, messages=[{"role": "user", "content": content}], **kw
    )


def test_the_sdk_parses_a_message(client: anthropic.Anthropic, server: AnthropicServer) -> None:
    message = ask(client, "hello there", system="be brief")
    assert message.type == "message" and message.role == "assistant"
    assert [(b.type, b.text) for b in message.content] == [("text", "echo: hello there")]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 3)
    assert server.log[-1]["sampling"] == {"max_tokens": 64, "system": "be brief"}


def test_the_sdk_parses_every_streamed_event(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=64, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].text == "echo: one two three"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4


def test_the_sdk_reads_a_scripted_reply_whole_and_streamed(
    client: anthropic.Anthropic, server: AnthropicServer
) -> None:
    server.reply = lambda body: REPLY
    whole = ask(client, "grade this")
    with client.messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "grade this"}]
    ) as stream:
        streamed = stream.get_final_message()
    assert whole.content[0].text == streamed.content[0].text == REPLY
    assert whole.usage.output_tokens == streamed.usage.output_tokens == len(REPLY.split())


def test_a_tool_call_parses_whole_and_streamed(client: anthropic.Anthropic) -> None:
    prompt = 'weather? [[call:get_weather {"city": "Paris"}]]'
    whole = ask(client, prompt, tools=[WEATHER])
    with client.messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": prompt}], tools=[WEATHER]
    ) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        (block,) = message.content
        assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
        assert block.id.startswith("toolu_") and message.stop_reason == "tool_use"


def test_a_tool_result_turn_gets_a_text_answer(client: anthropic.Anthropic) -> None:
    call = ask(client, "weather?", tools=[WEATHER]).content[0]
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [call.model_dump(include={"type", "id", "name", "input"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}]},
    ]
    answer = client.messages.create(model="m", max_tokens=64, messages=messages, tools=[WEATHER])
    assert answer.content[0].text == "echo: sunny, 21 C" and answer.stop_reason == "end_turn"


def test_max_tokens_cuts_the_answer_with_its_stop_reason(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="m", max_tokens=2, messages=[{"role": "user", "content": "one two three four"}]
    )
    assert message.content[0].text == "echo: one" and message.stop_reason == "max_tokens"


def test_an_image_block_is_logged_by_its_content_hash(client: anthropic.Anthropic, server: AnthropicServer) -> None:
    image = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
    content = [{"type": "image", "source": image}, {"type": "text", "text": "what is this?"}]
    ask(client, content)  # type: ignore[arg-type]
    assert server.log[-1]["images"] == ["sha256:" + hashlib.sha256(PNG).hexdigest()]


def test_the_sdk_pages_through_the_model_list(client: anthropic.Anthropic) -> None:
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == ["claude-3-5-haiku-latest", "claude-sonnet-4-0"] and page.has_more
    assert [m.id for m in client.models.list(limit=2)] == [
        "claude-3-5-haiku-latest",
        "claude-sonnet-4-0",
        "claude-opus-4-0",
    ]


@pytest.mark.parametrize(
    ("outcome", "error", "status", "kind"),
    [
        ("rate_limit", "RateLimitError", 429, "rate_limit_error"),
        ("overloaded", "InternalServerError", 529, "overloaded_error"),
        ("server_error", "InternalServerError", 500, "api_error"),
        ("unauthorized", "AuthenticationError", 401, "authentication_error"),
        ("context_length", "BadRequestError", 400, "invalid_request_error"),
        ("not_found_model", "NotFoundError", 404, "not_found_error"),
    ],
)
def test_the_sdk_raises_its_typed_error(sdk, client, outcome: str, error: str, status: int, kind: str) -> None:
    with pytest.raises(getattr(sdk, error)) as info:
        ask(client, f"[[fault:{outcome}]]")
    assert info.value.status_code == status
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == kind
    assert info.value.response.headers["request-id"].startswith("req_")


def test_an_overload_is_the_sdks_overloaded_error(sdk: ModuleType, client: anthropic.Anthropic) -> None:
    with pytest.raises(sdk.OverloadedError):
        ask(client, "[[fault:overloaded]]")


def test_a_rate_limit_carries_retry_after(
    sdk: ModuleType, client: anthropic.Anthropic, server: AnthropicServer
) -> None:
    server.configure(retry_after=7)
    with pytest.raises(sdk.RateLimitError) as info:
        ask(client, "[[fault:rate_limit]]")
    headers = info.value.response.headers
    assert headers["retry-after"] == "7" and headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_a_mid_stream_error_event_raises_in_the_sdk(sdk: ModuleType, client: anthropic.Anthropic) -> None:
    received = []
    messages = [{"role": "user", "content": "one two [[fault:error_event]]"}]
    with (
        pytest.raises(sdk.APIStatusError) as info,
        client.messages.stream(model="m", max_tokens=64, messages=messages) as stream,
    ):
        received.extend(stream.text_stream)
    assert received == ["echo:"]
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_a_request_without_a_key_is_refused_as_the_api_would(server: AnthropicServer) -> None:
    server.reset()
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{server.base_url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, {}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}, None, "anthropic-version"),
        (
            {"model": "m", "max_tokens": 8, "messages": [{"role": "system", "content": "hi"}]},
            {},
            'Unexpected role "system"',
        ),
    ],
)
def test_a_malformed_request_is_refused_as_the_api_would(server, body, headers, message: str) -> None:
    sent = {"x-api-key": KEY, **({"anthropic-version": "2023-06-01"} if headers is not None else {})}
    response = httpx.post(f"{server.base_url}/v1/messages", json=body, headers=sent)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_the_sdk_parses_cache_read_and_write_counts_whole_and_streamed(
    client: anthropic.Anthropic, server: AnthropicServer
) -> None:
    server.configure(usage={"cache_read_input_tokens": 10, "cache_creation_input_tokens": 4})
    whole = ask(client, "hi")
    with client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (10, 4)


def test_the_sdk_parses_a_thinking_block_before_the_answer_whole_and_streamed(client: anthropic.Anthropic) -> None:
    asked: dict = {
        "model": "claude-3-5-haiku-latest", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "hi"}],
    }  # fmt: skip
    whole = client.messages.create(**asked)
    with client.messages.stream(**asked) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert (message.content[0].thinking, message.content[1].text) == (THOUGHT, "echo: hi")
