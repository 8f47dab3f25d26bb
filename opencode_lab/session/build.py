"""Providers and catalog from settings: what exists in a session, before anything is sent.

Providers are built through the registry of provider types
(`opencode_lab.providers.registry`), the same way for built-in and user types; the
environment's vendors come from their rows of the vendor table; the bundled local models
join when llama-cpp-python is installed.  What a provider can do is read from its
`Capabilities`, never from its name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..core.config import ProviderConfig, Settings
from ..core.deployment import Deployment
from ..core.errors import ConfigError, LabError, ProviderTimeout
from ..core.secrets import get_logger
from ..core.vendors import VENDORS
from ..providers.base import Provider
from ..providers.dask_cluster import DaskProvider
from ..providers.local import LOCAL_TAG, LocalProvider, configured_models
from ..providers.prices import bundled_price
from ..providers.registry import load_factory, provider_factory
from ..routing.catalog import Catalog, price_tags

log = get_logger(__name__)


def vendor_configs(settings: Settings) -> list[ProviderConfig]:
    """The environment's vendors that are turned on: a key, or a model list, is set."""
    return [c for c in settings.vendors.values() if c.api_key or c.models]


def build_providers(settings: Settings, extra: Mapping[str, Provider]) -> dict[str, Provider]:
    """Every provider of the session by name; *extra* (a user's own `Provider` objects) win."""
    providers: dict[str, Provider] = {}
    local = configured_models(settings)
    if local:
        provider = LocalProvider(local, threads=settings.local_threads)
        providers[provider.name] = provider
    factories = {vendor.name: vendor.factory for vendor in VENDORS}
    for config in vendor_configs(settings):
        providers[config.name] = load_factory(factories[config.name])(config, settings)
    reserved = sorted({*factories, LocalProvider.name})
    for config in settings.providers.values():
        if config.name in reserved:
            raise ConfigError(f"[providers.{config.name}]: name must be a plain word other than {', '.join(reserved)}")
        providers[config.name] = provider_factory(config.type)(config, settings)
    providers.update(extra)
    return providers


def catalog_models(settings: Settings, providers: Mapping[str, Provider], catalog: Catalog) -> None:
    """Fill *catalog* with every deployment the settings and providers declare, and the rotation pool."""
    s = settings
    catalog.regions = regions(settings, providers)
    catalog.clouds = clouds(settings, providers)
    local = providers.get(LocalProvider.name)
    for dep in local.deployments() if isinstance(local, LocalProvider) else ():
        catalog.add(dep)
    for config in [*vendor_configs(s), *s.providers.values()]:
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
    catalog.residency = s.regions
    catalog.rules = dict(s.rules)
    catalog.model_params.update(s.model_params)
    catalog.open = frozenset(name for name, p in providers.items() if p.capabilities.open_catalog)
    for dep in list(catalog.deployments.values()):
        vendor = catalog.clouds.get(dep.provider, dep.provider)
        price = bundled_price(vendor, dep.upstream) if dep.provider in catalog.open else None
        if price is not None:  # fills gaps only: a price or tag configured in TOML wins
            catalog.update_info(dep.id, **price.deployment_fields(), tags=price_tags(price))
    pool = tuple(f"{c.name}/{m}" for c in vendor_configs(s) for m in c.models)
    catalog.pool = pool or s.default_models or tuple(d.id for d in catalog.tagged(LOCAL_TAG))


def regions(settings: Settings, providers: Mapping[str, Provider]) -> dict[str, str]:
    """Where each provider's deployments run: its table's ``region``, else what its class declares."""
    configured = {c.name: c.region for c in settings.providers.values() if c.region}
    declared = {name: p.capabilities.region for name, p in providers.items() if p.capabilities.region}
    return {**declared, **configured}


def clouds(settings: Settings, providers: Mapping[str, Provider]) -> dict[str, str]:
    """The kind of service behind each provider (its ``type``: ``bedrock``, ``vertex``, ``openai``...); a user's
    own `Provider` object has none."""
    configs = [*vendor_configs(settings), *settings.providers.values()]
    kinds = {LocalProvider.name: LocalProvider.name, **{c.name: c.type for c in configs}}
    return {name: kinds[name] for name in providers if name in kinds}


def _add_cluster(catalog: Catalog, cluster: DaskProvider) -> None:
    """A Dask cluster's deployments (``NAME/MODEL``), whose in-flight limit follows its worker threads."""
    for dep in cluster.deployments():
        catalog.add(dep)

    def follow(threads: int) -> None:
        for dep in cluster.deployments():
            catalog.add(replace(catalog.deployments[dep.id], max_in_flight=threads))

    cluster.follow_capacity(follow)


def refreshable(providers: Mapping[str, Provider]) -> bool:
    """Some provider's whole catalog (prices, context sizes) is worth loading into the session's."""
    return any(p.capabilities.refreshable_catalog for p in providers.values())


async def load_catalogs(
    catalog: Catalog, providers: Mapping[str, Provider], timeout_s: float, *, refresh: bool
) -> None:
    """Add every model each refreshable provider lists, with its prices and context size, to *catalog*
    (from the provider's kept copy unless *refresh*); the first provider that fails is raised after the
    others have loaded."""
    failed: list[LabError] = []
    for name, provider in providers.items():
        if not provider.capabilities.refreshable_catalog:
            continue
        try:  # httpx times out only when no byte arrives: a trickling server must not hang a notebook
            async with asyncio.timeout(timeout_s):
                infos = await provider.list_models(refresh=refresh)
        except TimeoutError:
            failed.append(ProviderTimeout(f"the model list did not arrive within {timeout_s}s", provider=name))
            continue
        except LabError as exc:
            failed.append(exc)
            continue
        catalog.set_listed(name, (info.id for info in infos))
        for info in infos:
            dep_id = f"{name}/{info.id}"
            if dep_id not in catalog.deployments:
                catalog.add(Deployment(dep_id, name, info.id))
            catalog.update_info(
                dep_id,
                input_price_per_mtok=info.input_price_per_mtok,
                output_price_per_mtok=info.output_price_per_mtok,
                cached_input_price_per_mtok=info.cached_input_price_per_mtok,
                cache_write_price_per_mtok=info.cache_write_price_per_mtok,
                request_fee_usd=info.request_fee_usd,
                context_length=info.context_length,
                tags=info.tags,
                description=info.description,
            )
    if failed:
        raise failed[0]


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
