"""The model catalog: which deployments exist and what a model spec means.

A *deployment* is one way to reach a model (a provider plus the provider's own
model id, with pricing, context length and limits).  A *model name* groups one
or more deployments (two llama.cpp servers, OpenRouter and a direct key...);
every deployment id is also a model name of its own.  Resolution turns what a
caller typed (full id, unique suffix, alias, list, ``auto``) into an ordered
list of groups: the router balances inside a group and falls back across them.

Providers with an *open* catalog (`Capabilities.open_catalog`: the OpenAI, Anthropic,
Gemini and OpenRouter APIs) serve ``PROVIDER/ANY-ID`` without a declaration: the deployment
is made on first use, priced from the bundled table, and refused with
suggestions once the provider's model list is known not to hold it.
``provider:model`` (the aisuite / jupyter-ai spelling) means ``provider/model``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..core.deployment import Deployment, ModelRules
from ..core.errors import InvalidRequestError, ModelNotFoundError
from ..core.params import Params
from ..core.residency import allowed
from ..core.types import ChatRequest
from ..providers.base import Capabilities, Provider
from ..providers.prices import Price, bundled_price

AUTO = "auto"


@dataclass(frozen=True)
class ModelGroup:
    """A model name and the deployments that can serve it, in registration order."""

    name: str
    deployments: tuple[Deployment, ...]


@dataclass
class Catalog:
    """Mutable registry, filled by the Lab from settings, providers' ``/models`` and the local models."""

    deployments: dict[str, Deployment] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    model_params: dict[str, Params] = field(default_factory=dict)
    """Request parameters a configured model name is asked with unless a call sets them."""
    pool: tuple[str, ...] = ()
    open: frozenset[str] = frozenset()
    """Providers whose catalog is open: ``PROVIDER/ANY-ID`` names a deployment without declaring it."""
    listed: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """Per open provider, the ids its model list holds (None: the list could not be fetched; absent: not tried)."""
    regions: dict[str, str] = field(default_factory=dict)
    """Per provider, where its deployments run unless a deployment says otherwise (set before any is added)."""
    residency: tuple[str, ...] = ()
    """The lab-wide residency rule (``[lab] regions``): region patterns every request's candidates must match."""
    rules: dict[str, ModelRules] = field(default_factory=dict)
    """Per model name (``[models.NAME]``), its residency rule and OpenRouter provider preferences."""
    clouds: dict[str, str] = field(default_factory=dict)
    """Per provider, the kind of service behind it (its ``type``): what the bundled price table is keyed by."""
    _resolved: dict[object, list[ModelGroup]] = field(default_factory=dict, repr=False)

    def add(self, deployment: Deployment, *, model: str | None = None) -> Deployment:
        """Register *deployment* (merging with an existing one of the same id) under its id and *model*; one
        that declares no region runs in its provider's."""
        self._resolved.clear()
        if deployment.region is None and deployment.provider in self.regions:
            deployment = replace(deployment, region=self.regions[deployment.provider])
        existing = self.deployments.get(deployment.id)
        if existing is not None:
            deployment = _merge(existing, deployment)
        self.deployments[deployment.id] = deployment
        self.groups.setdefault(deployment.id, [deployment.id])
        if model and model != deployment.id:
            members = self.groups.setdefault(model, [])
            if deployment.id not in members:
                members.append(deployment.id)
        return deployment

    def update_info(self, deployment_id: str, **changes: object) -> None:
        """Fill in what a provider's catalog says (pricing, context) without touching configured limits."""
        current = self.deployments[deployment_id]
        fresh = {k: v for k, v in changes.items() if v is not None and getattr(current, k) in (None, (), "")}
        if fresh:
            self._resolved.clear()
            self.deployments[deployment_id] = replace(current, **fresh)  # type: ignore[arg-type]

    def declared_params(self, spec: str | Sequence[str] | None) -> Params:
        """The parameters *spec* is asked with by declaration: a configured model's (through an alias naming
        just it); none for a list of models, which may each declare others."""
        seen: set[str] = set()
        while isinstance(spec, str) and len(self.aliases.get(spec, ())) == 1 and spec not in seen:
            seen.add(spec)
            spec = self.aliases[spec][0]
        return self.model_params.get(spec, Params()) if isinstance(spec, str) else Params()

    def names(self) -> list[str]:
        return sorted(set(self.groups) | set(self.aliases))

    def unlisted(self, spec: str | Sequence[str] | None) -> list[str]:
        """The open providers *spec* names by id whose model list has not been tried yet."""
        items = [] if spec is None else [spec] if isinstance(spec, str) else list(spec)
        names = [self._open_id(i)[0] for i in items if i not in self.groups and i not in self.aliases]
        return list(dict.fromkeys(n for n in names if n and n not in self.listed))

    def set_listed(self, provider: str, ids: Iterable[str] | None) -> None:
        """Record what *provider*'s model list holds (None: it could not be fetched, so ids stay unchecked)."""
        self._resolved.clear()
        self.listed[provider] = None if ids is None else frozenset(ids)

    def _open_id(self, name: str) -> tuple[str, str]:
        """``(provider, upstream)`` when *name* is ``provider/id`` or ``provider:id`` of an open provider."""
        for sep in "/:":
            provider, found, upstream = name.partition(sep)
            if found and upstream and provider in self.open:
                return provider, upstream
        return "", ""

    def group(self, name: str) -> ModelGroup:
        return ModelGroup(name, tuple(self.deployments[d] for d in self.groups[name]))

    def resolve(self, spec: str | Sequence[str] | None) -> list[ModelGroup]:
        """Turn a model spec into ordered, de-duplicated groups; raise `ModelNotFoundError` when it cannot.

        Results are memoised (every request resolves its spec) until a deployment is added or updated.
        """
        key = spec if spec is None or isinstance(spec, str) else tuple(spec)
        cached = self._resolved.get(key)
        if cached is None:
            cached = self._resolved[key] = self._resolve(spec)
        return cached

    def _resolve(self, spec: str | Sequence[str] | None) -> list[ModelGroup]:
        if spec is None or spec == AUTO:
            return self._pool()
        items = [spec] if isinstance(spec, str) else list(spec)
        out: list[ModelGroup] = []
        for item in items:
            for group in self._resolve_one(item, ()):
                if all(g.name != group.name for g in out):
                    out.append(group)
        return out

    def _resolve_one(self, name: str, seen: tuple[str, ...]) -> list[ModelGroup]:
        if name == AUTO:
            return self._pool()
        if name in self.aliases:
            return [g for target in self.aliases[name] for g in self._resolve_one(target, (*seen, name))]
        if name in self.groups:
            return [self.group(name)]
        provider, upstream = self._open_id(name)
        if provider:
            return [self._open_group(provider, upstream, name)]
        provider, colon, upstream = name.partition(":")
        if colon and f"{provider}/{upstream}" in self.groups:
            return [self.group(f"{provider}/{upstream}")]
        matches = [g for g in self.groups if g.endswith("/" + name)]
        if len(matches) == 1:
            return [self.group(matches[0])]
        if len(matches) > 1:
            raise ModelNotFoundError(name, sorted(matches)[:8], reason="ambiguous model")
        raise ModelNotFoundError.for_spec(name, self.names())

    def _open_group(self, provider: str, upstream: str, spec: str) -> ModelGroup:
        """The deployment ``provider/upstream``, made (and priced from the bundled table) on first use."""
        dep_id = f"{provider}/{upstream}"
        if dep_id not in self.groups:
            known = self.listed.get(provider)
            if known is not None and upstream not in known:
                raise ModelNotFoundError.for_spec(spec, sorted(f"{provider}/{m}" for m in known))
            price = bundled_price(self.clouds.get(provider, provider), upstream)
            self.add(
                Deployment(dep_id, provider, upstream)
                if price is None
                else Deployment(
                    dep_id, provider, upstream, **price.deployment_fields(), tags=price_tags(price)
                )
            )
        return self.group(dep_id)

    def _pool(self) -> list[ModelGroup]:
        """``auto``: one group rotating over every deployment of the pool's models."""
        if not self.pool:
            raise ModelNotFoundError(AUTO, (), reason="no rotation pool configured (set OPENROUTER_MODEL_LIST) for")
        deployments: list[Deployment] = []
        for name in self.pool:
            for group in self._resolve_one(name, (AUTO,)):
                deployments.extend(d for d in group.deployments if d not in deployments)
        return [ModelGroup(AUTO, tuple(deployments))]

    def spec_name(self, spec: str | Sequence[str] | None) -> str:
        """The label a results row shows for what was asked for."""
        if spec is None:
            return AUTO
        return spec if isinstance(spec, str) else ",".join(spec)

    def residency_rules(self, groups: Sequence[ModelGroup], asked: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        """Every residency rule a request for *groups* is under: the lab's, each asked-for model's (it holds for
        the whole request, so a fallback list cannot leave it) and the call's own (*asked*)."""
        models = [self.rules[g.name].regions for g in groups if g.name in self.rules]
        return list(dict.fromkeys(rule for rule in (self.residency, *models, asked) if rule))

    def resident(self, groups: Sequence[ModelGroup], asked: tuple[str, ...] = ()) -> list[ModelGroup]:
        """*groups* with only the deployments inside every residency rule (a group may be left empty)."""
        rules = self.residency_rules(groups, asked)
        if not rules:
            return list(groups)
        return [ModelGroup(g.name, tuple(d for d in g.deployments if allowed(d.region, rules))) for g in groups]

    def tagged(self, tag: str) -> Iterable[Deployment]:
        return (d for d in self.deployments.values() if tag in d.tags)


#: a deployment tag saying the model takes no image input (the bundled price table and TOML ``tags`` set it)
TEXT_ONLY = "text-only"
#: the tag of a deployment the price table knows takes no reasoning controls
NO_REASONING = "no-reasoning"


def price_tags(price: Price) -> tuple[str, ...]:
    """The tags a bundled price gives its deployment: what the model cannot take."""
    return (*(() if price.images else (TEXT_ONLY,)), *(() if price.reasons else (NO_REASONING,)))


def refuse_unsupported(request: ChatRequest, groups: Sequence[ModelGroup], providers: Mapping[str, Provider]) -> None:
    """Refuse, before anything is sent, tools, images or a schema a candidate model cannot take.

    What a provider takes is its `Capabilities` (in-process llama.cpp models take no tools and no
    images); a deployment tagged `TEXT_ONLY` takes no images either.
    """
    for group in groups:
        for dep in group.deployments:
            can = providers[dep.provider].capabilities
            takes_none = f"(provider {dep.provider!r} takes none)"
            if request.tools and not can.tools:
                raise InvalidRequestError(f"model {dep.id!r} cannot call tools {takes_none}; drop tools=")
            if request.images and not can.images:
                raise InvalidRequestError(f"model {dep.id!r} does not accept images {takes_none}")
            if request.images and TEXT_ONLY in dep.tags:
                raise InvalidRequestError(f"model {dep.id!r} does not accept images (the catalog marks it text-only)")
            if request.params.schema is not None and not can.schema:
                raise InvalidRequestError(f"model {dep.id!r} cannot answer to a schema {takes_none}; drop schema=")
            _refuse_controls(request.params, dep, can)
    routed = [d.id for g in groups for d in g.deployments if providers[d.provider].capabilities.upstream_routing]
    if request.params.provider_routing is not None and not routed:
        names = ", ".join(d.id for g in groups for d in g.deployments)
        raise InvalidRequestError(
            f"provider_routing= steers OpenRouter's choice of upstream, and no candidate ({names}) is on OpenRouter"
        )


def _refuse_controls(params: Params, dep: Deployment, can: Capabilities) -> None:
    """Refuse reasoning controls, log-probabilities and passthrough options *dep* would not honour."""
    for control in ("reasoning_effort", "reasoning_budget"):
        if getattr(params, control) is None:
            continue
        if control not in can.reasoning:
            takes = f"it takes {', '.join(sorted(can.reasoning))}" if can.reasoning else "it takes none"
            raise InvalidRequestError(f"model {dep.id!r} has no {control} control ({takes}); drop {control}=")
        if NO_REASONING in dep.tags:
            raise InvalidRequestError(
                f"model {dep.id!r} does not reason (the catalog marks it {NO_REASONING}); drop {control}="
            )
    if params.logprobs and not can.logprobs:
        raise InvalidRequestError(f"model {dep.id!r} returns no log-probabilities; drop logprobs= and top_logprobs=")
    if can.options is not None:
        for key in params.options:
            if key not in can.options:
                accepted = ", ".join(sorted(can.options)) or "none"
                close = difflib.get_close_matches(key, sorted(can.options), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidRequestError(
                    f"model {dep.id!r} takes no option {key!r}{hint} (options it takes: {accepted})"
                )


def _merge(old: Deployment, new: Deployment) -> Deployment:
    """Configured values (limits, weights) win over discovered ones; discovered fill the gaps."""
    values = {}
    for name in Deployment.__dataclass_fields__:
        mine, theirs = getattr(new, name), getattr(old, name)
        default = Deployment.__dataclass_fields__[name].default
        values[name] = mine if mine not in (None, (), "") and mine != default else theirs
    return Deployment(**values)
