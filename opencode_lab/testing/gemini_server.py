"""A loopback server speaking Google's Gemini API, with fault injection, for tests and notebooks.

It is a `FaultServer` (same control: ``[[fault:NAME]]`` directives, ``queue``, seeded
``mix``, ``retry_after``, ``latency_s``, ``chunk_delay_s``, ``log``, ``count``) with the
Gemini wire format, checked against the official ``google-genai`` SDK by the test suite:

* ``POST /{version}/models/{model}:generateContent``: a ``GenerateContentResponse``
  (``candidates``, ``finishReason``, ``usageMetadata``, ``modelVersion``);
* ``POST /{version}/models/{model}:streamGenerateContent?alt=sse``: one such object per
  SSE ``data:`` line, the last with the finish reason; no ``[DONE]``;
* ``GET /{version}/models``: pages of models (``pageSize``, ``pageToken``, ``nextPageToken``);
* errors as ``{"error": {"code", "message", "status", "details"}}``; a request without a
  key is a 403, an unknown ``generationConfig`` field a 400, as the real API answers.

Any API version in the path is served (the SDK defaults to ``v1``, our provider uses
``v1beta``); ``base_url`` has the SDK's form.  Answers and tool calls follow the shared
script (`opencode_lab.testing.scripted`); a ``functionCall`` carries no ``id``, as
Gemini's often do not, and a ``responseJsonSchema`` request gets an object of example
values that matches it.  Outcomes: ``ok``, ``rate_limit`` (429 with ``RetryInfo`` and
``retry-after``), ``unavailable`` (503 "model is overloaded"), ``server_error`` (500),
``unauthorized`` (400 ``API_KEY_INVALID``, Gemini's answer to a bad key),
``bad_request``, ``not_found_model``, ``context_length``, ``blocked`` (the prompt is
blocked: ``promptFeedback.blockReason``), ``safety`` (``finishReason: SAFETY``, no text),
``error_event`` (an ``error`` object after the first chunk; 503 when not streaming),
``hang``, ``reset``, ``malformed``, ``cut_stream``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from opencode_lab.testing import scripted
from opencode_lab.testing.fault_server import FaultServer

__all__ = ["OUTCOMES", "GeminiServer"]

# outcome -> (HTTP status, status name, message, details)
_ERRORS: dict[str, tuple[int, str, str, list[dict[str, Any]]]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", []),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", []),
    "error_event": (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", []),
    "server_error": (500, "INTERNAL", "An internal error has occurred.", []),
    "unauthorized": (
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    ),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", []),
    "not_found_model": (404, "NOT_FOUND", "models/unknown is not found for API version v1beta.", []),
    "context_length": (
        400,
        "INVALID_ARGUMENT",
        "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
        [],
    ),
}
OUTCOMES: frozenset[str] = frozenset({"ok", "hang", "reset", "malformed", "cut_stream", "blocked", "safety", *_ERRORS})
_UNREGISTERED = "Method doesn't allow unregistered callers. Please use API Key or other form of API consumer identity."
_ROUTE = re.compile(r"^/(v1\w*)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_CONFIG = {  # generationConfig fields the real API knows (JSON names; snake_case is accepted too)
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "responseModalities",
    "mediaResolution",
    "speechConfig",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _text(parts: list[dict[str, Any]]) -> str:
    """The text of a turn: its ``text`` parts, and a ``functionResponse``'s result."""
    out = []
    for part in parts:
        if isinstance(part.get("text"), str):
            out.append(part["text"])
        elif "functionResponse" in part:
            response = (part["functionResponse"] or {}).get("response") or {}
            out.append(str(response["result"]) if set(response) == {"result"} else json.dumps(response))
    return " ".join(out)


def _images(contents: list[dict[str, Any]]) -> list[str]:
    out = []
    for turn in contents:
        for part in turn.get("parts") or []:
            if "inlineData" in part:
                out.append(scripted.image_digest(part["inlineData"]["data"]))
            elif "fileData" in part:
                out.append(part["fileData"]["fileUri"])
    return out


def _problem(req: Any) -> str | None:
    """What the real API would refuse with a 400, or None."""
    if not isinstance(req, dict) or not isinstance(req.get("contents"), list) or not req["contents"]:
        return "* GenerateContentRequest.contents: contents is not specified"
    for turn in req["contents"]:
        if not isinstance(turn, dict) or turn.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not isinstance(turn.get("parts"), list) or not turn["parts"]:
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
    config = req.get("generationConfig") or req.get("generation_config") or {}
    unknown = [k for k in config if _camel(k) not in _CONFIG]
    if unknown:
        return f"Invalid JSON payload received. Unknown name {unknown[0]!r} at 'generation_config': Cannot find field."
    return None


class GeminiServer(FaultServer):
    """In-process Gemini API on a daemon thread; see the module docstring."""

    outcomes = OUTCOMES

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _route(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        keep: bool,
    ) -> bool:
        query = parse_qs(urlsplit(target).query)
        entry["auth"] = "x-goog-api-key" in headers or "key" in query
        path, route = entry["path"], _ROUTE.match(entry["path"])
        if method == "POST" and route:
            entry["version"] = route.group(1)
            stream = route.group(3) == "streamGenerateContent"
            return await self._generate(reader, writer, entry, unquote(route.group(2)), stream, body, keep)
        if method == "GET" and re.fullmatch(r"/v1\w*/models", path):
            entry["outcome"] = "ok"
            self._send(writer, entry, 200, self._models(query), keep)
        else:
            entry["outcome"] = "not_found"
            self._error(writer, entry, 404, "NOT_FOUND", f"no route {method} {path}", [], keep)
        return keep

    def _models(self, query: dict[str, list[str]]) -> dict[str, Any]:
        size = int(query.get("pageSize", ["50"])[0])
        start = int(query.get("pageToken", ["0"])[0] or 0)
        ids = [m if isinstance(m, str) else m["id"] for m in self._settings["models"]]
        models = [
            {
                "name": f"models/{m}",
                "displayName": m,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in ids[start : start + size]
        ]
        more = start + size < len(ids)
        return {"models": models, **({"nextPageToken": str(start + size)} if more else {})}

    async def _generate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        model: str,
        stream: bool,
        body: bytes,
        keep: bool,
    ) -> bool:
        try:
            req = json.loads(body)
            problem = _problem(req)
        except ValueError as exc:
            req, problem = {}, f"Invalid JSON payload received. {exc}"
        entry.update(model=model, stream=stream)
        if problem is not None:
            entry["outcome"] = "invalid_request"
            self._error(writer, entry, 400, "INVALID_ARGUMENT", problem, [], keep)
            return keep
        contents = req["contents"]
        users = [t for t in contents if t.get("role", "user") == "user" and not _is_result(t)]
        prompt = _text(users[-1]["parts"]) if users else ""
        config = req.get("generationConfig") or {}
        system = req.get("systemInstruction")
        entry.update(prompt=prompt, sampling={**config, **({"system": _text(system["parts"])} if system else {})})
        declared = [d for t in req.get("tools") or [] for d in t.get("functionDeclarations") or []]
        entry.update(tools=[d["name"] for d in declared], images=_images(contents))
        if not entry["auth"]:
            entry["outcome"] = "unregistered"
            self._error(writer, entry, 403, "PERMISSION_DENIED", _UNREGISTERED, [], keep)
            return keep
        outcome = entry["outcome"] = self._choose(prompt)
        await self._delay(outcome)
        if outcome in _ERRORS and not (outcome == "error_event" and stream):
            self._send_error(writer, entry, outcome, keep)
        elif outcome == "hang":
            await scripted.hang(reader, self._settings["hang_s"])
            return False
        elif outcome == "reset" or (outcome == "cut_stream" and not stream):
            scripted.reset(writer)
            return False
        elif stream:
            return await self._stream(writer, entry, outcome, model, req, prompt, declared, keep)
        elif outcome == "malformed":
            self._send(writer, entry, 200, b'{"candidates": [', keep)
        else:
            self._send(writer, entry, 200, self._response(outcome, model, req, prompt, declared), keep)
        return keep

    def _reply(
        self, outcome: str, req: dict[str, Any], prompt: str, declared: list[dict[str, Any]]
    ) -> tuple[str, tuple[str, str] | None, str, dict[str, int]]:
        """(text, tool call, finish reason, usage) of the scripted answer."""
        last = req["contents"][-1]
        offered = [(d["name"], d.get("parametersJsonSchema") or d.get("parameters") or {}) for d in declared]
        call = None if _is_result(last) else scripted.tool_call(prompt, offered)
        config = req.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        said = scripted.echo(_text(last["parts"]) if _is_result(last) else prompt)
        text, cut = scripted.truncate(said, config.get("maxOutputTokens"))
        if schema and config.get("responseMimeType") == "application/json":  # structured output: a matching object
            text, cut = json.dumps(scripted.example_arguments(schema)), False
        finish = "SAFETY" if outcome == "safety" else "MAX_TOKENS" if cut else "STOP"
        used = sum(scripted.words(_text(t["parts"])) for t in req["contents"])
        out = 0 if outcome == "safety" else scripted.words(text)
        usage = {"promptTokenCount": used, "candidatesTokenCount": out, "totalTokenCount": used + out}
        return ("" if call or outcome == "safety" else text), call, finish, usage

    def _response(
        self, outcome: str, model: str, req: dict[str, Any], prompt: str, declared: list[dict[str, Any]]
    ) -> dict[str, Any]:
        text, call, finish, usage = self._reply(outcome, req, prompt, declared)
        base = {"usageMetadata": usage, "modelVersion": model, "responseId": f"resp-{next(self._ids):06d}"}
        if outcome == "blocked":
            return {"promptFeedback": {"blockReason": "SAFETY"}, **base}
        if call:
            parts: list[dict[str, Any]] = [
                {"functionCall": {"name": call[0], "args": scripted.arguments_object(call[1])}}
            ]
        else:
            parts = [{"text": text}] if text else []
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        return {"candidates": [candidate], **base}

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        outcome: str,
        model: str,
        req: dict[str, Any],
        prompt: str,
        declared: list[dict[str, Any]],
        keep: bool,
    ) -> bool:
        whole = self._response(outcome, model, req, prompt, declared)
        candidates = whole.get("candidates") or []
        parts = candidates[0]["content"]["parts"] if candidates else []
        if outcome == "malformed":
            events = [b'data: {"candidates": [\n\n']
        elif len(parts) == 1 and "text" in parts[0]:
            words = parts[0]["text"].split(" ")
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
            events = [self._chunk(whole, [{"text": p}], None) for p in pieces[:-1]]
            events.append(self._chunk(whole, [{"text": pieces[-1]}], candidates[0]["finishReason"]))
            if outcome == "error_event":
                status, name, message, _ = _ERRORS[outcome]
                error = {"error": {"code": status, "message": message, "status": name}}
                events = [events[0], f"data: {json.dumps(error)}\n\n".encode()]
        else:  # a tool call, a blocked prompt or a safety stop: one chunk, as Gemini sends them
            events = [f"data: {json.dumps(whole)}\n\n".encode()]
        self._send(writer, entry, 200, b"", keep, "text/event-stream", {"Cache-Control": "no-cache"}, chunked=True)
        cut = 2 if outcome == "cut_stream" else None
        sent = await scripted.write_events(writer, events, cut_at=cut, delay_s=self._settings["chunk_delay_s"])
        return keep and sent

    @staticmethod
    def _chunk(whole: dict[str, Any], parts: list[dict[str, Any]], finish: str | None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = whole["usageMetadata"] if finish else {"promptTokenCount": whole["usageMetadata"]["promptTokenCount"]}
        chunk = {"candidates": [candidate], "usageMetadata": usage}
        chunk |= {"modelVersion": whole["modelVersion"], "responseId": whole["responseId"]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _send_error(self, writer: asyncio.StreamWriter, entry: dict[str, Any], outcome: str, keep: bool) -> None:
        status, name, message, details = _ERRORS[outcome]
        headers = {}
        when = self._settings["retry_after"]
        if when is not None and status == 429:
            details = [*details, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{when:g}s"}]
            headers["retry-after"] = f"{when:g}"
        self._error(writer, entry, status, name, message, details, keep, headers)

    def _error(
        self,
        writer: asyncio.StreamWriter,
        entry: dict[str, Any],
        status: int,
        name: str,
        message: str,
        details: list[dict[str, Any]],
        keep: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        error: dict[str, Any] = {"code": status, "message": message, "status": name}
        if details:
            error["details"] = details
        self._send(writer, entry, status, {"error": error}, keep, headers=headers)


def _is_result(turn: dict[str, Any]) -> bool:
    return any("functionResponse" in p for p in turn.get("parts") or [])
