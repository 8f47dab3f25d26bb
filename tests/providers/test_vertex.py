"""The Vertex AI provider against a loopback Vertex: Gemini and Claude, google-auth tokens refreshed on time."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.oauth2.credentials import Credentials

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
    ModelUnavailableError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    Settings,
    StreamInterruptedError,
)
from opencode_lab.core.errors import error_type_of
from opencode_lab.core.types import Completion, StreamChunk
from opencode_lab.providers.prices import bundled_price
from opencode_lab.providers.vertex import VertexProvider, from_config
from opencode_lab.testing.vertex_server import VertexServer

T = TypeVar("T")
GEMINI = "gemini-2.0-flash"
CLAUDE = "claude-3-5-haiku@20241022"
MODELS = (GEMINI, CLAUDE)


@pytest.fixture(scope="module")
def _server() -> Iterator[VertexServer]:
    with VertexServer(models=list(MODELS)) as srv:
        yield srv


@pytest.fixture
def server(_server: VertexServer) -> VertexServer:
    _server.reset()
    _server.token_lifetime_s = 3600
    return _server


@pytest.fixture
def key_file(server: VertexServer, gcp: Callable[[str], Path]) -> Path:
    return gcp(server.token_url)


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def table(server: VertexServer, key_file: Path, extra: str = "") -> str:
    return (
        f'[providers.vertex]\ntype = "vertex"\nlocation = "europe-west4"\ncredentials_file = "{key_file}"\n'
        f'base_url = "{server.root_url}"\n{extra}'
    )


def provider_for(server: VertexServer, key_file: Path, tmp_path: Path, extra: str = "") -> VertexProvider:
    toml = tmp_path / "vertex.toml"
    toml.write_text(table(server, key_file, extra))
    settings = Settings.load(toml, env={})
    return from_config(settings.providers["vertex"], settings)


def use(provider: VertexProvider, call: Callable[[VertexProvider], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        try:
            return await call(provider)
        finally:
            await provider.aclose()

    return run(go())


@pytest.fixture
def vertex(server: VertexServer, key_file: Path, tmp_path: Path) -> Callable[[], VertexProvider]:
    return lambda: provider_for(server, key_file, tmp_path)


def at_loopback(server: VertexServer, credentials: Credentials) -> VertexProvider:
    """A provider built directly, with a google-auth credentials object of the test's making."""
    return VertexProvider("vertex", server.root_url, project="p", location="global", credentials=credentials)


def complete(provider: VertexProvider, model: str, prompt: Any, **params: Any) -> Completion:
    request = ChatRequest.build(prompt, **params)
    return use(provider, lambda p: p.complete(model, request))  # type: ignore[no-any-return]


def stream(provider: VertexProvider, model: str, prompt: Any, **params: Any) -> list[StreamChunk]:
    request = ChatRequest.build(prompt, **params)

    async def collect(p: VertexProvider) -> list[StreamChunk]:
        return [chunk async for chunk in p.stream(model, request)]

    return use(provider, collect)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("model", "publisher"), [(GEMINI, "google"), (CLAUDE, "anthropic")])
def test_each_publisher_answers_at_its_path_in_the_project_and_location(
    vertex, server: VertexServer, model: str, publisher: str
) -> None:
    completion = complete(vertex(), model, "hello there", max_tokens=50)
    assert completion.text == "echo: hello there" and completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (2, 3)
    entry = server.log[-1]
    assert (entry["project"], entry["location"], entry["publisher"], entry["model"]) == (
        "lab-project",
        "europe-west4",
        publisher,
        model,
    )
    assert entry["outcome"] == "ok"


@pytest.mark.parametrize("model", MODELS)
def test_each_publisher_streams_deltas_then_the_whole_completion(vertex, model: str) -> None:
    chunks = stream(vertex(), model, "one two three")
    final = chunks[-1].completion
    assert [c.delta for c in chunks if c.delta] == ["echo:", " one", " two", " three"]
    assert final is not None and final.text == "echo: one two three" and final.finish_reason == "stop"


def test_claude_on_vertex_sends_its_version_in_the_body_and_max_tokens_always(vertex, server: VertexServer) -> None:
    complete(vertex(), CLAUDE, "hi", system="be brief")
    body = server.requests[-1]
    assert body["model"] == CLAUDE  # the server puts the path's model back for the Messages wire
    assert server.log[-1]["sampling"] == {"max_tokens": 1024, "system": "be brief"}


def test_gemini_sends_and_claims_the_seed_and_claude_neither(vertex, server: VertexServer) -> None:
    gemini = complete(vertex(), GEMINI, "hi", seed=7)
    assert gemini.seed == 7 and server.log[-1]["sampling"]["seed"] == 7
    claude = complete(vertex(), CLAUDE, "hi", seed=7)
    assert claude.seed is None and "seed" not in server.requests[-1]


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ("rate_limit", RateLimitError),
        ("unavailable", ServerError),
        ("server_error", ServerError),
        ("unauthorized", AuthenticationError),
        ("bad_request", BadRequestError),
        ("context_length", ContextWindowError),
        ("not_found_model", ModelUnavailableError),
        ("malformed", MalformedResponseError),
        ("reset", ProviderConnectionError),
    ],
)
@pytest.mark.parametrize("model", MODELS)
def test_each_failure_maps_to_its_typed_error(vertex, outcome: str, error: type, model: str) -> None:
    with pytest.raises(error) as info:
        complete(vertex(), model, f"[[fault:{outcome}]]")
    assert info.value.provider == "vertex"


@pytest.mark.parametrize("model", MODELS)
def test_an_error_mid_stream_keeps_the_text_so_far(vertex, model: str) -> None:
    with pytest.raises(StreamInterruptedError) as info:
        stream(vertex(), model, "one two [[fault:error_event]]")
    assert info.value.partial_text == "echo:"


def test_a_rate_limit_waits_as_its_retry_info_says(vertex, server: VertexServer) -> None:
    server.configure(retry_after=4)
    with pytest.raises(RateLimitError) as info:
        complete(vertex(), GEMINI, "[[fault:rate_limit]]")
    assert info.value.retry_after == pytest.approx(4.0)


def test_one_token_serves_many_calls_while_it_is_fresh(vertex, server: VertexServer) -> None:
    async def three(p: VertexProvider) -> None:
        for model in (GEMINI, CLAUDE, GEMINI):
            await p.complete(model, ChatRequest.build("hi"))

    use(vertex(), three)
    assert server.tokens_issued == 1 and [e["outcome"] for e in server.log] == ["ok"] * 3


def test_a_token_about_to_expire_is_refreshed_before_it_is_sent(vertex, server: VertexServer) -> None:
    server.token_lifetime_s = 60  # inside google-auth's refresh margin: every call needs a fresh one

    async def three(p: VertexProvider) -> None:
        for _ in range(3):
            await p.complete(GEMINI, ChatRequest.build("hi"))

    use(vertex(), three)
    assert server.tokens_issued == 3 and [e["outcome"] for e in server.log] == ["ok"] * 3


def test_an_expired_user_credential_is_refreshed_through_google_auth(server: VertexServer) -> None:
    """A credentials object as ``gcloud auth application-default login`` leaves it, its token expired."""
    expired = Credentials(
        token="ya29.expired",
        refresh_token="1//refresh",
        token_uri=server.token_url,
        client_id="cid",
        client_secret="csecret",
        expiry=datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(hours=1),
    )
    provider = at_loopback(server, expired)
    assert complete(provider, GEMINI, "hi").text == "echo: hi"
    assert server.tokens_issued == 1 and expired.token == "ya29.loopback-1"


def test_a_token_the_server_does_not_know_is_an_authentication_error(server: VertexServer) -> None:
    server.token_url  # noqa: B018 - the server has issued a token, so it checks them
    server.configure(api_key="ya29.the-right-one")
    provider = VertexProvider(
        "vertex",
        server.root_url,
        project="p",
        location="global",
        credentials=Credentials(token="ya29.wrong"),
        timeout_s=10,
    )
    with pytest.raises(AuthenticationError):
        complete(provider, GEMINI, "hi")


def test_a_token_endpoint_that_refuses_is_an_authentication_error(server: VertexServer) -> None:
    refused = Credentials(
        token=None, refresh_token="r", token_uri=server.root_url + "/nowhere", client_id="c", client_secret="s"
    )
    provider = VertexProvider(
        "vertex", server.root_url, project="p", location="global", credentials=refused, timeout_s=10
    )
    with pytest.raises(AuthenticationError, match="could not be refreshed"):
        complete(provider, GEMINI, "hi")
    assert server.log[-1]["path"] == "/nowhere"  # nothing reached the model


def test_application_default_credentials_are_used_when_the_table_names_no_file(
    server: VertexServer, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    toml = tmp_path / "adc.toml"
    toml.write_text(f'[providers.vertex]\ntype = "vertex"\nregion = "global"\nbase_url = "{server.root_url}"\n')
    settings = Settings.load(toml, env={})
    provider = from_config(settings.providers["vertex"], settings)
    assert provider.project == "lab-project" and complete(provider, GEMINI, "hi").text == "echo: hi"
    assert server.log[-1]["location"] == "global"


@pytest.mark.parametrize(
    ("location", "url"),
    [("global", "https://aiplatform.googleapis.com"), ("us-east5", "https://us-east5-aiplatform.googleapis.com")],
)
def test_the_endpoint_follows_the_location(key_file: Path, tmp_path: Path, location: str, url: str) -> None:
    toml = tmp_path / "v.toml"
    toml.write_text(f'[providers.vertex]\ntype = "vertex"\nlocation = "{location}"\ncredentials_file = "{key_file}"\n')
    settings = Settings.load(toml, env={})
    provider = from_config(settings.providers["vertex"], settings)
    assert provider.base_url == url and provider.capabilities.region == location


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("", "needs a location"),
        ('location = "us-central1"\ncredentials_file = "/nonexistent/key.json"\n', "no usable Google credentials"),
        ('location = "us-central1"\nprojekt = "x"\n', "did you mean 'project'"),
    ],
)
def test_a_bad_vertex_table_is_refused_when_the_lab_is_built(gcp, tmp_path: Path, extra: str, says: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(f'[providers.vertex]\ntype = "vertex"\n{extra}')
    with pytest.raises(ConfigError, match=says):
        Lab.from_file(toml)


def test_no_application_default_credentials_is_a_config_error(gcp, tmp_path: Path) -> None:
    toml = tmp_path / "none.toml"
    toml.write_text('[providers.vertex]\ntype = "vertex"\nlocation = "us-central1"\nproject = "p"\n')
    with pytest.raises(ConfigError, match="no usable Google credentials"):
        Lab.from_file(toml)


def test_the_model_list_holds_both_publishers_models_by_name_and_by_version(vertex) -> None:
    listed = [m.id for m in use(vertex(), lambda p: p.list_models())]
    assert listed == [GEMINI, f"{GEMINI}@001", "claude-3-5-haiku", CLAUDE]


# -- through the Lab -----------------------------------------------------------------------------


@pytest.fixture
def lab(server: VertexServer, key_file: Path, tmp_path: Path) -> Iterator[Lab]:
    toml = tmp_path / "lab.toml"
    toml.write_text(table(server, key_file))
    with Lab.from_file(toml) as lab:
        yield lab


@pytest.mark.parametrize(
    ("model", "maker", "priced_as"), [(GEMINI, "gemini", GEMINI), (CLAUDE, "anthropic", "claude-3-5-haiku")]
)
def test_a_vertex_model_is_priced_as_its_maker_prices_it(lab: Lab, model: str, maker: str, priced_as: str) -> None:
    result = lab.chat("one two three", model=f"vertex/{model}", cache=False)
    price = bundled_price(maker, priced_as)
    assert price is not None and result.cost_source == "catalog"
    expected = (result.input_tokens * price.input_per_mtok + result.output_tokens * price.output_per_mtok) / 1e6
    assert result.cost_usd == pytest.approx(expected)


def test_models_shows_the_cloud_and_location_of_vertex_deployments(lab: Lab) -> None:
    lab.chat("hi", model=f"vertex/{GEMINI}", cache=False)
    row = lab.models().loc[f"vertex/{GEMINI}"]
    assert (row.cloud, row.region) == ("vertex", "europe-west4")


def test_the_token_never_reaches_an_error_a_log_or_a_result(
    lab: Lab, server: VertexServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lab.chat("hi", model=f"vertex/{CLAUDE}", cache=False)
    with pytest.raises(LabError) as info:
        lab.chat("[[fault:unauthorized]]", model=f"vertex/{GEMINI}", cache=False)
    assert error_type_of(info.value) == "auth"
    token = server.tokens[0]
    assert token not in str(info.value) and token not in repr(info.value.attempts) and token not in caplog.text
    assert token not in json.dumps(lab.results().astype(str).to_dict())


@pytest.mark.slow
def test_importing_the_package_leaves_google_auth_unimported() -> None:
    code = "import sys, opencode_lab; print(any(m.startswith('google.auth') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_a_missing_google_auth_names_the_extra_to_install(tmp_path: Path) -> None:
    toml = tmp_path / "v.toml"
    toml.write_text('[providers.vertex]\ntype = "vertex"\nlocation = "us-central1"\n')
    code = (
        "import sys; sys.modules['google.auth'] = None\n"
        "import opencode_lab as oc\n"
        f"try: oc.Lab.from_file({str(toml)!r})\n"
        "except oc.ConfigError as e: print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'opencode_lab[gcp]'" in out and "[providers.vertex]" in out


# -- reasoning, options and log-probabilities through both publishers' codecs ---------------------------------------


def test_gemini_on_vertex_gets_a_thinking_budget_options_and_logprobs(vertex, server: VertexServer) -> None:
    completion = complete(vertex(), GEMINI, "one two", reasoning_budget=512, top_logprobs=2, options={"top_k": 3})
    config = server.requests[-1]["generationConfig"]
    assert (config["thinkingConfig"], config["topK"], config["responseLogprobs"]) == ({"thinkingBudget": 512}, 3, True)
    assert [e.token for e in completion.logprobs] == ["echo:", " one", " two"]


def test_claude_on_vertex_thinks_within_its_budget_and_keeps_its_version(vertex, server: VertexServer) -> None:
    completion = complete(vertex(), CLAUDE, "one two", reasoning_budget=1024, options={"top_k": 5})
    body = server.requests[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and body["top_k"] == 5
    assert completion.text == "echo: one two"  # the thinking block is not the answer
    with pytest.raises(InvalidRequestError, match="option 'anthropic_version' would override"):
        complete(vertex(), CLAUDE, "hi", options={"anthropic_version": "x"})
    with pytest.raises(InvalidRequestError, match="returns no log-probabilities"):
        complete(vertex(), CLAUDE, "hi", logprobs=True)
