"""The OpenAI chat-completions wire format: the request body out, answers and stream chunks back, read strictly.

Every field a caller relies on is checked for its type and range here, so a body
that breaks the format becomes a `WireError` naming the field (the HTTP edge raises
it as `MalformedResponseError`), never a ``TypeError`` three layers up, and never a
number such as ``NaN`` tokens in a results frame.  Catalog entries (``/models``) are
the exception: a bad value there is dropped, because one odd entry must not hide the
other models.  Tool calls are `openai_tools`' concern.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..core.logprobs import TokenLogprob
from ..core.types import ChatRequest, Completion, ModelInfo, Usage
from . import openai_tools
from .wire import (
    WireError,
    context_length,
    embedded_error,
    kind,
    loads,
    nested_count,
    obj,
    part_of,
    pass_options,
    served_model,
    served_upstream,
    token_logprob,
)
from .wire import usage as _usage

DONE = "[DONE]"


#: body fields the codec (or a provider built on it) owns: an option naming one is refused
RESERVED = frozenset(
    {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "response_format",
     "max_completion_tokens", "n", "reasoning", "usage", "provider"}
)  # fmt: skip


def payload(model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of one chat completion: the parameters under their OpenAI names (``reasoning_effort``,
    ``logprobs``, ``top_logprobs`` included), then the caller's passthrough options.  ``reasoning_budget`` is
    a provider's own shape (OpenRouter's ``reasoning.max_tokens``): it is left to the provider."""
    p = request.params
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.to_dict() for m in request.messages],
        **p.payload(),
        **openai_tools.tools_payload(request),
    }
    for own in ("schema", "options", "reasoning_budget"):
        body.pop(own, None)
    if p.schema is not None:  # structured output, validated again on arrival
        body["response_format"] = p.schema.response_format()
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    pass_options(body, p.options, RESERVED, "request")
    return body


def completion(data: Mapping[str, Any], asked: str) -> Completion:
    """The answer in a non-streamed response: first choice's text, tool calls and finish reason, served model, usage."""
    found = choices(data)
    if not found:
        raise WireError("response has no choices")
    first = found[0]
    return Completion(
        message_text(first.get("message")),
        served_model(data, asked),
        finish_reason(first),
        usage(data.get("usage")),
        tool_calls=openai_tools.message_tool_calls(data),
        upstream_provider=served_upstream(data),
        logprobs=logprobs(first),
    )


class ChatFold:
    """Streamed ``chat.completion.chunk`` events folded into one answer; ``[DONE]`` ends the stream."""

    incomplete = "stream ended without [DONE]"

    def __init__(self, model: str) -> None:
        self.done = False
        self._model = model
        self._finish: str | None = None
        self._usage = Usage()
        self._upstream: str | None = None
        self._calls = openai_tools.ToolCallDeltas()
        self._logprobs: list[TokenLogprob] | None = None

    @property
    def finished(self) -> bool:
        return self.done or self._finish is not None

    def feed(self, data: str) -> tuple[str, bool]:
        if data == DONE:
            self.done = True
            return "", False
        event = loads(data, "stream chunk")
        reported = embedded_error(event)
        if reported is not None:
            raise reported
        self._model = served_model(event, self._model)
        self._upstream = served_upstream(event) or self._upstream
        if event.get("usage") is not None:
            self._usage = usage(event["usage"])
        text, progressed = "", False
        for choice in choices(event):
            self._finish = finish_reason(choice) or self._finish
            raw = delta_text(choice)
            more = logprobs(choice)
            if more is not None:
                self._logprobs = [*(self._logprobs or ()), *more]
            progressed = self._calls.feed(choice) or progressed or bool(raw) or thinking(choice)
            text += raw
        return text, progressed

    def completion(self, text: str, ttft: float | None) -> Completion:
        found = None if self._logprobs is None else tuple(self._logprobs)
        calls, upstream = self._calls.calls(), self._upstream
        return Completion(
            text, self._model, self._finish, self._usage, ttft, calls, upstream_provider=upstream, logprobs=found
        )


def model_info(item: Mapping[str, Any]) -> ModelInfo:
    """One ``/models`` entry (llama.cpp's server puts the context size in ``meta``); a bad value is dropped."""
    meta = item.get("meta")
    ctx = item.get("context_length") or (meta.get("n_ctx_train") if isinstance(meta, dict) else None)
    return ModelInfo(id=item["id"], context_length=context_length(ctx))


def listed(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The entries of a ``/models`` response that have an id (absent ``data``: none)."""
    items = data.get("data")
    if items is None:
        return []
    if not isinstance(items, list):
        raise WireError("the model list's data is not a list")
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]]


def message_text(message: object) -> str:
    """The text of a ``choices[0].message``; a tool-call answer without text is ``""``."""
    if not isinstance(message, dict):
        raise WireError(f"choices[0].message is {kind(message)}, not an object")
    content = message.get("content")
    if content is None and message.get("tool_calls"):
        return ""
    if content is None:
        raise WireError("choices[0].message has no content")
    return content_text(content, "choices[0].message.content")


def content_text(content: object, where: str) -> str:
    """Message or delta content: a string, or a list of text parts (joined); anything else is malformed."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise WireError(f"{where} is {kind(content)}, not text")
    texts = []
    for part in content:
        if not isinstance(part, dict):
            raise WireError(f"{where} has a part that is {kind(part)}, not an object")
        if part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
            raise WireError(f"{where} has a part that is not text (type {part.get('type')!r})")
        texts.append(part["text"])
    return "".join(texts)


def choices(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``choices`` as a list of objects (absent or null: none)."""
    raw = data.get("choices")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise WireError(f"choices is {kind(raw)}, not a list of objects")
    return raw


def finish_reason(choice: Mapping[str, Any]) -> str | None:
    raw = choice.get("finish_reason")
    if raw is not None and not isinstance(raw, str):
        raise WireError(f"finish_reason is {kind(raw)}, not a string")
    return raw


def delta_text(choice: Mapping[str, Any]) -> str:
    """The text of one streamed ``choices[i].delta`` (no delta, or null content: ``""``)."""
    delta = choice.get("delta")
    if delta is None:
        return ""
    if not isinstance(delta, dict):
        raise WireError(f"a stream delta is {kind(delta)}, not an object")
    content = delta.get("content")
    return "" if content is None else content_text(content, "delta.content")


def logprobs(choice: Mapping[str, Any]) -> tuple[TokenLogprob, ...] | None:
    """``choices[i].logprobs.content``: each token, its log-probability and ``top_logprobs``; None when the
    choice carries none (not asked for)."""
    raw = choice.get("logprobs")
    if raw is None:
        return None
    content = obj(raw, "logprobs").get("content") or []
    if not isinstance(content, list):
        raise WireError("logprobs.content is not a list")
    out = []
    for i, item in enumerate(content):
        where = f"logprobs.content[{i}]"
        entry = obj(item, where)
        top = entry.get("top_logprobs") or []
        if not isinstance(top, list):
            raise WireError(f"{where}.top_logprobs is not a list")
        pairs = [(obj(t, f"{where}.top_logprobs").get("token"), t.get("logprob")) for t in top]
        out.append(token_logprob(entry.get("token"), entry.get("logprob"), pairs, where))
    return tuple(out)


def thinking(choice: Mapping[str, Any]) -> bool:
    """A streamed delta of reasoning (OpenRouter's ``reasoning``, vLLM's and DeepSeek's ``reasoning_content``):
    not the answer, but a stream that sends it is alive."""
    delta = choice.get("delta")
    return isinstance(delta, dict) and any(isinstance(delta.get(k), str) and delta[k] for k in _REASONING_DELTAS)


_REASONING_DELTAS = ("reasoning", "reasoning_content")


def usage(raw: object) -> Usage:
    """``prompt_tokens`` / ``completion_tokens`` (reasoning included), the cached part of the prompt and the
    reasoning part of the completion (``*_tokens_details``) and, where the server reports it (OpenRouter), ``cost``."""
    counted = _usage(raw, "usage", "prompt_tokens", "completion_tokens", "cost")
    if not isinstance(raw, dict):
        return counted
    cached = nested_count(raw, "usage", "prompt_tokens_details", "cached_tokens")
    reasoning = nested_count(raw, "usage", "completion_tokens_details", "reasoning_tokens")
    return replace(
        counted,
        cached_input_tokens=part_of(counted.input_tokens, cached, "cached_tokens", "prompt tokens"),
        reasoning_tokens=part_of(counted.output_tokens, reasoning, "reasoning_tokens", "completion tokens"),
    )
