"""BedrockServer speaks the real Converse API and checks SigV4: boto3 parses all it sends.

boto3 is a dev-only dependency; opencode_lab itself signs with botocore and never imports boto3.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore
import botocore.config
import botocore.exceptions
import pytest
from botocore.eventstream import ChecksumMismatch
from urllib3.exceptions import ProtocolError

from opencode_lab.testing.bedrock_server import ACCESS_KEY, OUTCOMES, SECRET_KEY, BedrockServer
from opencode_lab.testing.faults import GENERIC

pytestmark = pytest.mark.slow  # drives the vendor SDK, which takes seconds to import

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
PROFILE = "us." + HAIKU
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
NO_RETRIES = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def server() -> Iterator[BedrockServer]:
    with BedrockServer(models=[HAIKU, PROFILE, "amazon.nova-lite-v1:0"]) as srv:
        yield srv


def sdk(server: BedrockServer, service: str = "bedrock-runtime", **kw: Any) -> Any:
    keys = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY} | kw
    return boto3.client(service, endpoint_url=server.root_url, region_name="us-east-1", config=NO_RETRIES, **keys)


@pytest.fixture
def client(server: BedrockServer) -> Any:
    server.reset()
    return sdk(server)


def user(text: str, *more: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}, *more]}]


def test_the_sdk_parses_a_converse_answer(client: Any, server: BedrockServer) -> None:
    answer = client.converse(
        modelId=HAIKU,
        messages=user("hello there"),
        system=[{"text": "be brief"}],
        inferenceConfig={"maxTokens": 64, "temperature": 0.5},
    )
    assert answer["output"]["message"] == {"role": "assistant", "content": [{"text": "echo: hello there"}]}
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"] == {"inputTokens": 2, "outputTokens": 3, "totalTokens": 5}
    entry = server.log[-1]
    assert (entry["model"], entry["region"], entry["outcome"]) == (HAIKU, "us-east-1", "ok")
    assert entry["sampling"] == {
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.5},
        "system": [{"text": "be brief"}],
    }


def test_the_sdk_parses_every_streamed_event(client: Any) -> None:
    events = list(client.converse_stream(modelId=PROFILE, messages=user("one two three"))["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == (
        "echo: one two three"
    )
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 4


def test_a_tool_call_round_trip_parses_whole_and_streamed(client: Any) -> None:
    asked = user('weather in Paris? [[call:get_weather {"city": "Paris"}]]')
    answer = client.converse(modelId=HAIKU, messages=asked, toolConfig={"tools": [WEATHER]})
    use = answer["output"]["message"]["content"][0]["toolUse"]
    assert (use["name"], use["input"], answer["stopReason"]) == ("get_weather", {"city": "Paris"}, "tool_use")
    events = list(client.converse_stream(modelId=HAIKU, messages=asked, toolConfig={"tools": [WEATHER]})["stream"])
    start = next(e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e)
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e]
    assert start["name"] == "get_weather" and json.loads("".join(pieces)) == {"city": "Paris"}
    result = {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "18 C"}]}}
    turns = [*asked, answer["output"]["message"], {"role": "user", "content": [result]}]
    final = client.converse(modelId=HAIKU, messages=turns, toolConfig={"tools": [WEATHER]})
    assert final["output"]["message"]["content"] == [{"text": "echo: 18 C"}]


def test_an_image_block_arrives_as_its_bytes(client: Any, server: BedrockServer) -> None:
    image = {"image": {"format": "png", "source": {"bytes": PNG}}}
    client.converse(modelId=HAIKU, messages=user("what is this?", image))
    assert len(server.log[-1]["images"]) == 1 and server.log[-1]["prompt"] == "what is this?"


@pytest.mark.parametrize("outcome", sorted(OUTCOMES - GENERIC))
def test_every_error_is_one_the_sdk_understands_whole_and_streamed(client: Any, outcome: str) -> None:
    prompt = f"hi there [[fault:{outcome}]]"
    with pytest.raises(botocore.exceptions.ClientError) as whole:
        client.converse(modelId=HAIKU, messages=user(prompt))
    assert whole.value.response["Error"]["Code"].endswith("Exception") and whole.value.response["Error"]["Message"]
    if outcome == "error_event":  # in a stream: an exception event after the first text
        with pytest.raises(botocore.exceptions.EventStreamError, match="modelStreamErrorException"):
            list(client.converse_stream(modelId=HAIKU, messages=user(prompt))["stream"])
        return
    with pytest.raises(botocore.exceptions.ClientError) as streamed:
        client.converse_stream(modelId=HAIKU, messages=user(prompt))
    assert streamed.value.response["Error"] == whole.value.response["Error"]


def test_a_malformed_answer_and_a_corrupted_frame_give_the_sdk_no_answer(client: Any) -> None:
    spoiled = client.converse(modelId=HAIKU, messages=user("a b c [[fault:malformed]]"))
    assert "output" not in spoiled  # botocore drops a body it cannot parse
    with pytest.raises(ChecksumMismatch):
        list(client.converse_stream(modelId=HAIKU, messages=user("a b c [[fault:malformed]]"))["stream"])


def test_a_stream_cut_before_its_end_has_given_the_whole_answer(client: Any) -> None:
    events: list[dict[str, Any]] = []
    with pytest.raises(ProtocolError):  # the connection drops where metadata would have come
        events += client.converse_stream(modelId=HAIKU, messages=user("a b c [[fault:cut_before_end]]"))["stream"]
    assert "messageStop" in events[-1]


def test_a_rate_limit_says_how_long_to_wait(client: Any, server: BedrockServer) -> None:
    server.configure(retry_after=7)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.converse(modelId=HAIKU, messages=user("hi [[fault:rate_limit]]"))
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "7"


def test_a_wrong_secret_is_refused_as_aws_refuses_it(server: BedrockServer) -> None:
    server.reset()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sdk(server, aws_secret_access_key="not-the-secret").converse(modelId=HAIKU, messages=user("hi"))
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_body_changed_after_signing_is_refused(client: Any, server: BedrockServer) -> None:
    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(b"pay 10", b"pay 99")

    client.meta.events.register("before-send.bedrock-runtime.Converse", tamper)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.converse(modelId=HAIKU, messages=user("pay 10"))
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert server.log[-1]["prompt"] == "pay 99"  # what arrived was changed, and refused


def test_an_unknown_key_and_an_unsigned_request_are_refused(server: BedrockServer) -> None:
    server.reset()
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        sdk(server, aws_access_key_id="AKIDSOMEONEELSE00000").converse(modelId=HAIKU, messages=user("hi"))
    unsigned = NO_RETRIES.merge(botocore.config.Config(signature_version=botocore.UNSIGNED))
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        boto3.client(
            "bedrock-runtime", endpoint_url=server.root_url, region_name="us-east-1", config=unsigned
        ).converse(modelId=HAIKU, messages=user("hi"))
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert missing.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_a_session_token_is_signed_and_accepted(server: BedrockServer) -> None:
    server.reset()
    client = sdk(server, aws_session_token="FwoGZXIvYXdzEXAMPLESESSIONTOKEN")
    assert client.converse(modelId=HAIKU, messages=user("hi"))["stopReason"] == "end_turn"
    assert server.log[-1]["token"] is True


def test_a_request_bedrock_would_refuse_is_a_validation_error(client: Any) -> None:
    turns = [*user("one"), *user("two")]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.converse(modelId=HAIKU, messages=turns)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "alternate" in caught.value.response["Error"]["Message"]


def test_the_control_plane_sdk_parses_the_model_lists(server: BedrockServer) -> None:
    control = sdk(server, "bedrock")
    models = control.list_foundation_models()["modelSummaries"]
    profiles = control.list_inference_profiles()["inferenceProfileSummaries"]
    assert [m["modelId"] for m in models] == [HAIKU, "amazon.nova-lite-v1:0"]
    assert [p["inferenceProfileId"] for p in profiles] == [PROFILE]
