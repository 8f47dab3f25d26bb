"""Providers and catalog from settings: what exists in a session, before anything is sent.

Providers are built through the registry of provider types
(`opencode_lab.providers.registry`), the same way for built-in and user types;
the bundled local models join when llama-cpp-python is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from ..core.config import ProviderConfig, Settings
from ..core.deployment import Deployment
from ..core.errors import ConfigError
from ..providers.base import Provider
from ..providers.local import LocalModel, LocalProvider, bundled_models, local_model_from_path
from ..providers.registry import provider_factory
from ..routing.catalog import Catalog


def provider_configs(settings: Settings) -> list[ProviderConfig]:
    """The environment's providers (OpenRouter, OpenAI) followed by the TOML ``[providers]`` tables."""
    s = settings
    out = []
    if s.openrouter_api_key or s.openrouter_model_list:
        out.append(
            ProviderConfig(
                "openrouter", s.openrouter_base_url, "openrouter", s.openrouter_api_key, s.openrouter_model_list
            )
        )
    if s.openai_api_key:
        out.append(ProviderConfig("openai", s.openai_base_url, "openai", s.openai_api_key))
    return out + list(s.providers.values())


def build_providers(settings: Settings, extra: Mapping[str, Provider]) -> dict[str, Provider]:
    """Every provider of the session by name; *extra* (a user's own `Provider` objects) win."""
    providers: dict[str, Provider] = {}
    local = _local_models(settings)
    if local:
        providers["local"] = LocalProvider(local)
    for config in provider_configs(settings):
        providers[config.name] = provider_factory(config.type)(config, settings)
    providers.update(extra)
    return providers


def catalog_models(settings: Settings, providers: Mapping[str, Provider], catalog: Catalog) -> None:
    """Fill *catalog* with every deployment the settings and providers declare, and the rotation pool."""
    s = settings
    local = providers.get("local")
    if isinstance(local, LocalProvider):
        for m in local.models:
            # one in flight: a llama.cpp model answers one prompt at a time, and queueing inside the
            # provider would count as latency
            catalog.add(
                Deployment(
                    f"local/{m.name}",
                    "local",
                    m.name,
                    0.0,
                    0.0,
                    m.context_length,
                    max_in_flight=1,
                    tags=m.tags,
                    description=m.description,
                )
            )
    for config in provider_configs(s):
        for model in config.models:
            catalog.add(Deployment(f"{config.name}/{model}", config.name, model))
    for name, deployments in s.models.items():
        for dep in deployments:
            if dep.provider not in providers:
                raise ConfigError(
                    f"[models.{name}] names provider {dep.provider!r}, which is not configured "
                    f"(known: {', '.join(sorted(providers)) or 'none'})"
                )
            catalog.add(dep, model=name)
    catalog.aliases.update(s.aliases)
    pool = s.openrouter_model_list and tuple(f"openrouter/{m}" for m in s.openrouter_model_list)
    catalog.pool = pool or s.default_models or tuple(d.id for d in catalog.tagged("local"))


def _local_models(settings: Settings) -> list[LocalModel]:
    """The bundled models (when llama-cpp-python is installed) and every GGUF file named in TOML."""
    models = bundled_models(settings.cache_dir) if importlib.util.find_spec("llama_cpp") else []
    for deployments in settings.models.values():
        for dep in deployments:
            if dep.provider == "local" and dep.path:
                models.append(
                    local_model_from_path(
                        dep.upstream, dep.path, chat="base" not in dep.tags, context_length=dep.context_length
                    )
                )
    return models
