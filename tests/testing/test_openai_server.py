"""FaultServer: the OpenAI chat-completions wire and its faults, tested over real loopback sockets."""

from __future__ import annotations

import email.utils
import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opencode_lab.testing import FaultServer

SECRET = "sk-test-SECRET123456"


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(hang_s=5.0) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: FaultServer) -> None:
    server.reset()


@pytest.fixture
def client(server: FaultServer, tls: ssl.SSLContext) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False, verify=tls) as c:
        yield c


def chat(client: httpx.Client, content: str = "hello world", **body: Any) -> httpx.Response:
    payload = {"model": "fault-model", "messages": [{"role": "user", "content": content}], **body}
    return client.post("/chat/completions", json=payload)


def stream_lines(client: httpx.Client, content: str = "one two three", **body: Any) -> list[str]:
    payload = {"model": "fault-model", "messages": [{"role": "user", "content": content}], "stream": True, **body}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        return [line for line in response.iter_lines() if line]


# -- normal answers -----------------------------------------------------------------------------


def test_answer_echoes_last_user_message_in_openai_shape(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "hello there world"},
    ]
    response = client.post("/chat/completions", json={"model": "some/model", "messages": messages})
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "chat.completion"
    assert body["model"] == "some/model"
    assert isinstance(body["id"], str) and isinstance(body["created"], int)
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "echo: hello there world"}, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def test_answer_is_deterministic_unless_sampling_without_seed(client: httpx.Client) -> None:
    greedy = {chat(client, "hi").json()["choices"][0]["message"]["content"] for _ in range(3)}
    seeded = {chat(client, "hi", temperature=0.9, seed=4).json()["choices"][0]["message"]["content"] for _ in range(3)}
    sampled = {chat(client, "hi", temperature=0.9).json()["choices"][0]["message"]["content"] for _ in range(3)}
    assert greedy == seeded == {"echo: hi"}
    assert len(sampled) == 3
    assert all(text.startswith("echo: hi #") for text in sampled)


def test_cost_per_token_adds_cost_to_usage(server: FaultServer, client: httpx.Client) -> None:
    server.configure(cost_per_token=0.5)
    usage = chat(client, "a b").json()["usage"]
    assert usage["cost"] == pytest.approx(usage["completion_tokens"] * 0.5)


def test_models_lists_configured_ids(server: FaultServer, client: httpx.Client) -> None:
    server.configure(models=["alpha", "beta"])
    body = client.get("/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["alpha", "beta"]
    assert body["data"][0] == {"id": "alpha", "object": "model", "owned_by": "fault-server"}


def test_stream_sends_one_chunk_per_word_then_stop_usage_and_done(client: httpx.Client) -> None:
    lines = stream_lines(client, "one two three", stream_options={"include_usage": True})
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    words, stop, usage = chunks[:-2], chunks[-2], chunks[-1]
    assert words[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in words) == "echo: one two three"
    assert len(words) == 4
    assert stop["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 4


def test_stream_without_include_usage_has_no_usage_chunk(client: httpx.Client) -> None:
    chunks = [json.loads(line.removeprefix("data: ")) for line in stream_lines(client)[:-1]]
    assert all("usage" not in c for c in chunks)


def test_latency_delays_every_answer(server: FaultServer, client: httpx.Client) -> None:
    server.configure(latency_s=0.2)
    assert chat(client).elapsed.total_seconds() >= 0.2


# -- error outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("rate_limit", 429),
        ("server_error", 500),
        ("bad_gateway", 502),
        ("unavailable", 503),
        ("unauthorized", 401),
        ("payment_required", 402),
        ("bad_request", 400),
        ("not_found_model", 404),
        ("context_length", 400),
    ],
)
def test_error_outcome_returns_its_status_and_json_error(
    server: FaultServer, client: httpx.Client, outcome: str, status: int
) -> None:
    server.configure(queue=[outcome])
    response = chat(client)
    assert response.status_code == status
    assert "message" in response.json()["error"]
    assert server.log[-1]["status"] == status


def test_rate_limit_body_and_no_retry_after_by_default(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["rate_limit"])
    response = chat(client)
    assert response.json() == {"error": {"message": "rate limited", "code": 429}}
    assert "retry-after" not in response.headers


def test_rate_limit_sends_retry_after_seconds(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["rate_limit"], retry_after=2)
    assert chat(client).headers["retry-after"] == "2"


def test_rate_limit_can_send_retry_after_as_http_date(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["rate_limit"], retry_after=30, retry_after_http_date=True)
    header = chat(client).headers["retry-after"]
    assert email.utils.parsedate_to_datetime(header).tzinfo is not None


def test_not_found_model_says_model_not_found(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["not_found_model"])
    assert chat(client).json()["error"]["message"] == "model not found"


def test_context_length_names_the_limit_and_code(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["context_length"])
    error = chat(client).json()["error"]
    assert error["message"] == "This model's maximum context length is 2048 tokens"
    assert error["code"] == "context_length_exceeded"


@pytest.mark.slow
def test_hang_sends_nothing_so_the_client_times_out(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["hang"])
    with pytest.raises(httpx.ReadTimeout):
        client.post("/chat/completions", json={"model": "m", "messages": []}, timeout=0.3)
    assert server.log[-1]["outcome"] == "hang"
    assert server.log[-1]["status"] is None


def test_reset_closes_the_connection_without_a_response(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["reset"])
    with pytest.raises(httpx.TransportError):
        chat(client)
    assert chat(client).status_code == 200  # the client reconnects


def test_malformed_is_200_with_invalid_json(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["malformed"])
    response = chat(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_error_in_200_carries_an_error_object(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["error_in_200"])
    response = chat(client)
    assert response.status_code == 200
    assert response.json() == {"error": {"message": "upstream provider error", "code": 502}}


def test_empty_choices_is_200_with_no_choices(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["empty_choices"])
    response = chat(client)
    assert response.status_code == 200
    assert response.json()["choices"] == []


def test_cut_stream_stops_after_two_chunks_without_done(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["cut_stream"])
    payload = {"model": "m", "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError), client.stream("POST", "/chat/completions", json=payload) as r:
        received.extend(line for line in r.iter_lines() if line)
    assert len(received) == 2
    assert "data: [DONE]" not in received


def test_cut_stream_on_a_plain_request_resets(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["cut_stream"])
    with pytest.raises(httpx.TransportError):
        chat(client)


def test_bad_utf8_stream_carries_a_raw_ff_byte(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["bad_utf8"])
    payload = {"model": "m", "messages": [{"role": "user", "content": "a"}], "stream": True}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        raw = response.read()
    data_lines = [line for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert any(b"\xff" in line for line in data_lines)
    assert data_lines[-1] == b"data: [DONE]"


def test_bad_utf8_plain_body_is_not_utf8(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["bad_utf8"])
    response = chat(client)
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")


def test_raw_sends_the_scripted_status_headers_and_body_as_given(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["raw"], raw={"status": 302, "headers": {"Location": "http://elsewhere/"}, "body": "moved"})
    response = chat(client)
    assert (response.status_code, response.headers["location"], response.text) == (302, "http://elsewhere/", "moved")
    assert server.log[-1]["outcome"] == "raw" and server.log[-1]["status"] == 302
    assert chat(client).status_code == 200  # the connection is still good


def test_raw_repeats_the_body(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["raw"], raw={"body": "ab", "repeat": 3})
    assert chat(client).text == "ababab"


def test_raw_headers_are_sent_even_when_they_lie(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["raw"], raw={"headers": {"Content-Encoding": "gzip"}, "body": "not gzip"})
    with pytest.raises(httpx.DecodingError):
        chat(client)


@pytest.mark.slow
def test_raw_with_hang_sends_the_body_and_never_ends_it(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["raw"], raw={"body": "data: partial\n\n", "hang": True})
    payload = {"model": "m", "messages": [{"role": "user", "content": "a"}], "stream": True}
    received: list[str] = []
    with pytest.raises(httpx.ReadTimeout), client.stream("POST", "/chat/completions", json=payload, timeout=0.5) as r:
        received.extend(r.iter_lines())
    assert received[0] == "data: partial"


def test_raw_trickle_keeps_bytes_coming_after_the_body(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["raw"], raw={"body": "{", "trickle": " ", "trickle_s": 0.01})
    payload = {"model": "m", "messages": [{"role": "user", "content": "a"}]}
    pieces: list[bytes] = []
    with client.stream("POST", "/chat/completions", json=payload) as response:
        for piece in response.iter_raw():
            pieces.append(piece)
            if len(b"".join(pieces)) >= 10:
                break
    assert b"".join(pieces).startswith(b"{    ")


def test_model_entries_may_be_whole_objects(server: FaultServer, client: httpx.Client) -> None:
    server.configure(models=["plain", {"id": "rich", "context_length": 8192}])
    data = client.get("/models").json()["data"]
    assert [(m["id"], m.get("context_length"), m["object"]) for m in data] == [
        ("plain", None, "model"),
        ("rich", 8192, "model"),
    ]


def test_unknown_path_is_404_json(client: httpx.Client) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert "error" in response.json()


# -- choosing the outcome (see test_faults.py) -------------------------------------------------------------------------


def test_counted_directive_fails_k_times_then_succeeds(client: httpx.Client) -> None:
    statuses = [chat(client, "retry me [[fault:unavailable*2]]").status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


def test_queue_is_consumed_in_order_then_ok(server: FaultServer, client: httpx.Client) -> None:
    server.configure(queue=["rate_limit", "server_error", "ok", "unauthorized"])
    assert [chat(client).status_code for _ in range(5)] == [429, 500, 200, 401, 200]


# -- the log ----------------------------------------------------------------------------------------


def test_log_records_what_was_asked_and_what_happened(server: FaultServer, client: httpx.Client) -> None:
    client.post(
        "/chat/completions",
        json={"model": "m1", "messages": [{"role": "user", "content": "hey [[fault:bad_gateway]]"}], "stream": True},
        headers={"X-Request-Id": "req-7", "Authorization": f"Bearer {SECRET}"},
    )
    entry = server.log[-1]
    assert entry["path"] == "/v1/chat/completions"
    assert entry["model"] == "m1"
    assert entry["prompt"] == "hey [[fault:bad_gateway]]"
    assert entry["stream"] is True
    assert entry["outcome"] == "bad_gateway"
    assert entry["status"] == 502
    assert entry["request_id"] == "req-7"
    assert entry["auth"] is True
    assert isinstance(entry["t"], float) and isinstance(entry["wall"], float)


def test_log_never_contains_the_authorization_value(server: FaultServer, client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {SECRET}"}
    payload = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    client.post("/chat/completions", json=payload, headers=headers)
    client.get("/models", headers=headers)
    assert SECRET not in json.dumps(server.log)
    admin_log = client.get(server.base_url.removesuffix("/v1") + "/_admin/log")
    assert admin_log.status_code == 200
    assert SECRET not in admin_log.text
