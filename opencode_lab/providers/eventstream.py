"""AWS's binary event-stream framing (``application/vnd.amazon.eventstream``), read with botocore's parser.

Each message is a prelude, typed headers and a payload, guarded by two CRC32s; botocore's
`EventStreamBuffer` checks both and the lengths.  An ``event`` message becomes the JSON text
``{"<:event-type>": payload}`` (the shape AWS's SDKs give), which a codec's fold reads like any other
stream's events; an ``exception`` or ``error`` message is raised as the codec says (*exception*), and
a broken frame is a `WireError`.  A body that ends inside a message just ends: the fold knows whether
its answer was whole.  botocore is imported here, where a Bedrock stream is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from .wire import Reported, WireError

MEDIA_TYPE = "application/vnd.amazon.eventstream"


async def events(chunks: AsyncIterator[bytes], exception: Callable[[str, bytes], Reported]) -> AsyncIterator[str]:
    """The events of the body *chunks* make up, in order, as JSON text."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    async for chunk in chunks:
        buffer.add_data(chunk)
        try:
            messages = list(buffer)
        except ParserError as exc:
            raise WireError(f"event stream frame is broken: {type(exc).__name__}: {exc}") from None
        for message in messages:
            headers = message.headers
            kind = headers.get(":message-type")
            if kind == "event":
                name = headers.get(":event-type")
                if not isinstance(name, str) or not name:
                    raise WireError("an event stream message has no :event-type")
                yield f"{{{json.dumps(name)}:{_text(message.payload)}}}"  # the fold checks it is one event
            elif kind == "exception":
                raise exception(str(headers.get(":exception-type") or "exception"), message.payload)
            elif kind == "error":
                raise exception(str(headers.get(":error-code") or "error"), message.payload)
            else:
                raise WireError(f"an event stream message has :message-type {kind!r}")


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8") or "{}"
    except UnicodeDecodeError:
        raise WireError(f"event stream payload is not UTF-8: {payload[:40]!r}") from None
