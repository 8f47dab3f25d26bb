"""Google Vertex AI: Gemini models (``:generateContent``) and Anthropic's (``:rawPredict``) in one project.

A model id picks its publisher: ``claude-…`` (``vertex/claude-3-5-haiku@20241022``) is Anthropic's,
spoken with `anthropic_wire` (the version goes in the body as ``anthropic_version``, the model in the
path), anything else Google's, spoken with `gemini_wire`; both stream server-sent events
(``:streamGenerateContent?alt=sse``, ``:streamRawPredict``).  Errors are Google's (`GeminiProvider`'s
reading: a 429's ``RetryInfo`` is its wait).  Tokens are google-auth's (`google_auth`).

A ``[providers.NAME]`` table with ``type = "vertex"`` takes ``location`` (or ``region``; ``global`` is
the global endpoint), ``project`` (else the credentials' project), ``credentials_file`` (else
Application Default Credentials), ``max_tokens`` (Anthropic's required one, 1024 unless set) and
``base_url`` (else the location's endpoint).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

from ..core.errors import ConfigError, InvalidRequestError
from ..core.types import ChatRequest, Completion, ModelInfo
from . import anthropic_wire, gemini_wire
from .base import Capabilities
from .gemini import GeminiProvider
from .google_auth import GoogleAuth, load_credentials
from .stream import Fold
from .wire import WireError

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

API_VERSION = "v1"
#: the publisher-model list is in the beta API only
LIST_VERSION = "v1beta1"
ANTHROPIC_VERSION = "vertex-2023-10-16"
PUBLISHERS = ("google", "anthropic")
_OPTIONS = {"project": "text", "credentials_file": "path", "max_tokens": "positive_int"}
_MAX_PAGES = 20


class VertexProvider(GeminiProvider):
    """Gemini and Claude on Vertex AI, in *project* at *location*, with google-auth *credentials*."""

    # both publishers' codecs map a thinking budget and pass options on; Gemini returns log-probabilities
    # (the Anthropic codec refuses them before sending)
    capabilities = Capabilities(
        reasoning=frozenset({"reasoning_budget"}), logprobs=True, options=None, open_catalog=True
    )

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        project: str,
        location: str,
        credentials: Any,
        max_tokens: int = 1024,
        **kw: Any,
    ) -> None:
        super().__init__(name, base_url, **kw)
        self.project = project
        self.location = location
        self.max_tokens = max_tokens
        self.capabilities = dataclasses.replace(type(self).capabilities, region=location)
        self._auth = GoogleAuth(credentials, provider=name)

    def auth(self) -> httpx.Auth:
        return self._auth

    def seed(self, model: str, request: ChatRequest) -> int | None:
        """Gemini takes the seed; Claude has none, so its answers claim none (the Anthropic codec sends none)."""
        return super().seed(model, request) if publisher(model) == "google" else None

    def chat_path(self, model: str, *, stream: bool) -> str:
        if publisher(model) == "anthropic":
            return self._model_path(model, "streamRawPredict" if stream else "rawPredict")
        if stream:
            return self._model_path(model, "streamGenerateContent") + "?alt=sse"
        return self._model_path(model, "generateContent")

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        if publisher(model) == "google":
            return gemini_wire.payload(request)
        if "anthropic_version" in request.params.options:
            raise InvalidRequestError("option 'anthropic_version' would override the version Vertex AI is sent")
        body = anthropic_wire.payload(model, request, stream=stream, max_tokens=self.max_tokens)
        del body["model"]  # it is in the path
        return {"anthropic_version": ANTHROPIC_VERSION, **body}

    def answer(self, data: dict[str, Any], model: str, request: ChatRequest) -> Completion:
        if publisher(model) == "google":
            return gemini_wire.completion(data, model)
        return anthropic_wire.completion(data, model, anthropic_wire.answer_name(request))

    def fold(self, model: str, request: ChatRequest) -> Fold:  # type: ignore[override]
        if publisher(model) == "google":
            return gemini_wire.AnswerFold(model)
        return anthropic_wire.MessagesFold(model, anthropic_wire.answer_name(request))

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every page of each publisher's models (Google's and Anthropic's) in the Model Garden."""
        out: list[ModelInfo] = []
        for name in PUBLISHERS:
            query = {"pageSize": "1000"}
            for _ in range(_MAX_PAGES):
                data = await self.fetch("GET", f"/{LIST_VERSION}/publishers/{name}/models?{urlencode(query)}", None)
                with self.edge(None):
                    out += _listed(data)
                if not isinstance(data.get("nextPageToken"), str) or not data["nextPageToken"]:
                    break
                query["pageToken"] = data["nextPageToken"]
        return out

    def _model_path(self, model: str, method: str) -> str:
        where = f"projects/{quote(self.project, safe='')}/locations/{quote(self.location, safe='')}"
        return f"/{API_VERSION}/{where}/publishers/{publisher(model)}/models/{quote(model, safe='-._~@')}:{method}"


def publisher(model: str) -> str:
    """Whose model *model* is on Vertex: Anthropic's Claude models, else Google's."""
    return "anthropic" if model.startswith("claude") else "google"


def _listed(data: dict[str, Any]) -> list[ModelInfo]:
    """Each listed model by its name, and by ``name@version`` too when the list gives its version: Claude is
    called as ``claude-3-5-haiku@20241022``."""
    items = data.get("publisherModels") or []
    if not isinstance(items, list):
        raise WireError("the model list's publisherModels is not a list")
    out = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.rpartition("/")[2]:
            continue
        model, version = name.rpartition("/")[2], item.get("versionId")
        out.append(ModelInfo(id=model))
        if isinstance(version, str) and version and "@" not in model:
            out.append(ModelInfo(id=f"{model}@{version}"))
    return out


def endpoint(location: str) -> str:
    """The location's endpoint (``global``: the global one)."""
    return (
        "https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com"
    )


def from_config(config: ProviderConfig, settings: Settings) -> VertexProvider:
    """``[providers.NAME]`` with ``type = "vertex"``: its keys and the credentials are checked here."""
    at = f"[providers.{config.name}]"
    options = config.parse_options(_OPTIONS)
    if config.region is None:
        raise ConfigError(f'{at} needs a location (location = "us-central1", or "global")')
    credentials, found = load_credentials(options.get("credentials_file"), at)
    project = options.get("project") or found
    if not project:
        raise ConfigError(f'{at} needs a project (project = "my-project"); the credentials name none')
    return VertexProvider(
        config.name,
        config.base_url or endpoint(config.region),
        project=project,
        location=config.region,
        credentials=credentials,
        max_tokens=options.get("max_tokens", 1024),
        headers=dict(config.headers),
        timeout_s=settings.timeout_s,
    )
