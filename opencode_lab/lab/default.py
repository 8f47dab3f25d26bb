"""The default Lab behind the module-level functions and the magics, built from the environment on first use."""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .lab import Lab

if TYPE_CHECKING:
    from ..core.errors import LabError
    from ..core.types import ChatRequest, ChatResult

T = TypeVar("T")

_default: Lab | None = None
_lock = threading.Lock()


def default_lab() -> Lab:
    """The Lab behind ``opencode_lab.chat`` & co., built from the environment on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Lab.from_env()
        return _default


def set_default_lab(lab: Lab | None) -> None:
    """Replace (or with None, forget) the default Lab, e.g. after changing environment variables."""
    global _default
    with _lock:
        _default = lab


class DefaultAsker:
    """The default Lab as an `opencode_lab.core.asking.Asker`, looked up only when a judge first asks, so
    ``oc.judge(...)`` builds no Lab; a Lab passed explicitly always wins."""

    @property
    def max_concurrency(self) -> int:
        return default_lab().max_concurrency

    async def acall(
        self, request: ChatRequest, *, fallback: bool = True, run_id: str | None = None
    ) -> ChatResult | LabError:
        return await default_lab().acall(request, fallback=fallback, run_id=run_id)

    def block_on(self, coro: Coroutine[Any, Any, T]) -> T:
        __tracebackhide__ = True
        return default_lab().block_on(coro)
