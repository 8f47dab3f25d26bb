"""The catalog and health of a Lab as DataFrames: what ``%models``, ``models()`` and ``health()`` show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import LabError, error_type_of
from ..core.schema import tagged
from ..core.types import ChatRequest

if TYPE_CHECKING:
    import pandas as pd

    from ..core.deployment import Deployment
    from ..session.session import Session

#: what a chat health check asks: the cheapest request that still exercises a real completion
PROBE_PROMPT = "Reply with one word: ok"


def models_frame(lab: Session, filter: str | None = None, tag: str | None = None) -> pd.DataFrame:
    """The catalog: one row per deployment, with the names that reach it, where it runs and its health."""
    import pandas as pd

    health = lab.router.health()
    groups: dict[str, list[str]] = {}
    for name, members in lab.catalog.groups.items():
        for dep_id in members:
            if name != dep_id:
                groups.setdefault(dep_id, []).append(name)
    for alias in lab.catalog.aliases:
        try:
            reached = [d.id for g in lab.catalog.resolve(alias) for d in g.deployments]
        except LabError:
            continue
        for dep_id in reached:
            groups.setdefault(dep_id, []).append(alias)
    links = dashboards(lab)
    rows = []
    for dep in sorted(lab.catalog.deployments.values(), key=lambda d: d.id):
        if (
            filter
            and filter.lower() not in dep.id.lower()
            and not any(filter.lower() in g.lower() for g in groups.get(dep.id, []))
        ):
            continue
        if tag and tag not in dep.tags:
            continue
        rows.append(
            {
                "id": dep.id,
                "provider": dep.provider,
                "cloud": lab.catalog.clouds.get(dep.provider),
                "region": dep.region,
                "health": health[dep.id].phrase(),
                "context_length": dep.context_length,
                "input_price_per_mtok": dep.input_price_per_mtok,
                "output_price_per_mtok": dep.output_price_per_mtok,
                "tags": ",".join(dep.tags),
                "aliases": ",".join(groups.get(dep.id, [])),
                "description": dep.description,
                "dashboard": links.get(dep.provider),
            }
        )
    columns = [
        "id",
        "provider",
        "cloud",
        "region",
        "health",
        "context_length",
        "input_price_per_mtok",
        "output_price_per_mtok",
        "tags",
        "aliases",
        "description",
        *(["dashboard"] if links else []),
    ]
    frame = pd.DataFrame(rows, columns=columns).set_index("id")
    # nullable dtypes: whole numbers stay whole (2048, not 2048.0) and every unknown shows as <NA>
    kinds = {"context_length": "Int64", "input_price_per_mtok": "Float64", "output_price_per_mtok": "Float64"}
    return tagged(frame.astype({c: kinds.get(c, "string") for c in frame.columns}), "models")


def health_frame(lab: Session) -> pd.DataFrame:
    """One row per deployment: its health in words, the circuit state and the figures behind them."""
    import pandas as pd

    columns = [
        "health",
        "state",
        "success_rate",
        "latency_p50_s",
        "calls",
        "failures",
        "last_error",
        "open_for_s",
        "paused_for_s",
        "in_flight",
    ]
    links = dashboards(lab)
    if links:
        columns.append("dashboard")
    rows = [
        {
            "deployment": dep_id,
            **{k: getattr(snap, k) for k in columns if k not in ("health", "dashboard")},
            "health": snap.phrase(),
            "dashboard": links.get(lab.catalog.deployments[dep_id].provider),
        }
        for dep_id, snap in sorted(lab.router.health().items())
    ]
    return tagged(pd.DataFrame(rows, columns=["deployment", *columns]).set_index("deployment"), "health")


def dashboards(lab: Session) -> dict[str, str]:
    """The live dashboard of each provider that has one (a Dask cluster in use), by provider name."""
    links = {name: getattr(provider, "dashboard_link", None) for name, provider in lab.providers.items()}
    return {name: link for name, link in links.items() if link}


async def health_check(lab: Session, *, chat: bool = False, models: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Ask every provider (of *models*, default all) for its model list; report latency and the error, if any.

    With *chat*, send a one-token chat to every deployment instead (`chat_check`).
    """
    import pandas as pd

    deployments = await _deployments(lab, models)
    if chat:
        return await chat_check(lab, deployments)
    names = sorted({d.provider for d in deployments}) if models is not None else sorted(lab.providers)

    async def probe(name: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            listed = await asyncio.wait_for(lab.providers[name].list_models(), lab.settings.timeout_s)
        except Exception as exc:  # a health check reports every failure, a user's provider's bugs included
            return {
                "provider": name,
                "ok": False,
                "latency_s": time.perf_counter() - started,
                "models": 0,
                "error": f"{error_type_of(exc)}: {exc}",
            }
        return {
            "provider": name,
            "ok": True,
            "latency_s": time.perf_counter() - started,
            "models": len(listed),
            "error": None,
        }

    rows = await asyncio.gather(*(probe(name) for name in names))
    return pd.DataFrame(rows, columns=["provider", "ok", "latency_s", "models", "error"]).set_index("provider")


async def chat_check(lab: Session, deployments: Sequence[Deployment]) -> pd.DataFrame:
    """Send a one-token chat to each deployment (one paid call each): a 200 from ``/models`` says nothing
    about whether the model answers.  Each row has the probe's outcome, the circuit state it leaves, the
    deployment's last real error and when an open circuit will next let a request through."""
    import pandas as pd

    request = ChatRequest.build(PROBE_PROMPT, max_tokens=1)
    attempts = await asyncio.gather(
        *(lab.router.probe(d, request, timeout_s=lab.settings.timeout_s) for d in deployments)
    )
    health = lab.router.health()
    columns = ["provider", "ok", "latency_s", "error", "health", "state", "last_error", "open_for_s", "paused_for_s"]
    rows = [
        {
            "deployment": a.deployment,
            "provider": a.provider,
            "ok": a.status == "ok",
            "latency_s": a.latency_s,
            "error": None if a.status == "ok" else f"{a.error_type}: {a.error}",
            "health": health[a.deployment].phrase(),
            "state": health[a.deployment].state,
            "last_error": health[a.deployment].last_error,
            "open_for_s": health[a.deployment].open_for_s,
            "paused_for_s": health[a.deployment].paused_for_s,
        }
        for a in attempts
    ]
    return tagged(pd.DataFrame(rows, columns=["deployment", *columns]).set_index("deployment"), "health")


async def _deployments(lab: Session, models: str | Sequence[str] | None) -> list[Deployment]:
    """The deployments *models* reaches (any model spec), or every deployment of the catalog."""
    if models is None:
        return sorted(lab.catalog.deployments.values(), key=lambda d: d.id)
    await lab.aresolve(models)  # loads a provider's catalog when the spec needs it
    reached = {d.id: d for g in lab.catalog.resolve(models) for d in g.deployments}
    return [reached[k] for k in sorted(reached)]
