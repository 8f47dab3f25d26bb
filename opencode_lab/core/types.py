"""The small vocabulary every layer shares: requests, completions, attempts, results.

Values are frozen dataclasses so they can be hashed, cached and passed between
threads without copies.  Nothing here knows about HTTP, pandas or a vendor's JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .attempt import Attempt
from .content import Image, Part, parts
from .errors import InvalidRequestError
from .logprobs import TokenLogprob
from .numbers import significant
from .params import Params, utf8
from .structured import json_value
from .tools import Tool, ToolCall
from .tools import tools as tool_list

_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One turn.  ``content`` is its text; ``parts`` holds text and images in order when it has images.

    An assistant turn may carry the ``tool_calls`` it made, and a ``tool`` turn answers
    one of them (``tool_call_id``) with ``content`` as the tool's result.
    """

    role: str
    content: str
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""

    @property
    def images(self) -> tuple[Image, ...]:
        return tuple(p for p in self.parts if isinstance(p, Image))

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI chat-completions form (images as ``data:`` URLs)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.parts:
            out["content"] = [
                {"type": "text", "text": p}
                if isinstance(p, str)
                else {"type": "image_url", "image_url": {"url": p.data_url()}}
                for p in self.parts
            ]
        if self.tool_calls:
            out["content"] = self.content or None
            out["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out

    def canonical(self) -> list[Any]:
        """A JSON-able form for the cache key: ``[role, content]`` for plain text (so keys made before
        rich messages existed still match), images by content hash, never by path."""
        if not (self.parts or self.tool_calls or self.tool_call_id):
            return [self.role, self.content]
        shown = [p if isinstance(p, str) else p.digest for p in self.parts]
        calls = [[c.id, c.name, c.raw_arguments] for c in self.tool_calls]
        return [self.role, self.content, shown, calls, self.tool_call_id]


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
    tools: tuple[Tool, ...] = ()

    @classmethod
    def build(
        cls,
        prompt: str | Sequence[Mapping[str, Any] | Message],
        *,
        model: str | Sequence[str] | None = None,
        system: str | None = None,
        tools: Any = None,
        **params: Any,
    ) -> ChatRequest:
        """Validate the caller's input and normalise it; raise `InvalidRequestError` naming the problem.

        *params* are the fields of `Params` (temperature, max_tokens, seed, top_p, stop); *tools* are
        declarations or functions (`opencode_lab.core.tools`).
        """
        return cls(
            messages=_messages(prompt, system),
            model=_model_spec(model),
            params=Params.build(**params),
            tools=tool_list(tools),
        )

    def asking(self, prompt: str | Sequence[Mapping[str, Any] | Message], system: str | None = None) -> ChatRequest:
        """The same model, parameters and tools asking *prompt* (validated as `build` validates it): a compare
        validates its parameters and tools once and builds every row's request from them."""
        return replace(self, messages=_messages(prompt, system))

    @property
    def images(self) -> tuple[Image, ...]:
        """Every image of every message: what a model that takes no images must not be sent."""
        return tuple(i for m in self.messages for i in m.images)

    def for_sample(self, sample: int) -> ChatRequest:
        """This request as sample *sample* of several (see `Params.for_sample`)."""
        params = self.params.for_sample(sample)
        return self if params is self.params else replace(self, params=params)

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
    reasoning_tokens: int | None = None
    """Of ``output_tokens``, those spent thinking (billed as output); None when not reported."""
    cached_input_tokens: int | None = None
    """Of ``input_tokens``, those read from the provider's prompt cache (billed at the cached price)."""
    cache_write_tokens: int | None = None
    """Of ``input_tokens``, those written to the provider's prompt cache (Anthropic bills a premium)."""


@dataclass(frozen=True)
class Completion:
    """One provider's answer, already normalised at the provider edge."""

    text: str
    model: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    ttft_s: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    seed: int | None = None
    """The seed the answer was sampled with, as the provider sent it (the caller's, or one an in-process
    model drew); None when no seed was sent or the provider takes none (`Capabilities.seeds`): a row
    claims only a seed that made its answer."""
    upstream_provider: str | None = None
    """The upstream that served the call when the provider routes among several (OpenRouter reports its
    ``provider``); None when the provider does not say."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Per-token log-probabilities, when the request asked for them (``logprobs=True``)."""


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
    cached_input_price_per_mtok: float | None = None
    cache_write_price_per_mtok: float | None = None
    request_fee_usd: float | None = None


@dataclass(frozen=True)
class ChatResult:
    """A completed chat call: the answer plus everything needed to compare it.

    ``model`` is what was asked for, ``served_by`` the deployment that answered.
    ``cost_source`` is one of ``provider``, ``catalog``, ``local``, ``unknown``.
    ``seed_used`` is the answer's `Completion.seed` (a cache hit keeps the original call's): passing it
    as ``seed=`` asks for this answer again.  ``upstream_provider`` and ``region`` say where it was answered:
    the routed provider's upstream (`Completion.upstream_provider`) and the deployment's declared region
    (None when either is unknown).
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
    tool_calls: tuple[ToolCall, ...] = ()
    seed_used: int | None = None
    upstream_provider: str | None = None
    region: str | None = None
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_discount_usd: float = math.nan
    """What the provider's prompt cache took off ``cost_usd`` (see `Deployment.cache_discount_usd`)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The answer's tokens with their log-probabilities and top alternatives (None unless asked for)."""
    lookup_s: float | None = None
    """For a cache hit, the seconds this answer took to come from the cache (``latency_s`` is the original
    call's)."""

    @property
    def data(self) -> Any:
        """The answer parsed as JSON (inside a code fence too): the object a ``schema=`` request asked for,
        validated before it got here; None when the text is not JSON."""
        return json_value(self.text)

    @property
    def message(self) -> Message:
        """This answer as the assistant turn of a follow-up conversation, tool calls included."""
        return Message("assistant", self.text, tool_calls=self.tool_calls)

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
        """One line: who answered, how fast, how many tokens (those read from a prompt cache and spent thinking,
        when there were any), what it cost and a hit saved (unknowns say so, never 0), and the seed that
        replays it."""
        tokens = f"{_count(self.input_tokens)}→{_count(self.output_tokens)} tok"
        counted = ((self.cached_input_tokens, "cached"), (self.reasoning_tokens, "thinking"))
        details = [f"{n} {what}" for n, what in counted if n]
        tokens += f" ({', '.join(details)})" if details else ""
        seed = "" if self.seed_used is None else f" · seed {self.seed_used}"
        return (
            f"{self.served_by} · {self._time()} · {tokens} · {self._cost()} · "
            f"{'cached' if self.cached else 'live'}{seed} · {len(self.attempts)} attempt(s)"
        )

    def _time(self) -> str:
        """The call's time; for a cache hit, the lookup's and the original call's, so neither reads as the other."""
        if not self.cached:
            return f"{self.latency_s:.2f}s"
        lookup = "" if self.lookup_s is None else f"from the cache in {self.lookup_s:.2f}s, "
        return f"{lookup}first answered in {self.latency_s:.2f}s"

    def _cost(self) -> str:
        """What was paid, and for a cache hit what it saved: unknown when the original call's cost was."""
        if math.isnan(self.cost_usd):
            return "cost unknown"
        if not self.cached or self.cost_saved_usd == 0:
            return "free" if self.cost_usd == 0 else f"${significant(self.cost_usd)}"
        saved = "unknown" if math.isnan(self.cost_saved_usd) else f"${significant(self.cost_saved_usd)}"
        return f"${significant(self.cost_usd)} (cache saved {saved})"


def _count(tokens: int | None) -> str:
    return "?" if tokens is None else str(tokens)


def _messages(prompt: Any, system: str | None) -> tuple[Message, ...]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidRequestError("prompt is empty")
        out = [Message("user", utf8("prompt", prompt))]
    elif isinstance(prompt, Iterable):
        out = [_message(i, m) for i, m in enumerate(prompt)]
        if not out:
            raise InvalidRequestError("messages list is empty")
        if not any(m.content.strip() or m.images for m in out if m.role == "user"):
            raise InvalidRequestError("messages contain no non-empty user message")
        _check_tool_turns(out)
    else:
        raise InvalidRequestError(f"prompt must be a string or a list of messages, not {type(prompt).__name__}")
    if system is not None:
        if not isinstance(system, str):
            raise InvalidRequestError(f"system must be a string, not {type(system).__name__}")
        out.insert(0, Message("system", utf8("system", system)))
    return tuple(out)



def _message(index: int, item: Any) -> Message:
    where = f"message {index}"
    if isinstance(item, ChatResult):
        return item.message
    if isinstance(item, Message):
        item = {"role": item.role, "content": item.parts or item.content, "tool_calls": item.tool_calls,
                "tool_call_id": item.tool_call_id}
    if not (isinstance(item, Mapping) and "role" in item and ("content" in item or "tool_calls" in item)):
        raise InvalidRequestError(f"{where} must be a mapping with 'role' and 'content'")
    role, content = item["role"], item.get("content")
    if role not in _ROLES:
        raise InvalidRequestError(f"{where} has role {role!r}; expected one of {', '.join(_ROLES)}")
    raw_calls = item.get("tool_calls") or ()
    if not isinstance(raw_calls, list | tuple):
        raise InvalidRequestError(f"{where} tool_calls must be a list")
    calls = tuple(ToolCall.of(c, f"{where} tool_calls[{i}]") for i, c in enumerate(raw_calls))
    if calls and role != "assistant":
        raise InvalidRequestError(f"{where} has tool_calls, which only an assistant message may make")
    call_id = item.get("tool_call_id") or ""
    if role == "tool":
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequestError(f"{where} is a tool result without the 'tool_call_id' it answers")
        if not isinstance(content, str):  # a result given as data is sent as its JSON text
            try:
                content = json.dumps(content, ensure_ascii=False)
            except (TypeError, ValueError):
                raise InvalidRequestError(f"{where} content must be text or JSON data") from None
    if content is None and calls:
        content = ""
    if isinstance(content, str):
        return Message(role, utf8(f"{where} content", content), (), calls, call_id)
    if not isinstance(content, list | tuple):
        raise InvalidRequestError(f"{where} content must be a string or a list of parts, not {type(content).__name__}")
    found = parts(content, where)
    text = "\n".join(p for p in found if isinstance(p, str))
    if not any(isinstance(p, Image) for p in found):
        return Message(role, text, (), calls, call_id)
    if role != "user":
        raise InvalidRequestError(f"{where} has an image; only user messages may")
    return Message(role, text, found)


def _check_tool_turns(messages: Sequence[Message]) -> None:
    """A tool result must answer a call an earlier assistant turn made (Gemini and Anthropic need the pair)."""
    made: set[str] = set()
    for i, message in enumerate(messages):
        made.update(c.id for c in message.tool_calls)
        if message.role == "tool" and message.tool_call_id not in made:
            raise InvalidRequestError(
                f"message {i} answers tool call {message.tool_call_id!r}, which no earlier assistant message made"
            )


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




