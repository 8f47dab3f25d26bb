"""FaultServer speaks the OpenAI chat-completions API: the official ``openai`` SDK parses what it sends,
tool calls and scripted replies included (whole and streamed).  The SDK is a dev-only dependency."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from opencode_lab.testing import FaultServer

if TYPE_CHECKING:  # the SDK is imported by the tests that use it: a worker that runs none never pays for it
    import openai

pytestmark = pytest.mark.slow  # drives the vendor SDKs, which take seconds to import

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = 'weather? [[call:get_weather {"city": "Paris"}]]'
REPLY = '```json\n{"score": 4, "reason": "short and right"}\n```'
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def client(fault: FaultServer) -> Iterator[openai.OpenAI]:
    import openai

    with openai.OpenAI(base_url=fault.base_url, api_key="sk-test-sdk-0123456789", max_retries=0) as sdk:
        yield sdk


def test_the_sdk_parses_an_answer_and_its_usage(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello there"}])
    assert answer.choices[0].message.content == "echo: hello there"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 3)


def test_the_sdk_parses_a_tool_call(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": CALL}], tools=[WEATHER])
    choice = answer.choices[0]
    (call,) = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})


def test_the_sdk_assembles_a_streamed_tool_call(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": CALL}], tools=[WEATHER]
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})


def test_a_tool_result_turn_gets_a_text_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER]
    )
    call = first.choices[0].message.tool_calls[0]
    messages = [
        {"role": "user", "content": "weather?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])
    assert answer.choices[0].message.content == "echo: sunny"


def test_an_image_url_part_is_logged_by_its_content_hash(client: openai.OpenAI, fault: FaultServer) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    content = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}]
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert fault.log[-1]["images"] == ["sha256:" + hashlib.sha256(PNG).hexdigest()]


def test_the_sdk_raises_its_typed_rate_limit_error(client: openai.OpenAI, fault: FaultServer) -> None:
    import openai

    fault.configure(retry_after=4)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "[[fault:rate_limit]]"}])
    assert info.value.response.headers["retry-after"] == "4"


def test_the_sdk_reads_a_scripted_reply_whole_and_streamed(client: openai.OpenAI, fault: FaultServer) -> None:
    fault.reply = lambda body: REPLY
    messages = [{"role": "user", "content": "grade this"}]
    whole = client.chat.completions.create(model="m", messages=messages)
    with client.chat.completions.stream(model="m", messages=messages, stream_options={"include_usage": True}) as stream:
        streamed = stream.get_final_completion()
    assert whole.choices[0].message.content == streamed.choices[0].message.content == REPLY
    assert whole.usage.completion_tokens == streamed.usage.completion_tokens == len(REPLY.split())


def test_the_sdk_raises_its_authentication_error_for_a_key_the_server_does_not_expect(
    client: openai.OpenAI, fault: FaultServer
) -> None:
    import openai

    fault.configure(api_key="sk-another-key")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_the_sdk_parses_log_probabilities_and_usage_details(client: openai.OpenAI, fault: FaultServer) -> None:
    details = {"prompt_tokens_details": {"cached_tokens": 1}, "completion_tokens_details": {"reasoning_tokens": 2}}
    fault.configure(usage=details)
    answer = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=2
    )
    (first, second) = answer.choices[0].logprobs.content
    assert (first.token, second.token) == ("echo:", " hi")
    assert [t.token for t in first.top_logprobs] == ["echo:", "alt1"]
    assert answer.usage.prompt_tokens_details.cached_tokens == 1
    assert answer.usage.completion_tokens_details.reasoning_tokens == 2
