"""Google Vertex AI's wire format for Gemini and Claude, and `VertexServer`, which also issues OAuth tokens.

The same control as every test server (`opencode_lab.testing.server`: ``[[fault:NAME]]``
directives, ``queue``, seeded ``mix``, ``retry_after``, ``latency_s``, ``reply``, ``log``), checked
against ``google-genai`` (``vertexai=True``) and ``anthropic.AnthropicVertex`` by the test suite:

* ``POST /{version}/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent``
  and ``:streamGenerateContent?alt=sse``: the Gemini format (`opencode_lab.testing.gemini_server`);
* ``…/publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``: the Messages format
  (`opencode_lab.testing.anthropic_server`) with ``anthropic_version`` in the body and the model in the
  path;
* ``GET /v1beta1/publishers/{google|anthropic}/models``: the Model Garden's lists (``models`` setting
  ids starting ``claude`` are Anthropic's; ``claude-x@20241022`` is listed as ``claude-x``, version
  ``20241022``, others with version ``001``);
* ``POST /token``: an OAuth 2.0 token endpoint (refresh-token and JWT-bearer grants) that issues
  ``ya29.loopback-N`` tokens living ``token_lifetime_s`` and counts them (`tokens_issued`).

Every generation request needs ``Authorization: Bearer <token>``: none is a 401 ``UNAUTHENTICATED``,
as is a token other than the ``api_key`` setting, or, when the server issued tokens, one it did
not issue or one past its lifetime.  Errors are Google's ``{"error": {"code", "message", "status"}}``.
Outcomes: the Gemini server's, plus ``overloaded`` (529, Claude's overload).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

from opencode_lab.testing.anthropic_server import AnthropicWire
from opencode_lab.testing.faults import RetryAfter
from opencode_lab.testing.gemini_server import OUTCOMES as GEMINI_OUTCOMES
from opencode_lab.testing.gemini_server import GeminiWire
from opencode_lab.testing.server import VendorServer
from opencode_lab.testing.transport import Exchange, Request, Response, Stream
from opencode_lab.testing.wire import Call, Route, Wire, model_ids

__all__ = ["ANTHROPIC_VERSION", "OUTCOMES", "VertexServer", "VertexWire"]

ANTHROPIC_VERSION = "vertex-2023-10-16"
OUTCOMES: frozenset[str] = GEMINI_OUTCOMES | {"overloaded"}
_ROUTE = re.compile(
    r"^/(?P<version>v1\w*)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/"
    r"(?P<publisher>google|anthropic)/models/(?P<model>[^/:]+):"
    r"(?P<method>generateContent|streamGenerateContent|rawPredict|streamRawPredict)$"
)
_LIST = re.compile(r"^/v1\w*/publishers/(google|anthropic)/models$")
_UNAUTHENTICATED = "Request had invalid authentication credentials. Expected OAuth 2 access token."


class VertexWire(Wire):
    """Gemini's and Anthropic's formats behind Vertex's paths, with Google's errors and bearer tokens."""

    outcomes = OUTCOMES
    keyless = "unauthorized"

    def __init__(self) -> None:
        super().__init__()
        self.gemini = GeminiWire()
        self.anthropic = AnthropicWire()

    def credential(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None

    def notes(self, request: Request) -> dict[str, Any]:
        match = _ROUTE.match(request.path)
        return {k: match[k] for k in ("version", "project", "location", "publisher")} if match else {}

    def route(self, request: Request) -> Route | None:
        if request.method == "POST" and _ROUTE.match(request.path):
            return "generate"
        if request.method == "GET" and _LIST.match(request.path):
            return "models"
        return None

    def read(self, request: Request) -> Call | Response:
        match = _ROUTE.match(request.path)
        assert match is not None
        model, method = unquote(match["model"]), match["method"]
        if match["publisher"] == "google":
            if method not in ("generateContent", "streamGenerateContent"):
                return self.refusal(400, f"{method} is not a method of Google's models")
            query = request.target.partition("?")[2]
            target = f"/{match['version']}/models/{match['model']}:{method}" + (f"?{query}" if query else "")
            return self.gemini.read(dataclasses.replace(request, target=target))
        if method not in ("rawPredict", "streamRawPredict"):
            return self.refusal(400, f"{method} is not a method of Anthropic's models")
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            return self.refusal(400, f"Invalid JSON payload received. {exc}")
        version = body.get("anthropic_version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not version:
            return self.refusal(400, f"anthropic_version: Field required (e.g. {ANTHROPIC_VERSION!r})")
        if "model" in body:
            return self.refusal(400, "model: Extra inputs are not permitted (the model is in the path)")
        if bool(body.get("stream")) != (method == "streamRawPredict"):
            return self.refusal(400, f"{method} takes stream={method == 'streamRawPredict'}")
        headers = {**request.headers, "anthropic-version": version}
        messages = json.dumps({**body, "model": model}).encode()
        return self.anthropic.read(dataclasses.replace(request, headers=headers, body=messages))

    def echo(self, body: dict[str, Any]) -> str:
        return (self.gemini if "contents" in body else self.anthropic).echo(body)

    def answer(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Response:
        return (self.gemini if "contents" in call.body else self.anthropic).answer(call, outcome, text, settings)

    def stream(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Stream:
        return (self.gemini if "contents" in call.body else self.anthropic).stream(call, outcome, text, settings)

    def failure(self, outcome: str, stream: bool, retry_after: RetryAfter | None) -> Response | None:
        if outcome == "unauthorized":
            return self.refusal(401, _UNAUTHENTICATED)
        if outcome == "overloaded":
            return self.anthropic.failure(outcome, stream, retry_after)
        return self.gemini.failure(outcome, stream, retry_after)

    def refusal(self, status: int, message: str) -> Response:
        if status == 401:
            return Response(401, {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED"}})
        return self.gemini.refusal(status, message)

    def models(self, request: Request, models: list[str | dict[str, Any]]) -> Response:
        match = _LIST.match(request.path)
        assert match is not None
        claude = match[1] != "google"  # the other publisher is Anthropic, whose model ids start with claude
        mine = [m for m in model_ids(models) if m.startswith("claude") == claude]
        listed = []
        for m in mine:  # as the Model Garden lists them: the name, and the version apart
            model, _, version = m.partition("@")
            listed.append({"name": f"publishers/{match[1]}/models/{model}", "versionId": version or "001"})
        return Response(200, {"publisherModels": listed})


class VertexServer(VendorServer):
    """In-process Vertex AI on a daemon thread, with its own token endpoint; see the module docstring.

    *token_lifetime_s* is how long the tokens it issues live (``expires_in``).
    """

    wire_type = VertexWire

    def __init__(self, *args: Any, token_lifetime_s: int = 3600, **settings: Any) -> None:
        super().__init__(*args, **settings)
        self.token_lifetime_s = token_lifetime_s
        self._issued: dict[str, float] = {}  # token -> expiry (time.monotonic())
        self._numbers = itertools.count(1)
        self._tokens_lock = threading.Lock()

    @property
    def token_url(self) -> str:
        return self.root_url + "/token"

    @property
    def tokens(self) -> list[str]:
        """The tokens issued since the last reset, in order."""
        with self._tokens_lock:
            return list(self._issued)

    @property
    def tokens_issued(self) -> int:
        return len(self.tokens)

    def reset(self) -> None:
        """Also forgets the tokens issued (their numbers start again at 1)."""
        super().reset()
        with self._tokens_lock:
            self._issued.clear()
            self._numbers = itertools.count(1)

    async def serve(self, request: Request, exchange: Exchange) -> None:
        if request.path == "/token":
            exchange.send(self._token(request))
            return
        await super().serve(request, exchange)

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grants = ("refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        if request.method != "POST" or form.get("grant_type") not in grants:
            return Response(400, {"error": "unsupported_grant_type"})
        with self._tokens_lock:
            token = f"ya29.loopback-{next(self._numbers)}"
            self._issued[token] = time.monotonic() + self.token_lifetime_s
        return Response(200, {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"})

    def _outcome(self, key: str | None, prompt: str) -> str:
        with self._tokens_lock:
            issued = bool(self._issued)
            alive = key is not None and self._issued.get(key, 0.0) > time.monotonic()
        if key is not None and issued and not alive:
            return "unauthorized"  # a token this server did not issue, or one past its lifetime
        return super()._outcome(key, prompt)
