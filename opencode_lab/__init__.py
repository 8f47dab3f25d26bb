"""opencode_lab: prompt experiments and side-by-side LLM comparison in notebooks.

Public API (everything else is private by convention)::

    import opencode_lab as oc
    oc.chat("Name three primes.", model="local/smollm2-135m", temperature=0, seed=1)
    df = oc.compare(["2+2?", "Capital of France?"], ["local/smollm2-135m", "local/gemma-3-270m"])
    oc.stats(df); oc.plot(df)

The module-level functions use a default `Lab` built from the environment on
first use; ``Lab.from_file(path)`` gives a separately configured one.
Heavy dependencies (pandas, matplotlib, IPython, llama_cpp) load on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import (
    AllAttemptsFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    ContextWindowError,
    InvalidRequestError,
    LabError,
    MalformedResponseError,
    ModelNotFoundError,
    ModelUnavailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from .lab import Lab
from .providers.base import Provider
from .types import Attempt, ChatRequest, ChatResult, Completion, Message, ModelInfo, StreamChunk, Usage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import pandas as pd
    from matplotlib.figure import Figure

__version__ = "0.1.0"

__all__ = [
    "AllAttemptsFailedError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ChatRequest",
    "ChatResult",
    "CircuitOpenError",
    "Completion",
    "ConfigError",
    "ContextWindowError",
    "InvalidRequestError",
    "Lab",
    "LabError",
    "MalformedResponseError",
    "Message",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "PaymentRequiredError",
    "Provider",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitError",
    "ServerError",
    "Settings",
    "StreamChunk",
    "StreamInterruptedError",
    "Usage",
    "__version__",
    "achat",
    "acompare",
    "astream",
    "chat",
    "compare",
    "default_lab",
    "load_ipython_extension",
    "load_run",
    "models",
    "plot",
    "runs",
    "set_default_lab",
    "stats",
    "stream",
    "unload_ipython_extension",
]

_default: Lab | None = None
_default_lock = threading.Lock()


def default_lab() -> Lab:
    """The Lab behind the module-level functions, built from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Lab.from_env()
        return _default


def set_default_lab(lab: Lab | None) -> None:
    """Replace (or with None, forget) the default Lab, e.g. after changing environment variables."""
    global _default
    with _default_lock:
        _default = lab


def chat(prompt: Any, model: Any = None, **kwargs: Any) -> ChatResult:
    """Ask one prompt (or a message list); see `Lab.achat` for the options."""
    return default_lab().chat(prompt, model, **kwargs)


async def achat(prompt: Any, model: Any = None, **kwargs: Any) -> ChatResult:
    return await default_lab().achat(prompt, model, **kwargs)


def stream(prompt: Any, model: Any = None, **kwargs: Any) -> Iterator[str]:
    """Yield the answer's text as it arrives."""
    return default_lab().stream(prompt, model, **kwargs)


def astream(prompt: Any, model: Any = None, **kwargs: Any) -> AsyncIterator[str]:
    return default_lab().astream(prompt, model, **kwargs)


def compare(prompts: Any, models: Any = None, **kwargs: Any) -> pd.DataFrame:
    """Every prompt x model x sample as a row; see `opencode_lab.frame.acompare`."""
    return default_lab().compare(prompts, models, **kwargs)


async def acompare(prompts: Any, models: Any = None, **kwargs: Any) -> pd.DataFrame:
    return await default_lab().acompare(prompts, models, **kwargs)


def stats(results: pd.DataFrame | None = None, by: str | list[str] = "model") -> pd.DataFrame:
    """Per-model calls, failures, latency percentiles, tokens and cost."""
    return default_lab().stats(results, by=by)


def models(filter: str | None = None, *, tag: str | None = None, refresh: bool = False) -> pd.DataFrame:
    """The model catalog with pricing, context length, tags and health."""
    return default_lab().models(filter, tag=tag, refresh=refresh)


def plot(data: pd.DataFrame | None = None, kind: str = "overview", **kwargs: Any) -> Figure:
    """A comparison figure (``latency``, ``cost``, ``failures``, ``tradeoff`` or ``overview``)."""
    return default_lab().plot(data, kind, **kwargs)


def runs() -> pd.DataFrame:
    """Runs kept in the SQLite run log."""
    return default_lab().runs()


def load_run(run: str) -> pd.DataFrame:
    """The results frame of a logged run, by name or id."""
    return default_lab().load_run(run)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext opencode_lab``: register ``%%chat``, ``%models`` and friends."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
