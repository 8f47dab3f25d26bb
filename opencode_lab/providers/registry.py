"""Provider types by name, so TOML ``type = "..."`` can pick one and users can add their own.

A provider type is a factory ``(config, settings) -> Provider`` where *config*
is the `ProviderConfig` of one ``[providers.NAME]`` table.  Built-in types are the
vendors of `opencode_lab.providers.vendors` plus the two below, registered as
``"module:attribute"`` strings and imported on first use; third-party packages
register theirs with `register_provider_type` or through the
``opencode_lab.providers`` entry-point group (name = type, value =
``"package.module:factory"``), the way ``llm`` plugins and joblib store backends plug in.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, TypeAlias

from ..core.errors import ConfigError
from .vendors import DEFAULT_TYPE, ROWS

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings
    from .base import Provider

ProviderFactory: TypeAlias = "Callable[[ProviderConfig, Settings], Provider]"
ENTRY_POINT_GROUP = "opencode_lab.providers"

_types: dict[str, ProviderFactory | str] = {
    **{row.name: row.factory for row in ROWS},
    # in a file, "openai" is any OpenAI-compatible server (vLLM, Ollama...), whose catalog the file declares;
    # the OpenAI API itself, with its open catalog, is the environment's openai vendor
    DEFAULT_TYPE: "opencode_lab.providers.openai_compat:from_config",
    "dask": "opencode_lab.providers.dask_cluster:from_config",
    "bedrock": "opencode_lab.providers.bedrock:from_config",
    "vertex": "opencode_lab.providers.vertex:from_config",
}
_lock = threading.Lock()
_entry_points_loaded = False


def register_provider_type(name: str, factory: ProviderFactory | str) -> None:
    """Make ``type = "<name>"`` in a ``[providers.X]`` table build its provider with *factory*."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"a provider type name must be a plain word, got {name!r}")
    with _lock:
        _types[name] = factory


def provider_types() -> list[str]:
    """Every registered type name, entry points included."""
    _load_entry_points()
    return sorted(_types)


def provider_factory(name: str) -> ProviderFactory:
    """The factory registered as *name*; `ConfigError` naming the closest known type otherwise."""
    _load_entry_points()
    with _lock:
        factory = _types.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, list(_types), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown provider type {name!r} (known: {', '.join(sorted(_types))}){hint}")
    if isinstance(factory, str):
        factory = load_factory(factory)
        with _lock:
            _types[name] = factory
    return factory


def load_factory(spec: ProviderFactory | str) -> ProviderFactory:
    """*spec* itself, or the factory a ``"package.module:attribute"`` string names, imported now."""
    if not isinstance(spec, str):
        return spec
    module, _, attribute = spec.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module), attribute)
    return factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _types.setdefault(ep.name, ep.value)
