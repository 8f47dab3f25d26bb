"""The small vocabulary every layer shares: requests, completions, attempts, results.

Values are frozen dataclasses so they can be hashed, cached and passed between
threads without copies.  Nothing here knows about HTTP, pandas or a vendor's JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .attempt import Attempt
from .errors import InvalidRequestError
from .params import Params, utf8

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ChatRequest:
    """What to ask, independent of who answers.

    ``model`` is the caller's spec (id, alias, list or None for the rotation pool);
    the router resolves it.  Validation happens in `ChatRequest.build`, before
    any request is sent.
    """

    messages: tuple[Message, ...]
    model: str | tuple[str, ...] | None = None
    params: Params = field(default_factory=Params)

    @classmethod
    def build(
        cls,
        prompt: str | Sequence[Mapping[str, str] | Message],
        *,
        model: str | Sequence[str] | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatRequest:
        """Validate the caller's input and normalise it; raise `InvalidRequestError` naming the problem.

        *params* are the fields of `Params` (temperature, max_tokens, seed, top_p, stop).
        """
        return cls(messages=_messages(prompt, system), model=_model_spec(model), params=Params.build(**params))

    @property
    def prompt_text(self) -> str:
        """All message contents joined; what a token estimate is based on."""
        return "\n".join(m.content for m in self.messages)

    def estimated_tokens(self) -> int:
        """A cheap upper-bound-ish token estimate (~4 characters per token plus overhead)."""
        return math.ceil(len(self.prompt_text) / 3.5) + 4 * len(self.messages) + (self.params.max_tokens or 0)


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    """Cost as reported by the provider itself (OpenRouter does); None when not reported."""


@dataclass(frozen=True)
class Completion:
    """One provider's answer, already normalised at the provider edge."""

    text: str
    model: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    ttft_s: float | None = None


@dataclass(frozen=True)
class StreamChunk:
    """A piece of a streamed answer; the last chunk carries the whole `Completion`."""

    delta: str
    completion: Completion | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a provider says about a model it serves (pricing per million tokens)."""

    id: str
    context_length: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    tags: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ChatResult:
    """A completed chat call: the answer plus everything needed to compare it.

    ``model`` is what was asked for, ``served_by`` the deployment that answered.
    ``cost_source`` is one of ``provider``, ``catalog``, ``local``, ``unknown``.
    """

    text: str
    model: str
    served_by: str
    provider: str
    finish_reason: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float = math.nan
    cost_source: str = "unknown"
    cost_saved_usd: float = 0.0
    cached: bool = False
    attempts: tuple[Attempt, ...] = ()
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["attempts"] = len(self.attempts)
        return data

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return (
            f"ChatResult({text!r}, served_by={self.served_by!r}, latency_s={self.latency_s:.3f}, "
            f"tokens={self.input_tokens}/{self.output_tokens}, cached={self.cached})"
        )

    def footer(self) -> str:
        """One line: who answered, how fast, how many tokens, what it cost."""
        cost = "n/a" if math.isnan(self.cost_usd) else f"${self.cost_usd:.6f}"
        return (
            f"{self.served_by} · {self.latency_s:.2f}s · {self.input_tokens or 0}→{self.output_tokens or 0} tok"
            f" · {cost} · {'cached' if self.cached else 'live'} · {len(self.attempts)} attempt(s)"
        )



def _messages(prompt: Any, system: str | None) -> tuple[Message, ...]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidRequestError("prompt is empty")
        out = [Message("user", utf8("prompt", prompt))]
    elif isinstance(prompt, Iterable):
        out = [_message(i, m) for i, m in enumerate(prompt)]
        if not out:
            raise InvalidRequestError("messages list is empty")
        if not any(m.content.strip() for m in out if m.role == "user"):
            raise InvalidRequestError("messages contain no non-empty user message")
    else:
        raise InvalidRequestError(f"prompt must be a string or a list of messages, not {type(prompt).__name__}")
    if system is not None:
        if not isinstance(system, str):
            raise InvalidRequestError(f"system must be a string, not {type(system).__name__}")
        out.insert(0, Message("system", utf8("system", system)))
    return tuple(out)



def _message(index: int, item: Any) -> Message:
    if isinstance(item, Message):
        role, content = item.role, item.content
    elif isinstance(item, Mapping) and "role" in item and "content" in item:
        role, content = item["role"], item["content"]
    else:
        raise InvalidRequestError(f"message {index} must be a mapping with 'role' and 'content'")
    if role not in _ROLES:
        raise InvalidRequestError(f"message {index} has role {role!r}; expected one of {', '.join(_ROLES)}")
    if not isinstance(content, str):
        raise InvalidRequestError(f"message {index} content must be a string, not {type(content).__name__}")
    return Message(role, utf8(f"message {index} content", content))


def _model_spec(model: Any) -> str | tuple[str, ...] | None:
    if model is None or isinstance(model, str):
        if isinstance(model, str) and not model.strip():
            raise InvalidRequestError("model is an empty string")
        return model.strip() if isinstance(model, str) else None
    if isinstance(model, Iterable):
        items = tuple(model)
        if not items or not all(isinstance(m, str) and m.strip() for m in items):
            raise InvalidRequestError(f"model list must hold non-empty strings, got {list(items)!r}")
        return tuple(m.strip() for m in items)
    raise InvalidRequestError(f"model must be a string or a list of strings, not {type(model).__name__}")




