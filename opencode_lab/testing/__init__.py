"""Test helpers that ship with the package, so tests, benchmarks and notebooks share them.

``FaultServer`` is imported lazily: ``python -m opencode_lab.testing.fault_server`` must not
find its own module already imported by this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opencode_lab.testing.fault_server import OUTCOMES, FaultServer, SpawnedFaultServer

__all__ = ["OUTCOMES", "FaultServer", "SpawnedFaultServer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from opencode_lab.testing import fault_server

        return getattr(fault_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
