"""The loopback HTTP/1.1 transport alone: parsing, connection handling, streams, resets and lifecycle."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest

from opencode_lab.testing.transport import Exchange, LoopbackServer, Request, Response, Stream

EVENTS = [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"]


class Mirror(LoopbackServer):
    """Answers with what it received, except ``/stall`` (``stalling`` is set then), ``/reset`` and ``/stream``
    (``?cut=1`` cuts it after one event, ``?stall=1`` stalls after two)."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port=port)
        self.stalling = threading.Event()

    async def serve(self, request: Request, exchange: Exchange) -> None:
        if request.path == "/stall":
            self.stalling.set()
            await exchange.stall(30.0)
        elif request.path == "/reset":
            exchange.reset()
        elif request.path == "/stream":
            if "stall" in request.query:
                await exchange.stream(Stream(EVENTS, cut_at=1), stop=2, stall_s=30.0)
            else:
                await exchange.stream(Stream(EVENTS, cut_at=1), stop=1 if "cut" in request.query else None)
        else:
            seen = {"method": request.method, "path": request.path, "query": request.query, "headers": request.headers}
            exchange.send(Response(200, {**seen, "body": request.body.decode()}, {"X-Mirror": "yes"}))


@pytest.fixture(scope="module")
def server() -> Iterator[Mirror]:
    with Mirror() as srv:
        yield srv


def connect(server: Mirror) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while piece := sock.recv(65536):
        data += piece
    return data


def test_a_request_is_parsed_into_method_path_query_headers_and_body(server: Mirror, tls: ssl.SSLContext) -> None:
    response = httpx.post(f"{server.root_url}/a/b?x=1&x=2", content=b"hello", headers={"X-Thing": "T"}, verify=tls)
    seen = response.json()
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == ("POST", "/a/b", {"x": ["1", "2"]}, "hello")
    assert seen["headers"]["x-thing"] == "T"
    assert response.headers["x-mirror"] == "yes" and response.headers["content-type"] == "application/json"


def test_keep_alive_serves_many_requests_on_one_connection(server: Mirror) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /three HTTP/1.1\r\nConnection: close\r\n\r\n")
        answers = read_all(sock).split(b"HTTP/1.1 200 OK")[1:]
    assert [json.loads(a.split(b"\r\n\r\n", 1)[1])["path"] for a in answers] == ["/one", "/one", "/three"]
    assert [b"Connection: keep-alive" in a for a in answers] == [True, True, False]


def test_http_1_0_closes_after_the_answer_unless_asked_to_keep_alive(server: Mirror) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        assert b"Connection: close" in read_all(sock)
    with connect(server) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + b"GET /new HTTP/1.0\r\n\r\n")
        assert read_all(sock).count(b"HTTP/1.1 200 OK") == 2


def test_a_chunked_request_body_is_refused_and_the_connection_closed(server: Mirror) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 411 Length Required") and b"send Content-Length" in answer


def test_the_request_id_is_echoed(server: Mirror, tls: ssl.SSLContext) -> None:
    assert (
        httpx.get(f"{server.root_url}/x", headers={"X-Request-Id": "req-7"}, verify=tls).headers["x-request-id"]
        == "req-7"
    )


def test_a_stream_sends_each_event_as_a_chunk_then_ends_the_body(server: Mirror, tls: ssl.SSLContext) -> None:
    with httpx.stream("GET", f"{server.root_url}/stream", verify=tls) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked" and response.headers["cache-control"] == "no-cache"
        assert response.read() == b"".join(EVENTS)


def test_a_cut_stream_stops_before_its_cut_point_and_leaves_the_body_unterminated(
    server: Mirror, tls: ssl.SSLContext
) -> None:
    received: list[bytes] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{server.root_url}/stream?cut=1", verify=tls) as response,
    ):
        received.extend(response.iter_raw())
    assert b"".join(received) == EVENTS[0]


def test_a_stalled_stream_sends_the_events_before_its_stop_and_then_nothing(
    server: Mirror, tls: ssl.SSLContext
) -> None:
    received: list[bytes] = []
    timeout = httpx.Timeout(10.0, read=0.5)
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("GET", f"{server.root_url}/stream?stall=1", timeout=timeout, verify=tls) as response,
    ):
        received.extend(response.iter_raw())
    assert b"".join(received) == b"".join(EVENTS[:2])


def test_a_reset_is_a_tcp_rst(server: Mirror) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /reset HTTP/1.1\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            read_all(sock)


def test_a_stalled_request_does_not_hold_up_others(server: Mirror, tls: ssl.SSLContext) -> None:
    with connect(server) as stalled:
        stalled.sendall(b"GET /stall HTTP/1.1\r\n\r\n")
        assert httpx.get(f"{server.root_url}/x", verify=tls).status_code == 200


def test_stop_ends_stalled_connections_and_frees_the_port(tls: ssl.SSLContext) -> None:
    mirror = Mirror().start()
    stalled = connect(mirror)
    stalled.sendall(b"GET /stall HTTP/1.1\r\n\r\n")
    assert mirror.stalling.wait(10)
    mirror.stop()
    with stalled:
        assert read_all(stalled) == b""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{mirror.root_url}/x", verify=tls)
    mirror.stop()  # a second stop does nothing


def test_start_is_idempotent_and_a_taken_port_fails_leaving_nothing_running(server: Mirror) -> None:
    assert server.start() is server
    taken = Mirror(port=server.port)
    with pytest.raises(OSError):
        taken.start()
    assert taken._thread is None
