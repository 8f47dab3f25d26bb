"""Shared fixtures for the policy tests: a manual clock and a bounded event-loop runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from opencode_lab.routing.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on a fresh loop; a real 10 s guard turns a deadlock into a failure instead of a hang."""

    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run(asyncio.wait_for(coro, timeout=10.0))

    return _run
