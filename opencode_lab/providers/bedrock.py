"""AWS Bedrock's Converse API (``/model/{id}/converse`` and ``converse-stream``), over httpx, signed with SigV4.

The format is `bedrock_wire`'s, the stream AWS's binary event-stream (`eventstream`), the signature
and credentials botocore's (`aws_auth`), and the edge `HTTPProvider`'s, with Bedrock's error types
read as the statuses they mean here (``ThrottlingException``: rate limited; ``ModelNotReady`` and
``ServiceUnavailable``: retried; ``AccessDenied``, ``UnrecognizedClient``: authentication;
``ValidationException``: a bad request).  Model ids are Bedrock's own, inference profiles included:
``bedrock/anthropic.claude-3-5-haiku-20241022-v1:0``, ``bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0``.

A ``[providers.NAME]`` table with ``type = "bedrock"`` takes ``region`` (else the AWS configuration's),
``profile`` (else the default chain) and ``base_url`` (else the region's runtime endpoint; the model
list is asked of the same host when it is set, else of the region's control-plane endpoint).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from ..core.errors import ConfigError, ProviderError
from ..core.types import ChatRequest, Completion, ModelInfo
from . import bedrock_wire, eventstream
from .aws_auth import SigV4, botocore_session, session_region
from .base import Capabilities
from .http import HTTPProvider
from .wire import WireError

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

#: the service name Bedrock's requests are signed for (the runtime's and the control plane's alike)
SERVICE = "bedrock"
_OPTIONS = {"profile": "text"}
_MAX_PAGES = 20


class BedrockProvider(HTTPProvider):
    """Converse, ConverseStream, tools, images (bytes) and the model list; signed for *region*."""

    capabilities = Capabilities(seeds=False, open_catalog=True)  # Converse takes no seed
    stream_media = eventstream.MEDIA_TYPE

    def __init__(
        self, name: str, base_url: str, *, region: str, session: Any, control_url: str | None = None, **kw: Any
    ) -> None:
        super().__init__(name, base_url, **kw)
        self.region = region
        self.capabilities = dataclasses.replace(type(self).capabilities, region=region)
        self._control_url = (control_url or self.base_url).rstrip("/")
        self._signer = SigV4(session, region, SERVICE, provider=name)

    def auth(self) -> httpx.Auth:
        return self._signer

    def chat_path(self, model: str, *, stream: bool) -> str:
        return bedrock_wire.path(model, stream=stream)

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return bedrock_wire.payload(model, request)

    def answer(self, data: dict[str, Any], model: str, request: ChatRequest) -> Completion:
        return bedrock_wire.completion(data, model, _answer_name(request))

    def fold(self, model: str, request: ChatRequest) -> bedrock_wire.ConverseFold:
        return bedrock_wire.ConverseFold(model, _answer_name(request))

    def events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
        return eventstream.events(chunks, bedrock_wire.exception)

    def status_error(self, status: int, content: bytes, headers: httpx.Headers, model: str | None) -> ProviderError:
        """The error Bedrock's error type means (header ``x-amzn-ErrorType`` or the body's ``__type``)."""
        kind = headers.get("x-amzn-errortype") or _body_type(content)
        return super().status_error(bedrock_wire.status_of(kind, status) or status, content, headers, model)

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """The foundation models that answer Converse, and every page of the inference profiles."""
        data = await self.fetch("GET", f"{self._control_url}/foundation-models", None)
        with self.edge(None):
            out = [ModelInfo(id=i, description=d) for i, d in _listed(data, "modelSummaries", "modelId", "modelName")]
        query: dict[str, str] = {"maxResults": "1000"}
        for _ in range(_MAX_PAGES):
            page = await self.fetch("GET", f"{self._control_url}/inference-profiles?{urlencode(query)}", None)
            with self.edge(None):
                items = _listed(page, "inferenceProfileSummaries", "inferenceProfileId", "inferenceProfileName")
            out += [ModelInfo(id=i, description=d) for i, d in items]
            if not isinstance(page.get("nextToken"), str) or not page["nextToken"]:
                break
            query["nextToken"] = page["nextToken"]
        return out


def _answer_name(request: ChatRequest) -> str | None:
    return request.params.schema.name if request.params.schema is not None else None


def _body_type(content: bytes) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        return ""
    kind = data.get("__type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else ""


def _listed(data: dict[str, Any], key: str, id_key: str, name_key: str) -> list[tuple[str, str]]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise WireError(f"the model list's {key} is not a list")
    return [
        (item[id_key], str(item.get(name_key) or ""))
        for item in items
        if isinstance(item, dict) and isinstance(item.get(id_key), str) and item[id_key]
    ]


def from_config(config: ProviderConfig, settings: Settings) -> BedrockProvider:
    """``[providers.NAME]`` with ``type = "bedrock"``: its keys and the AWS configuration are checked here."""
    at = f"[providers.{config.name}]"
    options = config.parse_options(_OPTIONS)
    session = botocore_session(options.get("profile"), at)
    region = config.region or session_region(session)
    if region is None:
        raise ConfigError(f'{at} needs a region (region = "us-east-1"), or AWS_DEFAULT_REGION or a profile naming one')
    if config.api_key is not None:
        raise ConfigError(f"{at}: Bedrock requests are signed with AWS credentials, not an api_key_env")
    return BedrockProvider(
        config.name,
        config.base_url or f"https://bedrock-runtime.{region}.amazonaws.com",
        region=region,
        session=session,
        control_url=None if config.base_url else f"https://bedrock.{region}.amazonaws.com",
        headers=dict(config.headers),
        timeout_s=settings.timeout_s,
    )
