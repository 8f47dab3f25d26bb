"""What evaluation needs from a session: ask a model, keep a batch's concurrency, wait for a coroutine.

Judges and pairwise battles ask models, but they sit beside the session, not above
it: they are handed an `Asker` (a `Lab` is one) and never reach for a hidden
default.  Defined here, below both, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .errors import LabError
    from .types import ChatRequest, ChatResult

T = TypeVar("T")


class Asker(Protocol):
    @property
    def max_concurrency(self) -> int:
        """How many requests a batch keeps in flight."""

    async def acall(
        self, request: ChatRequest, *, fallback: bool = True, run_id: str | None = None
    ) -> ChatResult | LabError:
        """One request, routed, cached and recorded; a failure is returned, never raised."""

    def block_on(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* where the asker's connections live and wait for it (from synchronous code)."""
