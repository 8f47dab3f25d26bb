"""The small vocabulary every layer shares: requests, completions, attempts, results.

Values are frozen dataclasses so they can be hashed, cached and passed between
threads without copies.  Nothing here knows about HTTP, pandas or a vendor's JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import InvalidRequestError

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
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        prompt: str | Sequence[Mapping[str, str] | Message],
        *,
        model: str | Sequence[str] | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
    ) -> ChatRequest:
        """Validate the caller's input and normalise it; raise `InvalidRequestError` naming the problem."""
        messages = _messages(prompt, system)
        return cls(
            messages=messages,
            model=_model_spec(model),
            temperature=_number("temperature", temperature, 0.0, 2.0),
            max_tokens=_positive_int("max_tokens", max_tokens),
            seed=_int("seed", seed),
            top_p=_number("top_p", top_p, 0.0, 1.0),
            stop=_stop(stop),
        )

    @property
    def prompt_text(self) -> str:
        """All message contents joined; what a token estimate is based on."""
        return "\n".join(m.content for m in self.messages)

    def estimated_tokens(self) -> int:
        """A cheap upper-bound-ish token estimate (~4 characters per token plus overhead)."""
        return math.ceil(len(self.prompt_text) / 3.5) + 4 * len(self.messages) + (self.max_tokens or 0)


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
class Attempt:
    """One try at one deployment: the unit of the metrics records."""

    number: int
    deployment: str
    provider: str
    model: str
    status: Literal["ok", "error"]
    latency_s: float
    started_at: float
    error_type: str | None = None
    http_status: int | None = None
    error: str | None = None
    ttft_s: float | None = None


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

    def _repr_markdown_(self) -> str:
        from .display import result_markdown  # model text is escaped there: an answer must not inject HTML

        return result_markdown(self)


def _messages(prompt: Any, system: str | None) -> tuple[Message, ...]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidRequestError("prompt is empty")
        out = [Message("user", _utf8("prompt", prompt))]
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
        out.insert(0, Message("system", _utf8("system", system)))
    return tuple(out)


def _utf8(what: str, text: str) -> str:
    """Refuse text that cannot go on the wire (a lone surrogate) here, not as a UnicodeEncodeError in httpx."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"{what} is not valid Unicode: lone surrogate {text[exc.start]!r} at position {exc.start} "
            "cannot be encoded as UTF-8"
        ) from None
    return text


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
    return Message(role, _utf8(f"message {index} content", content))


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


def _number(name: str, value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRequestError(f"{name} must be a number between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise InvalidRequestError(f"{name} must be between {low} and {high}, got {value!r}")
    return float(value) + 0.0  # -0.0 becomes 0.0: equal requests must give equal cache keys


def _int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an integer, got {value!r}")
    return value


def _positive_int(name: str, value: Any) -> int | None:
    value = _int(name, value)
    if value is not None and value < 1:
        raise InvalidRequestError(f"{name} must be at least 1, got {value!r}")
    return value


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = (stop,) if isinstance(stop, str) else tuple(stop)
    if not all(isinstance(s, str) and s for s in items):
        raise InvalidRequestError(f"stop must be a string or a list of non-empty strings, got {stop!r}")
    return tuple(_utf8("stop", s) for s in items)
