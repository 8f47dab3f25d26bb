"""The catalog and health of a Lab as DataFrames: what ``%models``, ``models()`` and ``health()`` show."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import LabError, error_type_of

if TYPE_CHECKING:
    import pandas as pd

    from ..session.session import Session


def models_frame(lab: Session, filter: str | None = None, tag: str | None = None) -> pd.DataFrame:
    """The catalog: one row per deployment, with the names that reach it and its health."""
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
                "context_length": dep.context_length,
                "input_price_per_mtok": dep.input_price_per_mtok,
                "output_price_per_mtok": dep.output_price_per_mtok,
                "tags": ",".join(dep.tags),
                "aliases": ",".join(groups.get(dep.id, [])),
                "health": health[dep.id]["state"],
                "description": dep.description,
            }
        )
    columns = [
        "id",
        "provider",
        "context_length",
        "input_price_per_mtok",
        "output_price_per_mtok",
        "tags",
        "aliases",
        "health",
        "description",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("id")


def health_frame(lab: Session) -> pd.DataFrame:
    import pandas as pd

    columns = [
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
    rows = []
    now = lab.router.clock.now()
    for dep_id, snap in sorted(lab.router.health().items()):
        until = snap.get("open_until")
        rows.append(
            {
                "deployment": dep_id,
                **{k: snap.get(k) for k in columns},
                "open_for_s": max(0.0, until - now) if isinstance(until, float) else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["deployment", *columns]).set_index("deployment")


async def health_check(lab: Session) -> pd.DataFrame:
    """Ask every provider for its model list; report latency and the error, if any."""
    import pandas as pd

    async def probe(name: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            models = await asyncio.wait_for(lab.providers[name].list_models(), lab.settings.timeout_s)
        except (LabError, TimeoutError) as exc:
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
            "models": len(models),
            "error": None,
        }

    rows = await asyncio.gather(*(probe(name) for name in sorted(lab.providers)))
    return pd.DataFrame(rows).set_index("provider")
