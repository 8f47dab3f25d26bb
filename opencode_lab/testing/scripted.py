"""What every loopback server answers, whatever its wire format: one script, so they all agree.

* Text: ``"echo: <last user message>"``, or ``"echo: <tool result>"`` when the last turn is
  a tool result, with word counts as token counts.
* Tool calls: when the request offers tools and the last turn is the user's, the server
  calls one.  ``[[call:NAME {"json": "arguments"}]]`` in the prompt picks the tool and the
  arguments (sent verbatim, even when they break the schema: a wrong call is test data);
  otherwise the first tool is called with example values for its required parameters.

* Log-probabilities, when asked: each word (a piece as `pieces` cuts it) is chosen with probability
  0.6 (log 0.6) and the k-th alternative ``alt<k>`` has 0.4 / 2**k, so the top ones form a valid
  distribution (they sum to less than 1) a test can check by hand.

A server answers ``reply(body)`` instead when a test gives it a `Reply`; tool calls still follow
this script.  Stdlib only, like the servers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable
from typing import Any

#: a reply: the answer text for a request body (the vendor's JSON, parsed)
Reply = Callable[[dict[str, Any]], str]

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


def pieces(text: str) -> list[str]:
    """*text* as a stream sends it: words with the whitespace before them; joined, they are *text* again."""
    return re.split(r"(?<=\S)(?=\s)", text)


#: the probability of each chosen token in `logprobs`
CHOSEN_P = 0.6


def logprobs(text: str, top: int) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """``(token, logprob, [(alternative, logprob), ...])`` per piece of *text*: the chosen token first among
    its *top* most likely alternatives."""
    chosen = math.log(CHOSEN_P)
    alternatives = [(f"alt{k}", math.log((1 - CHOSEN_P) / 2**k)) for k in range(1, top)]
    return [(piece, chosen, [(piece, chosen), *alternatives][:top]) for piece in pieces(text)]


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


def image_digest(b64: str) -> str:
    """The content hash of a base64 image, as `opencode_lab.core.content.Image.digest` computes it."""
    return "sha256:" + hashlib.sha256(base64.b64decode(b64)).hexdigest()
