"""What every streamed answer shares, whatever its wire format: the text so far and the fold of events.

`StreamText` holds the answer as it streams (keys masked across deltas, time to first token, the
text an interrupted stream hands to its error); a codec's `Fold` turns one format's events into
text and a final `Completion`; `cut` names a stream that broke.  The loop that drives them is
written once, in `opencode_lab.providers.http.HTTPProvider.stream`.
"""

from __future__ import annotations

import time
from typing import Protocol

from ..core.errors import ProviderConnectionError, ProviderError, StreamInterruptedError
from ..core.secrets import StreamRedactor
from ..core.types import Completion


class Fold(Protocol):
    """One stream's events folded into one answer, by the codec of its wire format."""

    @property
    def finished(self) -> bool:
        """The answer is complete (a finish reason or end marker came): the rest of the body only gets a grace."""
        ...

    @property
    def done(self) -> bool:
        """The end marker came: later events are read (so the connection is reused) and dropped."""
        ...

    @property
    def incomplete(self) -> str:
        """What a body that ends before `finished` lacked, e.g. ``"stream ended without [DONE]"``."""
        ...

    def feed(self, data: str) -> tuple[str, bool]:
        """Take one ``data:`` payload; return its text and whether it was progress (text or tool input).

        A broken event raises `WireError`, a reported error `Reported`."""
        ...

    def completion(self, text: str, ttft: float | None) -> Completion:
        """The whole answer, once the stream has ended."""
        ...


class StreamText:
    """An answer as it streams: keys masked across deltas, the time to the first token, and the text so far."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.ttft: float | None = None
        self._started = time.perf_counter()
        self._redactor = StreamRedactor()

    def feed(self, raw: str) -> str:
        """What of *raw* may be shown now (a possible key's start is held back)."""
        delta = self._redactor.feed(raw)
        if delta:
            self.ttft = self.ttft if self.ttft is not None else time.perf_counter() - self._started
            self.parts.append(delta)
        return delta

    def flush(self) -> str:
        """What was held back, once the stream has ended."""
        tail = self._redactor.flush()
        if tail:
            self.parts.append(tail)
        return tail

    @property
    def text(self) -> str:
        return "".join(self.parts)


def cut(provider: str, model: str | None, parts: list[str], why: str) -> ProviderError:
    """A stream that breaks after text arrived is `StreamInterruptedError` (no failover); before, it is retryable."""
    if parts:
        return StreamInterruptedError(why, partial_text="".join(parts), provider=provider, model=model)
    return ProviderConnectionError(why, provider=provider, model=model)
