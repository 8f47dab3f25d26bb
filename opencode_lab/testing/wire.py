"""What a wire format tells the server: how a vendor's requests read and its answers, streams and errors look.

`opencode_lab.testing.server.VendorServer` drives every request through the same steps (read,
check the key, choose a fault, answer); a `Wire` subclass supplies the vendor's side of each step,
so the vendor modules hold JSON shapes only and no control flow.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from opencode_lab.testing.faults import RetryAfter
from opencode_lab.testing.transport import Request, Response, Stream

__all__ = ["Call", "Route", "Wire", "model_ids"]

#: what a request asks for: an answer, or the model list (None: no such route)
Route = Literal["generate", "models"]


@dataclass(frozen=True)
class Call:
    """One generation request as its wire format reads it: the parsed *body* and what the log keeps of it."""

    body: dict[str, Any]
    model: str | None
    prompt: str
    stream: bool
    sampling: dict[str, Any]
    tools: list[str]
    images: list[str]

    def logged(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "sampling": self.sampling,
            "stream": self.stream,
            "tools": self.tools,
            "images": self.images,
        }


def model_ids(models: list[str | dict[str, Any]]) -> list[str]:
    """The ids of the ``models`` setting's entries (an id, or a whole entry as a dict)."""
    return [m if isinstance(m, str) else m["id"] for m in models]


class Wire(ABC):
    """One vendor's protocol. Each server has its own instance: ids (responses, tool calls) count per server."""

    #: every outcome this wire can play: `faults.GENERIC` plus its error statuses and content faults
    outcomes: ClassVar[frozenset[str]]
    #: what the vendor SDK's base URL adds to the server's root
    prefix: ClassVar[str] = ""
    #: the outcome of a generation request that carries no key; None when the API needs none
    keyless: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def notes(self, request: Request) -> dict[str, Any]:
        """Fields this wire adds to every log entry (e.g. the API version asked for)."""
        return {}

    @abstractmethod
    def credential(self, request: Request) -> str | None:
        """The API key *request* carries, where this vendor takes it, or None."""

    @abstractmethod
    def route(self, request: Request) -> Route | None: ...

    @abstractmethod
    def read(self, request: Request) -> Call | Response:
        """The generation request, or the 400 the real API answers to it."""

    @abstractmethod
    def echo(self, body: dict[str, Any]) -> str:
        """The default reply: the shared script's answer text for *body* (see `opencode_lab.testing.scripted`)."""

    @abstractmethod
    def answer(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Response:
        """A 200 for *call* saying *text* (or a tool call), spoiled as *outcome* says."""

    @abstractmethod
    def stream(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Stream:
        """The same answer as the vendor streams it."""

    @abstractmethod
    def failure(self, outcome: str, stream: bool, retry_after: RetryAfter | None) -> Response | None:
        """The error response *outcome* is answered with, or None when it is no error status."""

    @abstractmethod
    def refusal(self, status: int, message: str) -> Response:
        """An error in this vendor's shape, for requests no fault was chosen for (bad body, no route)."""

    @abstractmethod
    def models(self, request: Request, models: list[str | dict[str, Any]]) -> Response:
        """The model list (a page of it where the vendor pages)."""
