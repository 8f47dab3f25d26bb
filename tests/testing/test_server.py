"""VendorServer: the steps every wire format shares (reply, key check, fault choice, record), for each vendor."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from opencode_lab.testing import AnthropicServer, FaultServer, GeminiServer, VendorServer

KEY = "test-key-0123456789"


@dataclasses.dataclass(frozen=True)
class Vendor:
    """How a test asks one wire format for an answer and reads its text."""

    server_type: type[VendorServer]
    path: str  # the generation route, after base_url
    models_path: str  # the model list, after the server's root
    headers: dict[str, str]  # sent with every request
    key_headers: Callable[[str], dict[str, str]]
    body: Callable[[str], dict[str, Any]]
    text: Callable[[dict[str, Any]], str]
    refusals: dict[str, int]  # outcome -> the status this vendor answers it with
    stream: tuple[str, dict[str, Any]]  # the streaming route (after base_url) and what it adds to a body
    finish: bytes  # what the event that finishes a streamed answer says
    end: bytes | None  # the stream's end marker (Gemini has none)
    verify: ssl.SSLContext | bool = True  # httpx's verify: the suite's one TLS context, given by the fixture

    def ask(self, server: VendorServer, prompt: str, key: str | None = KEY) -> httpx.Response:
        headers = {**self.headers, **(self.key_headers(key) if key is not None else {})}
        return httpx.post(
            server.base_url + self.path, json=self.body(prompt), headers=headers, trust_env=False, verify=self.verify
        )

    def read_stream(self, server: VendorServer, prompt: str, read_timeout_s: float = 10.0) -> list[bytes]:
        """The raw bytes of a streamed answer as they arrive, until the body ends or breaks (then raised,
        as `Broken`, with what had arrived)."""
        path, extra = self.stream
        headers = {**self.headers, **self.key_headers(KEY)}
        timeout = httpx.Timeout(10.0, read=read_timeout_s)
        received: list[bytes] = []
        body = {**self.body(prompt), **extra}
        try:
            with httpx.stream(
                "POST",
                server.base_url + path,
                json=body,
                headers=headers,
                timeout=timeout,
                trust_env=False,
                verify=self.verify,
            ) as response:
                received.extend(response.iter_raw())
        except httpx.TransportError as exc:
            raise Broken(exc, b"".join(received)) from exc
        return received


class Broken(Exception):
    """A stream that broke (*error*) after *received*."""

    def __init__(self, error: httpx.TransportError, received: bytes) -> None:
        super().__init__(error, received)
        self.error, self.received = error, received


VENDORS = {
    "openai": Vendor(
        FaultServer,
        "/chat/completions",
        "/v1/models",
        {},
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda prompt: {"model": "m", "messages": [{"role": "user", "content": prompt}]},
        lambda answer: answer["choices"][0]["message"]["content"],
        {"unauthorized": 401},
        ("/chat/completions", {"stream": True}),
        b'"finish_reason": "stop"',
        b"data: [DONE]",
    ),
    "anthropic": Vendor(
        AnthropicServer,
        "/v1/messages",
        "/v1/models",
        {"anthropic-version": "2023-06-01"},
        lambda key: {"x-api-key": key},
        lambda prompt: {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]},
        lambda answer: answer["content"][0]["text"],
        {"unauthorized": 401},
        ("/v1/messages", {"stream": True}),
        b'"stop_reason": "end_turn"',
        b"message_stop",
    ),
    "gemini": Vendor(
        GeminiServer,
        "/v1beta/models/m:generateContent",
        "/v1beta/models",
        {},
        lambda key: {"x-goog-api-key": key},
        lambda prompt: {"contents": [{"role": "user", "parts": [{"text": prompt}]}]},
        lambda answer: answer["candidates"][0]["content"]["parts"][0]["text"],
        {"unauthorized": 400, "unregistered": 403},
        ("/v1beta/models/m:streamGenerateContent?alt=sse", {}),
        b'"finishReason": "STOP"',
        None,
    ),
}


@pytest.fixture(params=list(VENDORS))
def vendor(request: pytest.FixtureRequest, tls: ssl.SSLContext) -> Vendor:
    return dataclasses.replace(VENDORS[request.param], verify=tls)


@pytest.fixture
def server(vendor: Vendor) -> Iterator[VendorServer]:
    with vendor.server_type() as srv:
        yield srv


def test_the_default_reply_is_the_shared_echo(vendor: Vendor, server: VendorServer) -> None:
    assert vendor.text(vendor.ask(server, "hello there").json()) == "echo: hello there"


def test_a_reply_function_gives_the_answer_text_and_sees_the_body(vendor: Vendor, server: VendorServer) -> None:
    server.reply = lambda body: f"{len(body)} fields, as scripted"
    answer = vendor.ask(server, "hello")
    assert vendor.text(answer.json()) == f"{len(vendor.body('hello'))} fields, as scripted"
    assert server.requests == [vendor.body("hello")]


def test_requests_keep_every_generation_body_in_order(vendor: Vendor, server: VendorServer) -> None:
    for prompt in ("one", "two [[fault:server_error]]"):
        vendor.ask(server, prompt)
    httpx.get(server.base_url + "/v1/models", trust_env=False, verify=vendor.verify)
    assert server.requests == [vendor.body("one"), vendor.body("two [[fault:server_error]]")]


def test_a_reply_function_that_raises_is_a_500_naming_it(vendor: Vendor, server: VendorServer) -> None:
    def broken(body: dict[str, Any]) -> str:
        raise KeyError("verdict")

    server.reply = broken
    response = vendor.ask(server, "hello")
    assert response.status_code == 500 and "KeyError('verdict')" in response.text
    assert server.log[-1]["outcome"] == "reply_failed"


def test_an_unknown_directive_is_a_400_in_the_vendors_shape(vendor: Vendor, server: VendorServer) -> None:
    response = vendor.ask(server, "[[fault:explode]]")
    assert response.status_code == 400 and "explode" in response.text
    assert server.log[-1]["outcome"] == "invalid_request"


def test_with_an_api_key_set_another_key_is_unauthorized(vendor: Vendor) -> None:
    with vendor.server_type(api_key=KEY) as server:
        assert vendor.ask(server, "hi").status_code == 200
        assert vendor.ask(server, "hi", key="another-key").status_code == vendor.refusals["unauthorized"]
        assert [e["outcome"] for e in server.log] == ["ok", "unauthorized"]
        assert KEY not in str(server.log) and all(e["auth"] for e in server.log)


def test_a_request_without_a_key_meets_what_the_vendor_answers(vendor: Vendor, server: VendorServer) -> None:
    keyless = server.wire.keyless
    response = vendor.ask(server, "hi", key=None)
    assert response.status_code == (200 if keyless is None else vendor.refusals[keyless])
    assert server.log[-1]["outcome"] == (keyless or "ok") and server.log[-1]["auth"] is False


def test_the_model_list_answers_whatever_the_faults(vendor: Vendor, server: VendorServer) -> None:
    server.configure(queue=["server_error"], models=["a", "b"])
    headers = {**vendor.headers, **vendor.key_headers(KEY)}
    listed = httpx.get(server.root_url + vendor.models_path, headers=headers, trust_env=False, verify=vendor.verify)
    assert listed.status_code == 200 and "b" in listed.text
    assert vendor.ask(server, "hi").status_code == 500  # the queued fault is still there for the next answer


def test_reset_restores_settings_and_reply_and_clears_the_record(vendor: Vendor) -> None:
    with vendor.server_type(reply=lambda body: "constructed") as server:
        server.configure(queue=["server_error"])
        server.reply = lambda body: "set later"
        vendor.ask(server, "x")
        server.reset()
        assert (server.log, server.requests) == ([], [])
        assert vendor.text(vendor.ask(server, "x").json()) == "constructed"


# -- streams that give their whole answer but never end ----------------------------------------------------------


def test_a_whole_stream_has_its_finish_and_then_its_end_marker(vendor: Vendor, server: VendorServer) -> None:
    body = b"".join(vendor.read_stream(server, "one two"))
    assert vendor.finish in body
    assert vendor.end is None or body.index(vendor.finish) < body.rindex(vendor.end)


def test_cut_before_end_gives_the_finish_and_drops_the_connection_before_the_end_marker(
    vendor: Vendor, server: VendorServer
) -> None:
    server.configure(queue=["cut_before_end"])
    with pytest.raises(Broken) as info:
        vendor.read_stream(server, "one two")
    assert isinstance(info.value.error, httpx.RemoteProtocolError)  # the body was left unterminated
    assert vendor.finish in info.value.received
    assert vendor.end is None or vendor.end not in info.value.received


def test_hang_before_end_gives_the_finish_and_then_stays_open(vendor: Vendor, server: VendorServer) -> None:
    server.configure(queue=["hang_before_end"], hang_s=30.0)
    with pytest.raises(Broken) as info:
        vendor.read_stream(server, "one two", read_timeout_s=0.5)
    assert isinstance(info.value.error, httpx.ReadTimeout)
    assert vendor.finish in info.value.received
    assert vendor.end is None or vendor.end not in info.value.received


@pytest.mark.parametrize(
    ("outcome", "error"), [("cut_before_end", httpx.TransportError), ("hang_before_end", httpx.ReadTimeout)]
)
def test_on_a_plain_request_cut_before_end_resets_and_hang_before_end_hangs(
    vendor: Vendor, server: VendorServer, outcome: str, error: type[Exception]
) -> None:
    server.configure(queue=[outcome], hang_s=30.0)
    headers = {**vendor.headers, **vendor.key_headers(KEY)}
    with pytest.raises(error):
        httpx.post(
            server.base_url + vendor.path,
            json=vendor.body("hi"),
            headers=headers,
            timeout=httpx.Timeout(10.0, read=0.5),
            trust_env=False,
            verify=vendor.verify,
        )
