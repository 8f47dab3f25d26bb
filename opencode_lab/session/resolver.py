"""Model specs to deployment groups, with what a call needs loaded first.

A refreshable provider catalog (OpenRouter's: prices, context sizes) is loaded once,
before it matters, and open model ids (``provider:model``) are checked against their
provider; a failure to load costs the call nothing but its prices.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ..core.deployment import Deployment
from ..core.errors import LabError
from ..core.secrets import get_logger
from ..providers.base import Provider
from ..routing.catalog import Catalog, ModelGroup
from .build import check_open_ids, load_catalogs, refreshable

log = get_logger(__name__)


class Resolver:
    """The session's model resolution (single event loop, except `loaded_groups`, which fetches nothing)."""

    def __init__(self, catalog: Catalog, providers: Mapping[str, Provider], deadline_s: float) -> None:
        self.catalog = catalog
        self.providers = providers
        self.deadline_s = deadline_s
        self._catalog_loaded = False

    def catalog_pending(self) -> bool:
        """A provider catalog exists that has not been loaded yet."""
        return refreshable(self.providers) and not self._catalog_loaded

    async def refresh_catalog(self, *, refresh: bool = False) -> None:
        self._catalog_loaded = True
        await load_catalogs(self.catalog, self.providers, self.deadline_s, refresh=refresh)

    async def groups(self, spec: str | Sequence[str] | None) -> list[ModelGroup]:
        """The groups *spec* resolves to, with catalog data (prices, context) loaded before they matter."""
        if self.catalog_pending():
            try:
                await self.refresh_catalog()
            except LabError as exc:  # a call must not fail for want of prices; cost stays unknown instead
                log.warning("could not load a provider's catalog (prices and context sizes unknown): %s", exc)
        await check_open_ids(self.catalog, self.providers, spec, self.deadline_s)
        return self.catalog.resolve(spec)

    def loaded_groups(self, spec: str | tuple[str, ...] | None) -> list[ModelGroup] | None:
        """What *spec* resolves to when nothing has to be fetched first (else None: the loop's path fetches)."""
        if self.catalog_pending() or self.catalog.unlisted(spec):
            return None
        try:
            return self.catalog.resolve(spec)
        except LabError:
            return None

    def identities(self, groups: Sequence[ModelGroup], regions: tuple[str, ...] = ()) -> list[list[str]]:
        """Who may answer, group by group, by identity (provider, server or weights, upstream model): only the
        deployments inside the residency rules (the call's *regions* among them), and an OpenRouter deployment
        with its model's provider preferences, since they narrow which upstream answers."""
        resident = self.catalog.resident(groups, regions)
        return [sorted(self._identity(d, g.name) for d in g.deployments) for g in resident]

    def _identity(self, deployment: Deployment, model: str) -> str:
        provider = self.providers[deployment.provider]
        identity = provider.identity(deployment.upstream)
        rules = self.catalog.rules.get(model)
        if rules is None or rules.provider_routing is None or not provider.capabilities.upstream_routing:
            return identity
        return f"{identity}?model_provider={json.dumps(rules.provider_routing.body())}"
