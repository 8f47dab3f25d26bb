"""Providers declare what they can do as `Capabilities` on their class; the lab reads them, never a name."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from opencode_lab import (
    Capabilities,
    ChatRequest,
    Completion,
    InvalidRequestError,
    Lab,
    ModelInfo,
    ModelNotFoundError,
    Provider,
    Settings,
    StreamChunk,
    Usage,
)
from opencode_lab.providers.anthropic import AnthropicProvider
from opencode_lab.providers.dask_cluster import DaskProvider
from opencode_lab.providers.gemini import GeminiProvider
from opencode_lab.providers.local import LLAMA_OPTIONS, LocalProvider
from opencode_lab.providers.openai_api import OpenAIProvider
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.providers.openrouter import OpenRouterProvider

EFFORT, BUDGET = frozenset({"reasoning_effort"}), frozenset({"reasoning_budget"})
WEATHER = {"name": "get_weather", "description": "Weather.", "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize(
    ("cls", "declared"),
    [
        (OpenAICompatibleProvider, Capabilities(reasoning=EFFORT, logprobs=True, options=None)),
        (OpenAIProvider, Capabilities(reasoning=EFFORT, logprobs=True, options=None, open_catalog=True)),
        (
            OpenRouterProvider,
            Capabilities(
                reasoning=EFFORT | BUDGET, logprobs=True, options=None, reports_cost=True, open_catalog=True,
                refreshable_catalog=True, upstream_routing=True,
            ),
        ),
        (AnthropicProvider, Capabilities(seeds=False, reasoning=BUDGET, options=None, open_catalog=True)),
        (GeminiProvider, Capabilities(reasoning=BUDGET, logprobs=True, options=None, open_catalog=True)),
        (
            LocalProvider,
            Capabilities(
                tools=False, images=False, logprobs=True, options=LLAMA_OPTIONS, free=True, region="in-process"
            ),
        ),
        (DaskProvider, Capabilities(streams=False, tools=False, images=False, free=True)),
        (Provider, Capabilities()),
    ],
)
def test_each_provider_class_declares_what_it_can_do(cls: type[Provider], declared: Capabilities) -> None:
    assert cls.capabilities == declared


class Plugin(Provider):
    """A user's own provider: answers ``echo: PROMPT`` and bills 0.5 USD per call, as its server says."""

    name = "mine"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.listed: list[bool] = []

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        self.asked.append(model)
        return Completion(f"echo: {request.messages[-1].content}", model, "stop", Usage(3, 2, 0.5))

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        completion = await self.complete(model, request)
        yield StreamChunk(completion.text)
        yield StreamChunk("", completion)

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        self.listed.append(refresh)
        return [ModelInfo("m1", 4096, 1.0, 2.0, description="listed")]


@pytest.fixture
def lab_with(tmp_path: Path) -> Iterator[object]:
    """``lab_with(plugin, toml="")``: a Lab whose provider ``mine`` is *plugin*; closed afterwards."""
    labs: list[Lab] = []

    def make(plugin: Provider, toml: str = '[models.m]\nprovider = "mine"\nupstream = "m1"\n') -> Lab:
        path = tmp_path / f"lab{len(labs)}.toml"
        path.write_text(toml)
        labs.append(Lab(Settings.load(path), providers={"mine": plugin}))
        return labs[-1]

    yield make
    for lab in labs:
        lab.close()


def test_a_plug_in_that_takes_no_tools_is_refused_tools_before_anything_is_sent(lab_with) -> None:
    class NoTools(Plugin):
        capabilities = Capabilities(tools=False)

    plugin = NoTools()
    with pytest.raises(InvalidRequestError, match="model 'mine/m1' cannot call tools \\(provider 'mine' takes none"):
        lab_with(plugin).chat("hi", "m", tools=[WEATHER])
    assert plugin.asked == []


def test_a_plug_in_that_takes_no_images_is_refused_images_before_anything_is_sent(lab_with) -> None:
    class NoImages(Plugin):
        capabilities = Capabilities(images=False)

    plugin = NoImages()
    image = {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}
    with pytest.raises(InvalidRequestError, match="model 'mine/m1' does not accept images"):
        lab_with(plugin).chat([{"role": "user", "content": ["what is this?", image]}], "m")
    assert plugin.asked == []


def test_a_plug_in_that_takes_no_schema_is_refused_one_before_anything_is_sent(lab_with) -> None:
    class NoSchema(Plugin):
        capabilities = Capabilities(schema=False)

    plugin = NoSchema()
    with pytest.raises(InvalidRequestError, match="model 'mine/m1' cannot answer to a schema"):
        lab_with(plugin).chat("hi", "m", schema={"type": "object"})
    assert plugin.asked == []


def test_a_plug_in_that_reports_cost_is_billed_its_own_number(lab_with) -> None:
    class Billing(Plugin):
        capabilities = Capabilities(reports_cost=True)

    result = lab_with(Billing()).chat("hi", "m", cache=False)
    assert (result.cost_usd, result.cost_source) == (0.5, "provider")


def test_a_cost_a_plug_in_does_not_declare_it_reports_is_not_believed(lab_with) -> None:
    result = lab_with(Plugin()).chat("hi", "m", cache=False)
    assert result.cost_source == "unknown" and math.isnan(result.cost_usd)


def test_a_free_plug_in_costs_nothing(lab_with) -> None:
    class Free(Plugin):
        capabilities = Capabilities(free=True)

    result = lab_with(Free()).chat("hi", "m", cache=False)
    assert (result.cost_usd, result.cost_source) == (0.0, "local")


def test_a_plug_in_with_an_open_catalog_answers_an_id_it_lists_without_a_declaration(lab_with) -> None:
    class Open(Plugin):
        capabilities = Capabilities(open_catalog=True)

    plugin = Open()
    lab = lab_with(plugin, toml="")
    assert lab.chat("hi", "mine/m1", cache=False).served_by == "mine/m1"
    with pytest.raises(ModelNotFoundError, match="did you mean mine/m1"):
        lab.chat("hi", "mine/m2")
    assert plugin.asked == ["m1"] and plugin.listed == [False]


def test_a_closed_catalog_answers_only_what_is_declared(lab_with) -> None:
    plugin = Plugin()
    with pytest.raises(ModelNotFoundError, match="'mine/m2'"):
        lab_with(plugin).chat("hi", "mine/m2")
    assert plugin.asked == [] and plugin.listed == []


def test_a_refreshable_catalog_is_loaded_whole_once_and_fetched_anew_on_request(lab_with) -> None:
    class Refreshable(Plugin):
        capabilities = Capabilities(refreshable_catalog=True)

    plugin = Refreshable()
    lab = lab_with(plugin, toml="")
    lab.models()
    lab.models()
    assert plugin.listed == [False]
    deployment = lab.catalog.deployments["mine/m1"]
    assert (deployment.input_price_per_mtok, deployment.context_length, deployment.description) == (1.0, 4096, "listed")
    lab.models(refresh=True)
    assert plugin.listed == [False, True]


def test_a_plug_in_written_before_refresh_existed_still_lists_its_models(lab_with) -> None:
    class Older(Plugin):
        capabilities = Capabilities(open_catalog=True)

        async def list_models(self) -> list[ModelInfo]:  # type: ignore[override]
            return [ModelInfo("m1")]

    assert lab_with(Older(), toml="").chat("hi", "mine/m1", cache=False).text == "echo: hi"
