"""Google's Gemini API wire format, and `GeminiServer`, the loopback server that speaks it.

The same control as every test server (`opencode_lab.testing.server`: ``[[fault:NAME]]``
directives, ``queue``, seeded ``mix``, ``retry_after``, ``latency_s``, ``reply``, ``log``) with
the Gemini wire format, checked against the official ``google-genai`` SDK by the test suite:

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
Gemini's often do not, a ``responseJsonSchema`` request gets an object of example
values that matches it, and ``maxOutputTokens`` cuts any answer.  Outcomes beyond
`opencode_lab.testing.faults.GENERIC`: ``rate_limit`` (429 with ``RetryInfo`` and
``retry-after``), ``unavailable`` (503 "model is overloaded"), ``server_error`` (500),
``unauthorized`` (400 ``API_KEY_INVALID``, Gemini's answer to a bad key), ``unregistered``
(403, its answer to no key), ``bad_request``, ``not_found_model``, ``context_length``,
``blocked`` (the prompt is blocked: ``promptFeedback.blockReason``), ``safety``
(``finishReason: SAFETY``, no text), ``error_event`` (an ``error`` object after the first
chunk; 503 when not streaming).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from opencode_lab.testing import scripted
from opencode_lab.testing.faults import GENERIC, RetryAfter
from opencode_lab.testing.server import VendorServer
from opencode_lab.testing.transport import Request, Response, Stream
from opencode_lab.testing.wire import Call, Route, Wire, model_ids

__all__ = ["OUTCOMES", "GeminiServer", "GeminiWire"]

_UNREGISTERED = "Method doesn't allow unregistered callers. Please use API Key or other form of API consumer identity."
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
    "unregistered": (403, "PERMISSION_DENIED", _UNREGISTERED, []),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", []),
    "not_found_model": (404, "NOT_FOUND", "models/unknown is not found for API version v1beta.", []),
    "context_length": (
        400,
        "INVALID_ARGUMENT",
        "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
        [],
    ),
}
OUTCOMES: frozenset[str] = GENERIC | {"blocked", "safety", *_ERRORS}
#: the status name of each status, for refusals no outcome names
_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}
_ROUTE = re.compile(r"^/(v1\w*)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_VERSION = re.compile(r"^/(v1\w*)/")
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


def _is_result(turn: dict[str, Any]) -> bool:
    return any("functionResponse" in p for p in turn.get("parts") or [])


def _prompt(body: dict[str, Any]) -> str:
    """The last user turn's text (a turn carrying function responses is no prompt)."""
    users = [t for t in body["contents"] if t.get("role", "user") == "user" and not _is_result(t)]
    return _text(users[-1]["parts"]) if users else ""


def _declared(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The function declarations the request offers."""
    return [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]


def _images(contents: list[dict[str, Any]]) -> list[str]:
    out = []
    for turn in contents:
        for part in turn.get("parts") or []:
            if "inlineData" in part:
                out.append(scripted.image_digest(part["inlineData"]["data"]))
            elif "fileData" in part:
                out.append(part["fileData"]["fileUri"])
    return out


def _problem(body: Any) -> str | None:
    """What the real API would refuse with a 400, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list) or not body["contents"]:
        return "* GenerateContentRequest.contents: contents is not specified"
    for turn in body["contents"]:
        if not isinstance(turn, dict) or turn.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not isinstance(turn.get("parts"), list) or not turn["parts"]:
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
    config = body.get("generationConfig") or body.get("generation_config") or {}
    unknown = [k for k in config if _camel(k) not in _CONFIG]
    if unknown:
        return f"Invalid JSON payload received. Unknown name {unknown[0]!r} at 'generation_config': Cannot find field."
    return None


def _sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


class GeminiWire(Wire):
    """generateContent and streamGenerateContent, as the Gemini API (AI Studio) speaks them."""

    outcomes = OUTCOMES
    keyless = "unregistered"

    def credential(self, request: Request) -> str | None:
        keys = request.query.get("key")
        return request.headers.get("x-goog-api-key") or (keys[0] if keys else None)

    def notes(self, request: Request) -> dict[str, Any]:
        version = _VERSION.match(request.path)
        return {"version": version.group(1)} if version else {}

    def route(self, request: Request) -> Route | None:
        if request.method == "POST" and _ROUTE.match(request.path):
            return "generate"
        if request.method == "GET" and re.fullmatch(r"/v1\w*/models", request.path):
            return "models"
        return None

    def read(self, request: Request) -> Call | Response:
        route = _ROUTE.match(request.path)
        assert route is not None
        try:
            body = json.loads(request.body)
            problem = _problem(body)
        except ValueError as exc:
            problem = f"Invalid JSON payload received. {exc}"
        if problem is not None:
            return self.refusal(400, problem)
        config = body.get("generationConfig") or {}
        system = body.get("systemInstruction")
        return Call(
            body=body,
            model=unquote(route.group(2)),
            prompt=_prompt(body),
            stream=route.group(3) == "streamGenerateContent",
            sampling={**config, **({"system": _text(system["parts"])} if system else {})},
            tools=[d["name"] for d in _declared(body)],
            images=_images(body["contents"]),
        )

    def echo(self, body: dict[str, Any]) -> str:
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema and config.get("responseMimeType") == "application/json":  # structured output: a matching object
            return json.dumps(scripted.example_arguments(schema))
        last = body["contents"][-1]
        return scripted.echo(_text(last["parts"]) if _is_result(last) else _prompt(body))

    def answer(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Response:
        if outcome == "malformed":
            return Response(200, b'{"candidates": [')
        return Response(200, self._response(call, outcome, text, settings))

    def stream(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Stream:
        """Text a word per chunk, the last with the finish reason; anything else in one chunk, as Gemini sends it."""
        whole = self._response(call, outcome, text, settings)
        candidates = whole.get("candidates") or []
        parts = candidates[0]["content"]["parts"] if candidates else []
        if outcome == "malformed":
            events = [b'data: {"candidates": [\n\n']
        elif len(parts) == 1 and "text" in parts[0]:
            *init, last = scripted.pieces(parts[0]["text"])
            events = [self._chunk(whole, [{"text": p}], None) for p in init]
            events.append(self._chunk(whole, [{"text": last}], candidates[0]["finishReason"]))
            if outcome == "error_event":
                status, name, message, _ = _ERRORS[outcome]
                events = [events[0], _sse({"error": {"code": status, "message": message, "status": name}})]
        else:  # a tool call, a blocked prompt or a safety stop
            events = [_sse(whole)]
        return Stream(events, cut_at=2)

    def failure(self, outcome: str, stream: bool, retry_after: RetryAfter | None) -> Response | None:
        if outcome not in _ERRORS or (outcome == "error_event" and stream):
            return None
        status, name, message, details = _ERRORS[outcome]
        headers = {}
        if retry_after is not None and status == 429:
            delay = f"{retry_after.seconds:g}s"
            details = [*details, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
            headers["retry-after"] = retry_after.header
        return self._error(status, name, message, details, headers)

    def refusal(self, status: int, message: str) -> Response:
        return self._error(status, _NAMES.get(status, "INTERNAL"), message, [])

    def models(self, request: Request, models: list[str | dict[str, Any]]) -> Response:
        query = request.query
        size = int(query.get("pageSize", ["50"])[0])
        start = int(query.get("pageToken", ["0"])[0] or 0)
        ids = model_ids(models)
        listed = [
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
        return Response(200, {"models": listed, **({"nextPageToken": str(start + size)} if more else {})})

    def _response(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The whole ``GenerateContentResponse``: *text* cut to ``maxOutputTokens``, or a function call."""
        body = call.body
        last = body["contents"][-1]
        offered = [(d["name"], d.get("parametersJsonSchema") or d.get("parameters") or {}) for d in _declared(body)]
        tool_call = None if _is_result(last) else scripted.tool_call(call.prompt, offered)
        said, cut = scripted.truncate(text, (body.get("generationConfig") or {}).get("maxOutputTokens"))
        finish = "SAFETY" if outcome == "safety" else "MAX_TOKENS" if cut else "STOP"
        used = sum(scripted.words(_text(t["parts"])) for t in body["contents"])
        out = 0 if outcome == "safety" else scripted.words(said)
        usage = {"promptTokenCount": used, "candidatesTokenCount": out, "totalTokenCount": used + out}
        usage |= settings["usage"]
        base = {"usageMetadata": usage, "modelVersion": call.model, "responseId": f"resp-{self.next_id():06d}"}
        if outcome == "blocked":
            return {"promptFeedback": {"blockReason": "SAFETY"}, **base}
        if tool_call:
            function_call = {"name": tool_call[0], "args": scripted.arguments_object(tool_call[1])}
            parts: list[dict[str, Any]] = [{"functionCall": function_call}]
        else:
            parts = [{"text": said}] if said and outcome != "safety" else []
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        config = body.get("generationConfig") or {}
        if config.get("responseLogprobs") and said:
            candidate["logprobsResult"] = _logprobs(said, int(config.get("logprobs") or 0))
        return {"candidates": [candidate], **base}

    @staticmethod
    def _chunk(whole: dict[str, Any], parts: list[dict[str, Any]], finish: str | None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        asked = whole["candidates"][0].get("logprobsResult")
        if asked is not None and "text" in parts[0]:  # each chunk carries its own tokens' log-probabilities
            candidate["logprobsResult"] = _logprobs(parts[0]["text"], len(asked["topCandidates"][0]["candidates"]))
        usage = whole["usageMetadata"] if finish else {"promptTokenCount": whole["usageMetadata"]["promptTokenCount"]}
        chunk = {"candidates": [candidate], "usageMetadata": usage}
        chunk |= {"modelVersion": whole["modelVersion"], "responseId": whole["responseId"]}
        return _sse(chunk)

    @staticmethod
    def _error(
        status: int, name: str, message: str, details: list[dict[str, Any]], headers: Mapping[str, str] | None = None
    ) -> Response:
        error: dict[str, Any] = {"code": status, "message": message, "status": name}
        if details:
            error["details"] = details
        return Response(status, {"error": error}, headers or {})


def _logprobs(text: str, top: int) -> dict[str, Any]:
    """``logprobsResult`` for *text*, as the scripted distribution gives it."""
    entries = scripted.logprobs(text, top)
    return {
        "chosenCandidates": [{"token": t, "logProbability": lp} for t, lp, _ in entries],
        "topCandidates": [
            {"candidates": [{"token": a, "logProbability": b} for a, b in alts]} for _, _, alts in entries
        ],
    }


class GeminiServer(VendorServer):
    """In-process Gemini API on a daemon thread; see the module docstring."""

    wire_type = GeminiWire
