"""OpenRouter: the OpenAI-compatible provider plus its catalog, attribution headers and cost accounting.

OpenRouter reports each call's cost when asked (``usage: {include: true}``), so
its cost column is the provider's own number rather than our estimate.  Its
catalog (``/models``, with prices and context sizes) is loaded whole into the
session's catalog and kept on disk for a day, because it is large and changes slowly.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.provider_routing import ProviderRouting, merged
from ..core.secrets import Secret, get_logger
from ..core.types import ChatRequest, ModelInfo
from .openai_compat import OpenAICompatibleProvider
from .vendors import option
from .wire import context_length

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

log = get_logger(__name__)
NAME = "openrouter"
CATALOG_TTL_S = 24 * 3600.0
_ATTRIBUTION = {"HTTP-Referer": "https://github.com/opencode-lab/opencode-lab", "X-Title": "opencode_lab"}


class OpenRouterProvider(OpenAICompatibleProvider):
    """Provider preferences (the ``provider`` object) are this provider's *provider_routing* with a request's
    on top, key by key; which upstream served each call comes back as `Completion.upstream_provider`."""

    capabilities = replace(
        OpenAICompatibleProvider.capabilities,
        reasoning=frozenset({"reasoning_effort", "reasoning_budget"}),
        reports_cost=True,
        open_catalog=True,
        refreshable_catalog=True,
        upstream_routing=True,
    )

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Secret | None,
        name: str = NAME,
        catalog_path: Path | None = None,
        catalog_ttl_s: float = CATALOG_TTL_S,
        headers: Mapping[str, str | Secret] | None = None,
        provider_routing: ProviderRouting | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, base_url, api_key=api_key, headers={**_ATTRIBUTION, **(headers or {})}, **kw)
        self._catalog_path = catalog_path
        self._catalog_ttl_s = catalog_ttl_s
        self.provider_routing = provider_routing

    def payload(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super().payload(model, request, stream=stream)
        body["usage"] = {"include": True}
        preferences = merged(self.provider_routing, request.params.provider_routing)
        if preferences is not None:
            body["provider"] = preferences.body()
        reasoning = reasoning_object(request)
        if reasoning:
            body.pop("reasoning_effort", None)
            body["reasoning"] = reasoning
        return body

    def identity(self, model: str) -> str:
        """Preferences set on the provider narrow who may answer: a cached answer is reused only under the same."""
        base = super().identity(model)
        return base if self.provider_routing is None else f"{base}?provider={json.dumps(self.provider_routing.body())}"

    def model_info(self, item: Mapping[str, Any]) -> ModelInfo:
        """One catalog entry; a value that is not a price or a context size (``Infinity``, ``"n/a"``) is dropped."""
        pricing = item.get("pricing")
        pricing = pricing if isinstance(pricing, dict) else {}
        prompt, completion = _usd(pricing.get("prompt")), _usd(pricing.get("completion"))
        tags = ("free",) if prompt == 0 and completion == 0 else ()
        return ModelInfo(
            id=item["id"],
            context_length=context_length(item.get("context_length")),
            input_price_per_mtok=prompt,
            output_price_per_mtok=completion,
            tags=tags,
            description=str(item.get("name") or ""),
            cached_input_price_per_mtok=_usd(pricing.get("input_cache_read")),
            cache_write_price_per_mtok=_usd(pricing.get("input_cache_write")),
            request_fee_usd=_usd(pricing.get("request"), scale=1),
        )

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """The catalog, from the disk copy while it is younger than the TTL, else from ``/models``."""
        if not refresh:
            cached = self._read_catalog()
            if cached is not None:
                return cached
        models = await super().list_models()
        self._write_catalog(models)
        return models

    def _read_catalog(self) -> list[ModelInfo] | None:
        path = self._catalog_path
        if path is None or not path.is_file() or time.time() - path.stat().st_mtime > self._catalog_ttl_s:
            return None
        try:
            items = json.loads(path.read_text())
            return [ModelInfo(**{**item, "tags": tuple(item.get("tags", ()))}) for item in items]
        except (ValueError, TypeError, RecursionError):  # a damaged copy is fetched again
            return None

    def _write_catalog(self, models: list[ModelInfo]) -> None:
        """Keep the catalog on disk; the copy only saves a round trip, so a folder that cannot take it is a
        warning, never a failed call."""
        if self._catalog_path is None:
            return
        try:
            self._catalog_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._catalog_path.with_suffix(f".{os.getpid()}.tmp")
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:  # owner-only
                json.dump([m.__dict__ for m in models], fh)
            os.replace(tmp, self._catalog_path)
        except OSError as exc:
            log.warning("could not keep the %s catalog at %s: %s", self.name, self._catalog_path, exc)


def reasoning_object(request: ChatRequest) -> dict[str, Any]:
    """OpenRouter's unified ``reasoning`` object: ``{"effort": ...}`` or ``{"max_tokens": ...}``, one of them."""
    effort, budget = request.params.reasoning_effort, request.params.reasoning_budget
    if effort is not None and budget is not None:
        raise InvalidRequestError("OpenRouter takes reasoning_effort or reasoning_budget, not both")
    if effort is not None:
        return {"effort": effort}
    return {} if budget is None else {"max_tokens": budget}


def from_config(config: ProviderConfig, settings: Settings) -> OpenRouterProvider:
    """The ``openrouter`` vendor and provider type; its catalog is kept in the cache folder."""
    routing = option(settings, NAME, "provider_routing", object, config)
    return OpenRouterProvider(
        config.base_url,
        api_key=config.api_key,
        name=config.name,
        headers=dict(config.headers),
        timeout_s=settings.timeout_s,
        catalog_path=settings.cache_dir / f"{config.name}_models.json",
        provider_routing=routing if isinstance(routing, ProviderRouting) else None,
    )


def _usd(value: Any, scale: int = 1_000_000) -> float | None:
    """OpenRouter prices are USD per token (or per request) as strings; we keep USD per million tokens."""
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return round(price * scale, 9) if math.isfinite(price) and price >= 0 else None
