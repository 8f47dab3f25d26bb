"""What the router accepts from a provider: a provider is code the router does not trust.

A user's own provider is as welcome as a shipped one, and as fallible: it may raise
anything (``SystemExit`` and a stray ``CancelledError`` included), or return a
`Completion` whose fields are not what they say.  Either becomes a `ProviderError`
of that deployment here, so it costs one row of a batch, never the batch or the
Lab's event loop.  An answer to a ``schema=`` request is checked here too, once,
whatever the provider, in a worker thread: the check is bounded
(`opencode_lab.core.structured`) but may take a second, which belongs neither to
the event loop every other request shares nor to the provider's timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager

from ..core.deployment import Deployment
from ..core.errors import LabError, ProviderError
from ..core.tools import ToolCall
from ..core.types import ChatRequest, Completion, StreamChunk, Usage


@contextmanager
def contained(deployment: Deployment) -> Iterator[None]:
    """Whatever a provider raises besides our own errors becomes a `ProviderError` of *deployment*: rotated,
    not retried, and one row's error instead of an exception that aborts a batch or stops the event loop.

    A ``CancelledError`` is passed on only when this task really is being cancelled (Ctrl-C, a deadline);
    one the provider raised by itself is the provider's failure like any other.
    """
    try:
        yield
    except LabError:
        raise
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        raise _failure(deployment, exc) from exc
    except BaseException as exc:  # SystemExit or GeneratorExit from a provider must not end the loop's thread
        raise _failure(deployment, exc) from exc


def _failure(deployment: Deployment, exc: BaseException) -> ProviderError:
    return ProviderError(
        f"the provider raised {type(exc).__name__}: {exc}", provider=deployment.provider, model=deployment.upstream
    )


def received(completion: object, deployment: Deployment) -> Completion:
    """*completion* if it is a `Completion` whose every field has its declared type; a `ProviderError`
    naming the first field that does not, otherwise (a malformed answer must not fail later, far away)."""
    problem = _problem(completion)
    if problem or not isinstance(completion, Completion):  # the second never holds when the first does not
        raise ProviderError(f"the provider returned {problem}", provider=deployment.provider, model=deployment.upstream)
    return completion


def received_chunk(chunk: object, deployment: Deployment) -> StreamChunk:
    """A streamed piece as `received` takes a completion: a `StreamChunk` with text and, last, a `Completion`."""
    if not isinstance(chunk, StreamChunk) or not isinstance(chunk.delta, str):
        raise ProviderError(
            f"the provider streamed a {type(chunk).__name__}, not a StreamChunk with text",
            provider=deployment.provider,
            model=deployment.upstream,
        )
    if chunk.completion is not None:
        received(chunk.completion, deployment)
    return chunk


async def checked(completion: Completion, request: ChatRequest, deployment: Deployment) -> None:
    """Check an answer to a ``schema=`` request against its schema, off the event loop; a mismatch raises
    `SchemaMismatchError` (keeping the text)."""
    schema = request.params.schema
    if schema is not None:
        await asyncio.to_thread(schema.parse, completion.text, provider=deployment.provider, model=deployment.upstream)


def _problem(completion: object) -> str | None:
    if not isinstance(completion, Completion):
        return f"a {type(completion).__name__}, not a Completion"
    fields = {
        "text": isinstance(completion.text, str),
        "model": isinstance(completion.model, str),
        "finish_reason": completion.finish_reason is None or isinstance(completion.finish_reason, str),
        "ttft_s": _measure(completion.ttft_s),
        "usage": isinstance(completion.usage, Usage),
        "tool_calls": isinstance(completion.tool_calls, tuple | list)
        and all(isinstance(c, ToolCall) for c in completion.tool_calls),
    }
    for name, ok in fields.items():
        if not ok:
            return f"a Completion whose {name} is {_shown(getattr(completion, name))}"
    usage = completion.usage
    for name in ("input_tokens", "output_tokens"):
        value = getattr(usage, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return f"a Completion whose usage.{name} is {_shown(value)}, not a count"
    if not _measure(usage.cost_usd):
        return f"a Completion whose usage.cost_usd is {_shown(usage.cost_usd)}, not a cost"
    return None


def _measure(value: object) -> bool:
    """None, or a finite non-negative number (a time, a cost)."""
    if value is None:
        return True
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _shown(value: object) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text[:60]}{'...' if len(text) > 60 else ''})"
