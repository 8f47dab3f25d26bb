"""Google's generateContent wire format: the request body out, ``GenerateContentResponse`` objects back.

Turns are ``contents`` of ``parts`` with roles ``user`` / ``model``, the system prompt is
``systemInstruction``, sampling goes in ``generationConfig`` (``temperature``, ``topP``,
``maxOutputTokens``, ``stopSequences``, ``seed``; ``responseMimeType`` and
``responseJsonSchema`` for ``schema=``), tools are ``functionDeclarations`` (with
``parametersJsonSchema``, so a declaration written for OpenAI needs no rewriting) answered
by ``functionCall`` / ``functionResponse`` parts, images are ``inlineData``, and
``usageMetadata`` holds the token counts.  A prompt the safety filter blocks is reported as a
`BadRequestError` naming the reason (another deployment would block it too); an answer it
stops has ``finish_reason="content_filter"``.  A stream has no end marker: it is complete
when a chunk has given a finish reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..core.content import Image
from ..core.errors import BadRequestError, InvalidRequestError
from ..core.logprobs import TokenLogprob
from ..core.tools import ToolCall
from ..core.types import ChatRequest, Completion, Message, ModelInfo, Usage
from .wire import (
    Reported,
    WireError,
    context_length,
    count,
    embedded_error,
    loads,
    obj,
    part_of,
    pass_options,
    token_logprob,
)
from .wire import usage as _usage

API_VERSION = "v1beta"
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def path(model: str, method: str) -> str:
    """The path of *method* (``generateContent``...) on *model* (with or without its ``models/`` prefix)."""
    return f"/{API_VERSION}/models/{quote(model.removeprefix('models/'), safe='-._~')}:{method}"


def payload(request: ChatRequest) -> dict[str, Any]:
    """The JSON body of one ``generateContent`` (the model is in the path, streaming in the method)."""
    p = request.params
    body: dict[str, Any] = {"contents": _contents(request.messages)}
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    config: dict[str, Any] = {
        "temperature": p.temperature,
        "topP": p.top_p,
        "maxOutputTokens": p.max_tokens,
        "stopSequences": list(p.stop) or None,
        "seed": p.seed,
    }
    if p.schema is not None:  # structured output, checked again on arrival
        config |= {"responseMimeType": "application/json", "responseJsonSchema": p.schema.document}
    config |= _controls(request)
    config = {k: v for k, v in config.items() if v is not None}
    configured = {_camel(k): v for k, v in p.options.items() if _camel(k) in GENERATION_CONFIG | _OWN_CONFIG}
    general = {k: v for k, v in p.options.items() if _camel(k) not in configured}
    pass_options(config, configured, _OWN_CONFIG, "generationConfig")
    if config:
        body["generationConfig"] = config
    if request.tools:  # parametersJsonSchema takes JSON Schema as OpenAI-style declarations write it
        declarations = [
            {"name": t.name, "description": t.description, "parametersJsonSchema": dict(t.parameters)}
            for t in request.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    pass_options(body, general, _OWN_BODY, "request")
    return body


#: ``generationConfig`` fields an option may set (sent camelCase; ``top_k`` is ``topK``)
GENERATION_CONFIG = frozenset(
    {"topK", "candidateCount", "presencePenalty", "frequencyPenalty", "responseModalities", "mediaResolution",
     "speechConfig", "enableEnhancedCivicAnswers", "thinkingConfig", "routingConfig", "responseSchema"}
)  # fmt: skip
_OWN_CONFIG = frozenset(
    {"temperature", "topP", "maxOutputTokens", "stopSequences", "seed", "responseMimeType", "responseJsonSchema",
     "responseLogprobs", "logprobs"}
)  # fmt: skip
_OWN_BODY = frozenset({"contents", "systemInstruction", "generationConfig", "tools"})


def _controls(request: ChatRequest) -> dict[str, Any]:
    """The thinking budget (``thinkingConfig.thinkingBudget``) and log-probabilities (``responseLogprobs``,
    ``logprobs``) as ``generationConfig`` fields."""
    p = request.params
    if p.reasoning_effort is not None:
        raise InvalidRequestError("Gemini takes a thinking budget: use reasoning_budget=, not reasoning_effort=")
    out: dict[str, Any] = {}
    if p.reasoning_budget is not None:
        out["thinkingConfig"] = {"thinkingBudget": p.reasoning_budget}
    if p.logprobs:
        out["responseLogprobs"] = True
        out["logprobs"] = p.top_logprobs
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def completion(data: Mapping[str, Any], asked: str) -> Completion:
    """The answer of a whole response.  One without candidates that gives no block reason says nothing at
    all: malformed, never an empty answer."""
    fold = AnswerFold(asked)
    text = fold.take(data)
    if not data.get("candidates"):
        raise WireError("response has no candidates and no block reason")
    return fold.completion(text, None)


class AnswerFold:
    """``GenerateContentResponse`` objects (one whole answer, or one per stream chunk) folded into one answer."""

    incomplete = "stream ended without a finish reason"
    done = False

    def __init__(self, model: str) -> None:
        self._model = model
        self._finish: str | None = None
        self._calls: list[ToolCall] = []
        self._usage = Usage()
        self._logprobs: list[TokenLogprob] | None = None
        self._thoughts = 0  # thought-summary parts seen: not the answer, but progress

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def feed(self, data: str) -> tuple[str, bool]:
        calls, thoughts = len(self._calls), self._thoughts
        text = self.take(loads(data, "stream chunk"))
        return text, bool(text) or len(self._calls) > calls or self._thoughts > thoughts

    def take(self, data: Mapping[str, Any]) -> str:
        """Take one response object; return its text (thought summaries left out)."""
        reported = embedded_error(data)
        if reported is not None:
            raise reported
        self._model = str(data.get("modelVersion") or self._model)
        if data.get("usageMetadata") is not None:
            self._usage = _tokens(obj(data["usageMetadata"], "usageMetadata"))
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = feedback["blockReason"]
            raise Reported(f"the prompt was blocked by Gemini's safety filter ({reason})", error=BadRequestError)
        candidates = data.get("candidates") or []
        if not isinstance(candidates, list):
            raise WireError("candidates is not a list")
        if not candidates:
            return ""
        first = obj(candidates[0], "candidates[0]")
        if isinstance(first.get("finishReason"), str):
            self._finish = first["finishReason"]
        if first.get("logprobsResult") is not None:
            self._logprobs = [*(self._logprobs or ()), *_logprobs(obj(first["logprobsResult"], "logprobsResult"))]
        content = first.get("content") or {}
        texts = []
        for i, raw in enumerate(obj(content, "candidates[0].content").get("parts") or []):
            where = f"candidates[0].content.parts[{i}]"
            part = obj(raw, where)
            self._thoughts += bool(part.get("thought"))
            if "text" in part and not part.get("thought"):
                if not isinstance(part["text"], str):
                    raise WireError(f"{where}.text is not text")
                texts.append(part["text"])
            elif "functionCall" in part:
                self._calls.append(_call(obj(part["functionCall"], f"{where}.functionCall"), where))
        return "".join(texts)

    def completion(self, text: str, ttft: float | None) -> Completion:
        finish = _FINISH.get(self._finish, self._finish.lower()) if self._finish else None
        if self._calls and finish == "stop":
            finish = "tool_calls"
        found = None if self._logprobs is None else tuple(self._logprobs)
        return Completion(text, self._model, finish, self._usage, ttft, tuple(self._calls), logprobs=found)


def listed(data: Mapping[str, Any]) -> list[ModelInfo]:
    """The models of one ``models`` page that can ``generateContent`` (ids without the ``models/`` prefix)."""
    items = data.get("models") or []
    if not isinstance(items, list):
        raise WireError("the model list's models is not a list")
    return [
        ModelInfo(
            id=item["name"].removeprefix("models/"),
            context_length=context_length(item.get("inputTokenLimit")),
            description=str(item.get("displayName") or ""),
        )
        for item in items
        if _generates(item)
    ]


def details(content: bytes) -> list[dict[str, Any]]:
    """The ``error.details`` objects of an error body (``RetryInfo``, ``ErrorInfo``...), or none."""
    try:
        error = loads(content, "error body").get("error")
    except WireError:
        return []
    found = error.get("details") if isinstance(error, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _tokens(meta: Mapping[str, Any]) -> Usage:
    """Prompt tokens (``cachedContentTokenCount`` of them from a cache) and output tokens; thinking tokens
    (``thoughtsTokenCount``, not in ``candidatesTokenCount``) are output, billed as such, and kept apart too."""
    counted = _usage(meta, "usageMetadata", "promptTokenCount", "candidatesTokenCount")
    thoughts = count(meta.get("thoughtsTokenCount"), "usageMetadata.thoughtsTokenCount")
    cached = count(meta.get("cachedContentTokenCount"), "usageMetadata.cachedContentTokenCount")
    output = None if counted.output_tokens is None else counted.output_tokens + (thoughts or 0)
    return Usage(
        counted.input_tokens,
        output,
        reasoning_tokens=thoughts,
        cached_input_tokens=part_of(counted.input_tokens, cached, "cachedContentTokenCount", "prompt tokens"),
    )


def _logprobs(result: Mapping[str, Any]) -> list[TokenLogprob]:
    """``logprobsResult``: ``chosenCandidates[i]`` is token i, ``topCandidates[i].candidates`` its alternatives."""
    chosen, top = result.get("chosenCandidates") or [], result.get("topCandidates") or []
    if not isinstance(chosen, list) or not isinstance(top, list):
        raise WireError("logprobsResult.chosenCandidates or topCandidates is not a list")
    out = []
    for i, raw in enumerate(chosen):
        where = f"logprobsResult.chosenCandidates[{i}]"
        entry = obj(raw, where)
        alternatives = obj(top[i], f"logprobsResult.topCandidates[{i}]").get("candidates") or [] if i < len(top) else []
        if not isinstance(alternatives, list):
            raise WireError(f"logprobsResult.topCandidates[{i}].candidates is not a list")
        pairs = [(obj(c, where).get("token"), c.get("logProbability")) for c in alternatives]
        out.append(token_logprob(entry.get("token"), entry.get("logProbability"), pairs, where))
    return out


def _call(call: Mapping[str, Any], where: str) -> ToolCall:
    if not isinstance(call.get("name"), str) or not isinstance(call.get("args"), dict | None):
        raise WireError(f"{where}.functionCall has no name or args object")
    call_id = str(call.get("id") or f"call_{uuid.uuid4().hex[:16]}")  # Gemini's ids are optional
    return ToolCall.parse(call_id, call["name"], call.get("args"))


def _contents(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The ``contents`` array: system turns leave it, tool results become ``functionResponse`` parts."""
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            response = {"id": m.tool_call_id, "name": names[m.tool_call_id], "response": _result(m.content)}
            part = {"functionResponse": response}
            if out and out[-1]["role"] == "user" and all("functionResponse" in p for p in out[-1]["parts"]):
                out[-1]["parts"].append(part)  # the results of one turn's calls travel together
            else:
                out.append({"role": "user", "parts": [part]})
            continue
        role = "model" if m.role == "assistant" else "user"
        if m.parts:
            parts = [_part(p) for p in m.parts if p]
        else:
            parts = [{"text": m.content}] if m.content or not m.tool_calls else []
        for call in m.tool_calls:
            parts.append({"functionCall": {"id": call.id, "name": call.name, "args": dict(call.arguments or {})}})
        out.append({"role": role, "parts": parts})
    return out


def _part(part: str | Image) -> dict[str, Any]:
    if isinstance(part, str):
        return {"text": part}
    if part.url:
        return {"fileData": {"mimeType": part.mime_type, "fileUri": part.url}}
    return {"inlineData": {"mimeType": part.mime_type, "data": part.base64()}}


def _result(content: str) -> dict[str, Any]:
    """A tool's result as the object ``functionResponse.response`` must be (text is wrapped)."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return {"result": content}
    return parsed if isinstance(parsed, dict) else {"result": parsed}


def _generates(item: object) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return False
    methods = item.get("supportedGenerationMethods")
    return not isinstance(methods, list) or "generateContent" in methods
