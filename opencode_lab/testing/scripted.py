"""What every loopback server answers, whatever its wire format: one script, so they all agree.

* Text: ``"echo: <last user message>"``, or ``"echo: <tool result>"`` when the last turn is
  a tool result, with word counts as token counts.
* Tool calls: when the request offers tools and the last turn is the user's, the server
  calls one.  ``[[call:NAME {"json": "arguments"}]]`` in the prompt picks the tool and the
  arguments (sent verbatim, even when they break the schema: a wrong call is test data);
  otherwise the first tool is called with example values for its required parameters.

Stdlib only, like the servers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import socket
import struct
from typing import Any

_CALL = re.compile(r"\[\[call:([\w-]+)(?:\s+(.*?))?\]\]", re.DOTALL)
_EXAMPLES = {"string": "example", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}


def tool_call(prompt: str, tools: list[tuple[str, dict[str, Any]]]) -> tuple[str, str] | None:
    """``(name, JSON arguments text)`` of the call to make for *prompt*, or None when *tools* is empty."""
    if not tools:
        return None
    directive = _CALL.search(prompt)
    if directive:
        return directive.group(1), (directive.group(2) or "{}").strip()
    name, schema = tools[0]
    return name, json.dumps(example_arguments(schema))


def example_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy *schema*'s required properties (first enum value, else a value of the type)."""
    properties = schema.get("properties") or {}
    out = {}
    for name in schema.get("required") or []:
        prop = properties.get(name) or {}
        kind = prop.get("type", "string")
        kind = (kind[0] if kind else "string") if isinstance(kind, list) else kind
        out[name] = prop["enum"][0] if prop.get("enum") else _EXAMPLES.get(str(kind).lower(), "example")
    return out


def call_id(counter: int) -> str:
    return f"call_{counter:06d}"


def echo(text: str) -> str:
    return f"echo: {text}"


def words(text: str) -> int:
    return len(text.split())


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """*text* cut to *max_tokens* words (a word is a token here), and whether it was cut."""
    pieces = text.split()
    if max_tokens is None or len(pieces) <= max_tokens:
        return text, False
    return " ".join(pieces[:max_tokens]), True


def arguments_object(arguments: str) -> dict[str, Any]:
    """Scripted arguments as the object a vendor that sends objects (Anthropic, Gemini) would send."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {"unparsed": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


async def hang(reader: asyncio.StreamReader, seconds: float) -> None:
    """Say nothing for *seconds*, or until the client gives up and closes."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.read(1), seconds)


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST (linger 0), as a crashed server would."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def write_events(
    writer: asyncio.StreamWriter, events: list[bytes], *, cut_at: int | None, delay_s: float
) -> bool:
    """Send SSE *events* as the pieces of a chunked body, flushed one by one.  With *cut_at*, stop before that
    event and leave the body unterminated; returns False then (the connection must close)."""
    for i, data in enumerate(events):
        if i == cut_at:
            await writer.drain()
            return False
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()
        if delay_s:
            await asyncio.sleep(delay_s)
    writer.write(b"0\r\n\r\n")
    return True


def image_digest(b64: str) -> str:
    """The content hash of a base64 image, as `opencode_lab.core.content.Image.digest` computes it."""
    return "sha256:" + hashlib.sha256(base64.b64decode(b64)).hexdigest()
