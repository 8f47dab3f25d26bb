"""AWS Bedrock's Converse wire format, and `BedrockServer`, the loopback server that speaks it and checks SigV4.

The same control as every test server (`opencode_lab.testing.server`: ``[[fault:NAME]]``
directives, ``queue``, seeded ``mix``, ``retry_after``, ``latency_s``, ``reply``, ``log``) with
Bedrock's wire format, checked against ``boto3.client("bedrock-runtime")`` by the test suite:

* ``POST /model/{modelId}/converse``: ``output.message`` with ``text`` / ``toolUse`` blocks,
  ``stopReason``, ``usage`` and ``metrics``;
* ``POST /model/{modelId}/converse-stream``: AWS's binary event stream
  (``application/vnd.amazon.eventstream``, CRC-checked frames) of ``messageStart``,
  ``contentBlockStart`` / ``contentBlockDelta`` / ``contentBlockStop``, ``messageStop`` and
  ``metadata`` (the usage; the stream's end marker here);
* ``GET /foundation-models`` and ``GET /inference-profiles`` (the control plane's model lists; ids of
  the ``models`` setting with a ``us.`` / ``eu.`` / ``apac.`` / ``global.`` prefix are profiles);
* errors as AWS sends them: ``{"message"}`` with an ``x-amzn-ErrorType`` header.

Every request must carry a SigV4 signature, recomputed here with botocore from the secret of its
access key (``credentials``, access key id → secret): none is a 403
``MissingAuthenticationTokenException``, an unknown key a 403 ``UnrecognizedClientException``, and a wrong
secret or a body changed after signing a 403 ``InvalidSignatureException``, as AWS answers.  The ``api_key``
setting, when set, is the access key id expected.  botocore is needed (``opencode_lab[aws]``).

Outcomes beyond `opencode_lab.testing.faults.GENERIC`: ``rate_limit`` (429 ``ThrottlingException`` +
``retry-after``), ``model_not_ready`` (429 ``ModelNotReadyException``), ``service_unavailable`` (503),
``server_error`` (500 ``InternalServerException``), ``unauthorized`` (403 ``UnrecognizedClientException``),
``access_denied`` (403), ``bad_request`` and ``context_length`` (400 ``ValidationException``),
``not_found_model`` (404 ``ResourceNotFoundException``), ``error_event`` (a ``modelStreamErrorException``
after the first text delta; 500 when not streaming).  ``malformed`` sends a frame whose CRC is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from opencode_lab.testing import scripted
from opencode_lab.testing.faults import GENERIC, RetryAfter
from opencode_lab.testing.server import VendorServer
from opencode_lab.testing.transport import Request, Response, Stream
from opencode_lab.testing.wire import Call, Route, Wire, model_ids

__all__ = ["ACCESS_KEY", "OUTCOMES", "SECRET_KEY", "BedrockServer", "BedrockWire", "event_message"]

MEDIA_TYPE = "application/vnd.amazon.eventstream"
#: the test credentials a server accepts unless told others
ACCESS_KEY = "AKIDLOOPBACKTEST0001"
SECRET_KEY = "loopback/secret/key/for/tests/0123456789"
# outcome -> (HTTP status, error type, message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "model_not_ready": (429, "ModelNotReadyException", "Model is not ready for inference. Retry your request."),
    "service_unavailable": (503, "ServiceUnavailableException", "Service is temporarily unavailable."),
    "server_error": (500, "InternalServerException", "The server encountered an internal error."),
    "error_event": (500, "InternalServerException", "The server encountered an internal error."),
    "unauthorized": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "access_denied": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
    "missing_token": (403, "MissingAuthenticationTokenException", "Missing Authentication Token"),
    "invalid_signature": (
        403,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    ),
    "bad_request": (400, "ValidationException", "Malformed input request, please reformat your input and try again."),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "not_found_model": (404, "ResourceNotFoundException", "Could not resolve the foundation model from the model id."),
}
OUTCOMES: frozenset[str] = GENERIC | set(_ERRORS)
_KINDS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException"}
_SAMPLING = ("inferenceConfig", "system")
_PATH = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_PROFILES = re.compile(r"^(?:us|eu|apac|us-gov|global)\.")
#: what `BedrockWire.credential` says of a request whose signature is wrong (never a real access key id)
BAD_SIGNATURE = "!invalid-signature"
UNKNOWN_KEY = "!unknown-access-key"


def event_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One frame of AWS's event stream: prelude (lengths + CRC32), string headers, payload, message CRC32."""
    head = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(kind: str, data: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(data).encode())


def _exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return event_message(headers, json.dumps({"message": message}).encode())


def _text(content: Any) -> str:
    """A message's text: its ``text`` blocks (a ``toolResult``'s content included)."""
    out = []
    for block in content if isinstance(content, list) else ():
        if "text" in block:
            out.append(block["text"])
        elif "toolResult" in block:
            out.append(_text(block["toolResult"].get("content")))
    return " ".join(out)


def _is_tool_result(message: dict[str, Any]) -> bool:
    return any("toolResult" in b for b in message.get("content") or [])


def _prompt(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m["role"] == "user" and not _is_tool_result(m)]
    return _text(users[-1]["content"]) if users else ""


def _images(messages: list[dict[str, Any]]) -> list[str]:
    return [
        scripted.image_digest(block["image"]["source"]["bytes"])
        for message in messages
        for block in message["content"]
        if "image" in block
    ]


def _problem(body: Any) -> str | None:
    """What Bedrock would refuse with a 400 ``ValidationException``, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message."
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        if not isinstance(m.get("content"), list) or not m["content"]:
            return f"messages.{i}.content: must be a non-empty list of content blocks"
        if any(isinstance(b, dict) and b.get("text") == "" for b in m["content"]):
            return f"messages.{i}.content: The text field in the ContentBlock object is blank."
        if i and m["role"] == messages[i - 1]["role"]:
            return "A conversation must alternate between user and assistant roles."
    if messages[0]["role"] != "user":
        return "A conversation must start with a user message."
    return None


class BedrockWire(Wire):
    """Converse and ConverseStream; every response carries an ``x-amzn-RequestId`` header, as AWS's do."""

    outcomes = OUTCOMES
    keyless = "missing_token"

    def __init__(self) -> None:
        super().__init__()
        self.credentials: dict[str, str] = {ACCESS_KEY: SECRET_KEY}

    def credential(self, request: Request) -> str | None:
        """The access key id of a correctly signed request; `BAD_SIGNATURE` or `UNKNOWN_KEY` otherwise."""
        header = request.headers.get("authorization")
        if header is None:
            return None
        match = _AUTH.match(header)
        if match is None or "x-amz-date" not in request.headers:
            return BAD_SIGNATURE
        secret = self.credentials.get(match["key"])
        if secret is None:
            return UNKNOWN_KEY
        valid = hmac.compare_digest(_signature(request, match, secret), match["signature"])
        return match["key"] if valid else BAD_SIGNATURE

    def notes(self, request: Request) -> dict[str, Any]:
        match = _AUTH.match(request.headers.get("authorization", ""))
        return {"region": match["region"] if match else None, "token": "x-amz-security-token" in request.headers}

    def route(self, request: Request) -> Route | None:
        if request.method == "POST" and _PATH.match(request.path):
            return "generate"
        if request.method == "GET" and request.path in ("/foundation-models", "/inference-profiles"):
            return "models"
        return None

    def read(self, request: Request) -> Call | Response:
        try:
            body = json.loads(request.body)
            problem = _problem(body)
        except ValueError as exc:
            problem = f"body is not JSON: {exc}"
        if problem is not None:
            return self.refusal(400, problem)
        match = _PATH.match(request.path)
        assert match is not None
        return Call(
            body=body,
            model=unquote(match[1]),
            prompt=_prompt(body),
            stream=match[2] == "converse-stream",
            sampling={k: body[k] for k in _SAMPLING if k in body},
            tools=[t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools") or []],
            images=_images(body["messages"]),
        )

    def echo(self, body: dict[str, Any]) -> str:
        last = body["messages"][-1]
        return scripted.echo(_text(last["content"]) if _is_tool_result(last) else _prompt(body))

    def answer(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Response:
        if outcome == "malformed":
            return Response(200, b'{"output": {"message": {"content": [', self._ids_header())
        said, tool_call, stop, usage = self._reply(call, text)
        content: list[dict[str, Any]] = [{"text": said}]
        if tool_call:
            use = {"toolUseId": self._call_id(), "name": tool_call[0], "input": scripted.arguments_object(tool_call[1])}
            content = [{"toolUse": use}]
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 1},
        }
        return Response(200, body, self._ids_header())

    def stream(self, call: Call, outcome: str, text: str, settings: Mapping[str, Any]) -> Stream:
        said, tool_call, stop, usage = self._reply(call, text)
        events = [_event("messageStart", {"role": "assistant"})]
        if outcome == "malformed":
            frame = bytearray(_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}))
            frame[-1] ^= 0xFF  # the message CRC no longer matches
            events.append(bytes(frame))
        elif tool_call:
            start = {"toolUse": {"toolUseId": self._call_id(), "name": tool_call[0]}}
            events.append(_event("contentBlockStart", {"contentBlockIndex": 0, "start": start}))
            args = tool_call[1]
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {"toolUse": {"input": piece}}
                events.append(_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}))
        else:
            for piece in scripted.pieces(said):
                events.append(_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
                if outcome == "error_event":
                    events.append(_exception("modelStreamErrorException", "The model stream failed."))
                    break
        ended = outcome not in ("error_event", "malformed")
        if ended:
            events.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
            events.append(_event("messageStop", {"stopReason": stop}))
            events.append(_event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
        headers = {**self._ids_header(), "x-amzn-bedrock-content-type": "application/json"}
        return Stream(events, cut_at=2, headers=headers, end=int(ended), content_type=MEDIA_TYPE)

    def failure(self, outcome: str, stream: bool, retry_after: RetryAfter | None) -> Response | None:
        if outcome not in _ERRORS or (outcome == "error_event" and stream):
            return None
        status, kind, message = _ERRORS[outcome]
        headers = {"retry-after": retry_after.header} if retry_after is not None and status == 429 else {}
        return self._error(status, kind, message, headers)

    def refusal(self, status: int, message: str) -> Response:
        return self._error(status, _KINDS.get(status, "InternalServerException"), message)

    def models(self, request: Request, models: list[str | dict[str, Any]]) -> Response:
        ids = model_ids(models)
        if request.path == "/inference-profiles":
            profiles = [
                {
                    "inferenceProfileId": m,
                    "inferenceProfileName": f"{m} (cross-region)",
                    "inferenceProfileArn": f"arn:aws:bedrock:us-east-1:000000000000:inference-profile/{m}",
                    "models": [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{_PROFILES.sub('', m)}"}],
                    "status": "ACTIVE",
                    "type": "SYSTEM_DEFINED",
                }
                for m in ids
                if _PROFILES.match(m)
            ]
            return Response(200, {"inferenceProfileSummaries": profiles}, self._ids_header())
        summaries = [
            {
                "modelId": m,
                "modelName": m,
                "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{m}",
                "providerName": m.partition(".")[0],
                "inputModalities": ["TEXT", "IMAGE"],
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": True,
            }
            for m in ids
            if not _PROFILES.match(m)
        ]
        return Response(200, {"modelSummaries": summaries}, self._ids_header())

    def _reply(self, call: Call, text: str) -> tuple[str, tuple[str, str] | None, str, dict[str, int]]:
        """(text cut to maxTokens, tool call, stop reason, usage) of the answer."""
        body = call.body
        tool_call = None
        if not _is_tool_result(body["messages"][-1]):
            specs = [t["toolSpec"] for t in (body.get("toolConfig") or {}).get("tools") or []]
            tool_call = scripted.tool_call(call.prompt, [(s["name"], s["inputSchema"]["json"]) for s in specs])
        said, cut = scripted.truncate(text, (body.get("inferenceConfig") or {}).get("maxTokens"))
        stop = "tool_use" if tool_call else "max_tokens" if cut else "end_turn"
        used = sum(scripted.words(_text(m["content"])) for m in body["messages"])
        out = scripted.words(said)
        usage = {"inputTokens": used, "outputTokens": out, "totalTokens": used + out}
        return ("" if tool_call else said), tool_call, stop, usage

    def _error(self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
        error_type = f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        headers = {**self._ids_header(), "x-amzn-ErrorType": error_type, **(headers or {})}
        return Response(status, {"message": message}, headers)

    def _ids_header(self) -> dict[str, str]:
        return {"x-amzn-RequestId": f"00000000-0000-0000-0000-{self.next_id():012d}"}

    def _call_id(self) -> str:
        return f"tooluse_{self.next_id():06d}"


def _signature(request: Request, match: re.Match[str], secret: str) -> str:
    """The signature botocore computes for *request* with *secret*, over the headers the client says it signed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = match["signed"].split(";")
    if any(name not in request.headers for name in signed):
        return ""
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(request.body).hexdigest():
        return ""  # a body hash the client vouched for that is not this body's
    url = f"http://{request.headers.get('host', '')}{request.target}"
    aws = AWSRequest(method=request.method, url=url, data=request.body, headers={n: request.headers[n] for n in signed})
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
    return str(signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws))


class BedrockServer(VendorServer):
    """In-process Bedrock runtime on a daemon thread; see the module docstring.

    *credentials* (access key id → secret key) are the keys whose signatures it accepts.
    """

    wire_type = BedrockWire

    def __init__(self, *args: Any, credentials: Mapping[str, str] | None = None, **settings: Any) -> None:
        super().__init__(*args, **settings)
        assert isinstance(self.wire, BedrockWire)
        self.wire.credentials = dict(credentials or {ACCESS_KEY: SECRET_KEY})

    def _outcome(self, key: str | None, prompt: str) -> str:
        if key == BAD_SIGNATURE:
            return "invalid_signature"
        if key == UNKNOWN_KEY:
            return "unauthorized"
        return super()._outcome(key, prompt)
