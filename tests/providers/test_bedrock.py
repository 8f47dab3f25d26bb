"""The Bedrock provider against a real loopback server that speaks Converse and verifies SigV4 signatures."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from opencode_lab import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ConfigError,
    ContextWindowError,
    InvalidRequestError,
    Lab,
    LabError,
    MalformedResponseError,
    ModelNotFoundError,
    ModelUnavailableError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    Settings,
    StreamInterruptedError,
)
from opencode_lab.core.content import Image
from opencode_lab.core.errors import error_type_of
from opencode_lab.core.types import Completion, StreamChunk
from opencode_lab.providers.bedrock import BedrockProvider, from_config
from opencode_lab.providers.prices import bundled_price
from opencode_lab.testing.bedrock_server import SECRET_KEY, BedrockServer

T = TypeVar("T")
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
PROFILE = "us." + MODEL
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cf00000301010018dd8db00000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def _server() -> Iterator[BedrockServer]:
    with BedrockServer(models=[MODEL, PROFILE, "amazon.nova-micro-v1:0"]) as srv:
        yield srv


@pytest.fixture
def server(_server: BedrockServer, aws: None) -> BedrockServer:
    _server.reset()
    return _server


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def asking(image: object, text: str = "what is this?") -> list[dict[str, object]]:
    return [{"role": "user", "content": [text, {"type": "image", "image": image}]}]


def provider_for(server: BedrockServer, tmp_path: Path, extra: str = "") -> BedrockProvider:
    toml = tmp_path / "bedrock.toml"
    toml.write_text(
        f'[providers.bedrock]\ntype = "bedrock"\nregion = "us-east-1"\nbase_url = "{server.base_url}"\n{extra}'
    )
    settings = Settings.load(toml, env={})
    return from_config(settings.providers["bedrock"], settings)


def use(server: BedrockServer, tmp_path: Path, call: Any) -> Any:
    async def go() -> Any:
        provider = provider_for(server, tmp_path)
        try:
            return await call(provider)
        finally:
            await provider.aclose()

    return run(go())


def complete(server: BedrockServer, tmp_path: Path, prompt: Any, model: str = MODEL, **params: Any) -> Completion:
    request = ChatRequest.build(prompt, **params)
    return use(server, tmp_path, lambda p: p.complete(model, request))  # type: ignore[no-any-return]


def stream(server: BedrockServer, tmp_path: Path, prompt: Any, **params: Any) -> list[StreamChunk]:
    request = ChatRequest.build(prompt, **params)

    async def collect(provider: BedrockProvider) -> list[StreamChunk]:
        return [chunk async for chunk in provider.stream(MODEL, request)]

    return use(server, tmp_path, collect)  # type: ignore[no-any-return]


def test_a_signed_answer_has_its_text_usage_and_finish_reason(server: BedrockServer, tmp_path: Path) -> None:
    completion = complete(server, tmp_path, "hello there")
    assert completion.text == "echo: hello there" and completion.model == MODEL
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (2, 3)
    assert completion.finish_reason == "stop"
    entry = server.log[-1]
    assert (entry["outcome"], entry["region"], entry["model"]) == ("ok", "us-east-1", MODEL)


def test_an_inference_profile_id_is_sent_as_its_own_model_id(server: BedrockServer, tmp_path: Path) -> None:
    complete(server, tmp_path, "hi", model=PROFILE)
    assert server.log[-1]["model"] == PROFILE
    assert server.log[-1]["path"] == f"/model/{PROFILE.replace(':', '%3A')}/converse"


def test_system_sampling_and_stop_take_converse_names_and_seed_is_left_out(
    server: BedrockServer, tmp_path: Path
) -> None:
    complete(server, tmp_path, "hi", system="be brief", temperature=0.5, top_p=0.9, max_tokens=9, stop=["END"], seed=7)
    assert server.log[-1]["sampling"] == {
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 9, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
    }


def test_max_tokens_is_a_length_finish(server: BedrockServer, tmp_path: Path) -> None:
    completion = complete(server, tmp_path, "one two three four", max_tokens=2)
    assert completion.text == "echo: one" and completion.finish_reason == "length"


def test_a_stream_of_binary_events_yields_deltas_then_the_whole_completion(
    server: BedrockServer, tmp_path: Path
) -> None:
    chunks = stream(server, tmp_path, "one two three")
    deltas = [c.delta for c in chunks if c.delta]
    final = chunks[-1].completion
    assert deltas == ["echo:", " one", " two", " three"]
    assert final is not None and final.text == "".join(deltas) and final.finish_reason == "stop"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_tool_call_comes_back_in_the_one_shape_and_its_result_goes_back(
    server: BedrockServer, tmp_path: Path, streamed: bool
) -> None:
    weather = {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    prompt = 'weather in Paris? [[call:get_weather {"city": "Paris"}]]'
    first = stream(server, tmp_path, prompt, tools=[weather])[-1].completion if streamed else None
    first = first or complete(server, tmp_path, prompt, tools=[weather])
    assert [(c.name, dict(c.arguments or {})) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert first.finish_reason == "tool_calls" and server.log[-1]["tools"] == ["get_weather"]
    call = first.tool_calls[0]
    turns = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "", "tool_calls": [call.to_openai()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
    ]
    assert complete(server, tmp_path, turns, tools=[weather]).text == "echo: 18 C"
    assert server.log[-1]["outcome"] == "ok"


def test_an_image_travels_as_bytes_and_an_image_url_is_refused_before_sending(
    server: BedrockServer, tmp_path: Path
) -> None:
    complete(server, tmp_path, asking(PNG))
    assert server.log[-1]["images"] == [Image("image/png", PNG).digest]
    with pytest.raises(InvalidRequestError, match="not an image URL"):
        complete(server, tmp_path, asking("https://example.org/cat.png"))
    assert len(server.log) == 1


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ("rate_limit", RateLimitError),
        ("model_not_ready", ServerError),
        ("service_unavailable", ServerError),
        ("server_error", ServerError),
        ("access_denied", AuthenticationError),
        ("unauthorized", AuthenticationError),
        ("bad_request", BadRequestError),
        ("context_length", ContextWindowError),
        ("not_found_model", ModelUnavailableError),
        ("malformed", MalformedResponseError),
        ("reset", ProviderConnectionError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_each_bedrock_error_maps_to_its_typed_error(
    server: BedrockServer, tmp_path: Path, outcome: str, error: type, streamed: bool
) -> None:
    with pytest.raises(error) as info:
        (stream if streamed else complete)(server, tmp_path, f"[[fault:{outcome}]]")
    assert info.value.provider == "bedrock"


def test_throttling_is_retryable_and_says_how_long_to_wait(server: BedrockServer, tmp_path: Path) -> None:
    server.configure(retry_after=3)
    with pytest.raises(RateLimitError) as info:
        complete(server, tmp_path, "[[fault:rate_limit]]")
    assert info.value.retry_after == pytest.approx(3.0) and info.value.retryable


def test_a_model_not_ready_is_retried_although_aws_answers_it_429(server: BedrockServer, tmp_path: Path) -> None:
    with pytest.raises(ServerError) as info:
        complete(server, tmp_path, "[[fault:model_not_ready]]")
    assert info.value.retryable and "not ready" in str(info.value)


def test_an_exception_event_after_text_is_a_stream_interruption_with_the_text(
    server: BedrockServer, tmp_path: Path
) -> None:
    with pytest.raises(StreamInterruptedError) as info:
        stream(server, tmp_path, "one two [[fault:error_event]]")
    assert info.value.partial_text == "echo:" and "modelStreamErrorException" in str(info.value)


def test_a_corrupted_frame_is_a_malformed_response(server: BedrockServer, tmp_path: Path) -> None:
    with pytest.raises(MalformedResponseError, match="ChecksumMismatch"):
        stream(server, tmp_path, "one [[fault:malformed]]")


def test_a_stream_cut_after_messagestop_has_still_given_its_answer(server: BedrockServer, tmp_path: Path) -> None:
    final = stream(server, tmp_path, "one two [[fault:cut_before_end]]")[-1].completion
    assert final is not None and final.text == "echo: one two [[fault:cut_before_end]]"
    assert final.finish_reason == "stop"
    assert final.usage.output_tokens is None  # the usage came in the metadata event that never did: unknown


def test_a_wrong_secret_is_an_authentication_error_that_shows_no_secret(
    server: BedrockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong/secret/key/for/tests/9876543210")
    with pytest.raises(AuthenticationError, match="signature") as info:
        complete(server, tmp_path, "hi")
    assert server.log[-1]["outcome"] == "invalid_signature"
    assert "wrong/secret" not in str(info.value) and SECRET_KEY not in str(info.value)


def test_a_session_token_from_the_chain_is_sent_and_signed(
    server: BedrockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzTESTSESSIONTOKEN0123456789")
    complete(server, tmp_path, "hi")
    assert server.log[-1]["token"] is True and server.log[-1]["outcome"] == "ok"


def test_credentials_come_from_a_named_profile(server: BedrockServer, tmp_path: Path, monkeypatch) -> None:
    from opencode_lab.testing.bedrock_server import ACCESS_KEY

    credentials = tmp_path / "credentials"
    credentials.write_text(f"[research]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    async def go() -> Completion:
        provider = provider_for(server, tmp_path, 'profile = "research"\n')
        try:
            return await provider.complete(MODEL, ChatRequest.build("hi"))
        finally:
            await provider.aclose()

    assert run(go()).text == "echo: hi"


def test_no_credentials_anywhere_is_an_authentication_error(
    server: BedrockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AuthenticationError, match="no AWS credentials"):
        complete(server, tmp_path, "hi")
    assert server.log == []


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('type = "bedrock"\n', "needs a region"),
        ('type = "bedrock"\nregion = "us-east-1"\nprofile = "nobody"\n', "profile 'nobody' is not in"),
        ('type = "bedrock"\nregion = "us-east-1"\nprofil = "x"\n', "did you mean 'profile'"),
    ],
)
def test_a_bad_bedrock_table_is_refused_when_the_lab_is_built(aws: None, tmp_path: Path, table: str, says: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(f"[providers.bedrock]\n{table}")
    with pytest.raises(ConfigError, match=says):
        Lab.from_file(toml)


def test_the_region_of_the_aws_configuration_is_used_when_the_table_names_none(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    toml = tmp_path / "b.toml"
    toml.write_text('[providers.bedrock]\ntype = "bedrock"\n')
    settings = Settings.load(toml, env={})
    provider = from_config(settings.providers["bedrock"], settings)
    assert (
        provider.region == "eu-central-1" and provider.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    )


def test_the_model_list_holds_foundation_models_and_inference_profiles(server: BedrockServer, tmp_path: Path) -> None:
    listed = use(server, tmp_path, lambda p: p.list_models())
    assert [m.id for m in listed] == [MODEL, "amazon.nova-micro-v1:0", PROFILE]


# -- through the Lab -----------------------------------------------------------------------------


@pytest.fixture
def lab(server: BedrockServer, tmp_path: Path) -> Iterator[Lab]:
    toml = tmp_path / "lab.toml"
    toml.write_text(f'[providers.bedrock]\ntype = "bedrock"\nregion = "us-east-1"\nbase_url = "{server.base_url}"\n')
    with Lab.from_file(toml) as lab:
        yield lab


@pytest.mark.parametrize("model", [MODEL, PROFILE])
def test_a_bedrock_model_answers_with_cost_from_the_dated_price_table(lab: Lab, model: str) -> None:
    result = lab.chat("one two three", model=f"bedrock/{model}", cache=False)
    price = bundled_price("bedrock", model)
    assert price is not None and price == bundled_price("bedrock", MODEL) and result.text == "echo: one two three"
    assert result.cost_source == "catalog"
    expected = (result.input_tokens * price.input_per_mtok + result.output_tokens * price.output_per_mtok) / 1e6
    assert result.cost_usd == pytest.approx(expected)


def test_models_shows_the_cloud_and_region_of_bedrock_deployments(lab: Lab) -> None:
    lab.chat("hi", model=f"bedrock/{MODEL}", cache=False)
    row = lab.models().loc[f"bedrock/{MODEL}"]
    assert (row.cloud, row.region) == ("bedrock", "us-east-1")


def test_a_streamed_bedrock_answer_reaches_the_lab(lab: Lab) -> None:
    assert "".join(lab.stream("one two", model=f"bedrock/{MODEL}", cache=False)) == "echo: one two"


def test_throttling_is_retried_by_the_router(lab: Lab) -> None:
    result = lab.chat("hi [[fault:rate_limit*1]]", model=f"bedrock/{MODEL}", cache=False)
    assert [a.error_type for a in result.attempts] == ["rate_limit", None]


def test_an_id_bedrock_does_not_list_suggests_the_closest(lab: Lab) -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean"):
        lab.chat("hi", model="bedrock/anthropic.claude-3-5-haiku-20241022-v1:9")


def test_the_secret_never_reaches_an_error_a_log_or_the_server_log(
    lab: Lab, server: BedrockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LabError) as info:
        lab.chat("[[fault:access_denied]]", model=f"bedrock/{MODEL}", cache=False)
    assert error_type_of(info.value) == "auth"
    assert SECRET_KEY not in str(info.value) and SECRET_KEY not in repr(info.value.attempts)
    assert SECRET_KEY not in caplog.text and SECRET_KEY not in json.dumps(server.log)


@pytest.mark.slow
def test_importing_the_package_leaves_botocore_unimported() -> None:
    code = "import sys, opencode_lab; print('botocore' in sys.modules, 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_a_missing_botocore_names_the_extra_to_install(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text('[providers.bedrock]\ntype = "bedrock"\nregion = "us-east-1"\n')
    code = (
        "import sys; sys.modules['botocore'] = None\n"
        "import opencode_lab as oc\n"
        f"try: oc.Lab.from_file({str(toml)!r})\n"
        "except oc.ConfigError as e: print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'opencode_lab[aws]'" in out and "[providers.bedrock]" in out


# -- structured output ---------------------------------------------------------------------------

CITY = {
    "title": "City",
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
}


@pytest.mark.parametrize("streamed", [False, True])
def test_a_schema_is_a_forced_tool_whose_input_is_the_answer(
    server: BedrockServer, tmp_path: Path, streamed: bool
) -> None:
    completion = (
        stream(server, tmp_path, "biggest city?", schema=CITY)[-1].completion
        if streamed
        else complete(server, tmp_path, "biggest city?", schema=CITY)
    )
    assert completion is not None and json.loads(completion.text) == {"name": "example", "population": 1}
    assert completion.tool_calls == () and completion.finish_reason == "stop"
    assert server.log[-1]["tools"] == ["City"] and server.requests[-1]["toolConfig"]["toolChoice"] == {
        "tool": {"name": "City"}
    }
