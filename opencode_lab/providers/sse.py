"""Server-sent events, as every vendor here streams them: the ``data:`` payloads of a body, line by line.

Decoded strictly as UTF-8 (a bad byte is a `WireError`, not U+FFFD); ``event:``, ``id:`` and comment
lines are skipped, because every format here repeats the event type inside its JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .wire import WireError


async def data_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The ``data:`` payloads of the body *chunks* make up, stripped, in order."""
    pending: list[bytes] = []  # the unfinished line, in pieces: joined once, not copied per chunk
    async for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        first, *lines, rest = chunk.split(b"\n")
        for raw in (b"".join([*pending, first]), *lines):
            line = _decode(raw)
            if line.startswith("data:"):
                yield line[5:].strip()
        pending = [rest]
    line = _decode(b"".join(pending))
    if line.startswith("data:"):
        yield line[5:].strip()


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise WireError(f"stream contains invalid UTF-8: {raw[:40]!r}") from None
