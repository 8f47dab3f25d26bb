"""Tool calls on the OpenAI chat-completions wire: declarations out, ``tool_calls`` back (whole or streamed).

Kept apart from `openai_wire` (the rest of the format) so tools are one concern in one place;
every reader is strict in the same way: a malformed call is a `WireError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.tools import ToolCall
from ..core.types import ChatRequest
from .wire import WireError


def tools_payload(request: ChatRequest) -> dict[str, Any]:
    """The ``tools`` field of a request body (nothing when the request offers none)."""
    return {"tools": [t.to_openai() for t in request.tools]} if request.tools else {}


def message_tool_calls(data: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    """The calls in ``choices[0].message.tool_calls`` of a whole response."""
    choices = data.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    raw = message.get("tool_calls") if isinstance(message, dict) else None
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise WireError("choices[0].message.tool_calls is not a list")
    calls = []
    for i, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise WireError(f"tool_calls[{i}] has no function name")
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str | dict):
            raise WireError(f"tool_calls[{i}].function.arguments is not JSON text")
        calls.append(ToolCall.parse(str(item.get("id") or f"call_{i}"), function["name"], arguments))
    return tuple(calls)


class ToolCallDeltas:
    """Streamed ``delta.tool_calls`` pieces, joined by their ``index`` into whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]

    def feed(self, choice: Mapping[str, Any]) -> bool:
        """Take one choice's pieces; True when it carried any (that is progress, like text)."""
        delta = choice.get("delta")
        pieces = delta.get("tool_calls") if isinstance(delta, dict) else None
        if not pieces:
            return False
        if not isinstance(pieces, list):
            raise WireError("delta.tool_calls is not a list")
        for piece in pieces:
            if not isinstance(piece, dict):
                raise WireError("a delta.tool_calls entry is not an object")
            index = piece.get("index", 0)
            function = piece.get("function") or {}
            if not isinstance(index, int) or not isinstance(function, dict):
                raise WireError("a delta.tool_calls entry has no index or function")
            call = self._calls.setdefault(index, ["", "", ""])
            call[0] = str(piece.get("id") or call[0])
            call[1] = str(function.get("name") or call[1])
            call[2] += str(function.get("arguments") or "")
        return True

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall.parse(call_id or f"call_{index}", name, arguments)
            for index, (call_id, name, arguments) in sorted(self._calls.items())
        )
