"""Providers and catalog from settings: what exists in a session, before anything is sent.

Providers are built through the registry of provider types
(`opencode_lab.providers.registry`), the same way for built-in and user types;
the bundled local models join when llama-cpp-python is installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..core.config import ProviderConfig, Settings
from ..core.deployment import Deployment
from ..core.errors import ConfigError, LabError
from ..core.secrets import get_logger
from ..providers.base import Provider
from ..providers.dask_cluster import DaskProvider
from ..providers.local import LocalProvider, configured_models
from ..providers.prices import bundled_price
from ..providers.registry import provider_factory
from ..routing.catalog import TEXT_ONLY, Catalog

log = get_logger(__name__)
#: the environment's providers whose catalog is open: ``PROVIDER/ANY-ID`` works without declaring the model
OPEN_CATALOGS = ("openrouter", "openai", "anthropic", "gemini")


def provider_configs(settings: Settings) -> list[ProviderConfig]:
    """The environment's providers (OpenRouter, OpenAI, Anthropic, Gemini), then the TOML ``[providers]`` tables."""
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
    if s.anthropic_api_key:
        out.append(ProviderConfig("anthropic", s.anthropic_base_url, "anthropic", s.anthropic_api_key))
    if s.gemini_api_key:
        out.append(ProviderConfig("gemini", s.gemini_base_url, "gemini", s.gemini_api_key))
    return out + list(s.providers.values())


def build_providers(settings: Settings, extra: Mapping[str, Provider]) -> dict[str, Provider]:
    """Every provider of the session by name; *extra* (a user's own `Provider` objects) win."""
    providers: dict[str, Provider] = {}
    local = configured_models(settings)
    if local:
        providers["local"] = LocalProvider(local, threads=settings.local_threads)
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
        cluster = providers.get(config.name)
        if isinstance(cluster, DaskProvider):
            _add_cluster(catalog, cluster)
            continue
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
    catalog.open = frozenset(name for name in OPEN_CATALOGS if name in providers)
    for dep in list(catalog.deployments.values()):
        price = bundled_price(dep.provider, dep.upstream) if dep.provider in catalog.open else None
        if price is not None:  # fills gaps only: a price or tag configured in TOML wins
            catalog.update_info(
                dep.id,
                input_price_per_mtok=price.input_per_mtok,
                output_price_per_mtok=price.output_per_mtok,
                tags=() if price.images else (TEXT_ONLY,),
            )
    pool = s.openrouter_model_list and tuple(f"openrouter/{m}" for m in s.openrouter_model_list)
    catalog.pool = pool or s.default_models or tuple(d.id for d in catalog.tagged("local"))


def _add_cluster(catalog: Catalog, cluster: DaskProvider) -> None:
    """A Dask cluster's deployments (``NAME/MODEL``), whose in-flight limit follows its worker threads."""
    for dep in cluster.deployments():
        catalog.add(dep)

    def follow(threads: int) -> None:
        for dep in cluster.deployments():
            catalog.add(replace(catalog.deployments[dep.id], max_in_flight=threads))

    cluster.follow_capacity(follow)


async def check_open_ids(
    catalog: Catalog, providers: Mapping[str, Provider], spec: str | Sequence[str] | None, timeout_s: float
) -> None:
    """Fetch, once per session, the model list of each open provider *spec* names by id, so an id it does not
    serve is refused with suggestions.  A list that cannot be fetched leaves ids unchecked (with a warning):
    a call must not fail because a listing endpoint did."""
    for name in catalog.unlisted(spec):
        try:
            async with asyncio.timeout(timeout_s):
                infos = await providers[name].list_models()
        except (LabError, TimeoutError) as exc:
            log.warning("could not list %s's models (model ids stay unchecked): %s", name, exc or "timed out")
            catalog.set_listed(name, None)
        else:
            catalog.set_listed(name, (info.id for info in infos))
