"""No hang: every network path gives up in bounded time, whatever the server does.

Servers under test: the fault server's ``hang`` outcome (reads the request, never
answers), a raw socket that accepts and never reads nor writes, and a raw socket
that answers 200 and then dribbles an endless body a few bytes at a time (a
per-read timeout never fires on it, so only a total deadline can end it).

Settings: ``timeout_s = 0.5``, ``max_retries = 5`` and ``deadline_s = 2``: six
attempts would take 3 s, so the deadline is what ends a request.  Bounds carry
generous slack for a loaded machine: at most ``timeout_s + 1 s`` per attempt and
``deadline_s + 2 s`` per request.  Each call runs on a watchdog thread, so a
regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opencode_lab import Lab, LabError
from opencode_lab.core.errors import error_type_of

pytestmark = pytest.mark.slow

TIMEOUT_S = 0.5
DEADLINE_S = 2.0
SLACK_S = 2.0
LAB = f"""
[lab]
timeout_s = {TIMEOUT_S}
deadline_s = {DEADLINE_S}
max_retries = 5
breaker_failures = 1000
"""


class RawServer:
    """A loopback TCP server that accepts and then stays ``silent`` or ``trickle``s an endless chunked body."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._conns: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            if self.mode == "trickle":
                threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            while not self._stopped.wait(0.1):
                conn.sendall(b"9\r\n: ping\n\n\n\r\n")  # an SSE comment: bytes keep coming, no event ever does

    def stop(self) -> None:
        self._stopped.set()
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def servers() -> Iterator[Callable[[str], RawServer]]:
    started: list[RawServer] = []

    def start(mode: str) -> RawServer:
        started.append(RawServer(mode))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=["fault-hang", "silent-socket"])
def dead_url(request, fault, servers) -> str:
    """A base URL whose server accepts the connection and never answers."""
    if request.param == "fault-hang":
        fault.configure(mix={"hang": 1.0}, seed=1, hang_s=30.0)
        return fault.base_url
    return servers("silent").base_url


def watchdog(call: Callable[[], Any], limit_s: float, on_overrun: Callable[[], None]) -> tuple[Any, float]:
    """Run *call* on a thread; return (result or raised exception, seconds).  Past *limit_s* + 4 s, unblock it
    with *on_overrun* and fail: the call hung."""
    box: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            box["value"] = call()
        except Exception as exc:  # returned to the test
            box["value"] = exc
        box["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s + 4.0)
    if thread.is_alive():
        on_overrun()
        thread.join(10.0)
        pytest.fail(f"still running {limit_s + 4.0:.0f}s after the start; the bound was {limit_s:.1f}s")
    return box["value"], box["elapsed"]


CALLS: dict[str, Callable[[Lab], Any]] = {
    "chat": lambda lab: lab.chat("anyone there?", "a/x"),
    "stream": lambda lab: "".join(lab.stream("anyone there?", "a/x")),
    "compare": lambda lab: lab.compare([f"row {i}" for i in range(4)], "a/x", concurrency=4, progress=False),
}


def lab_for(make_lab, url: str) -> Lab:
    return make_lab(f'[providers.a]\nbase_url = "{url}"\nmodels = ["x"]\n' + LAB)


def failures_of(value: Any) -> list[str]:
    """Error types of a raised error, or of every row of a compare frame."""
    if isinstance(value, BaseException):
        assert isinstance(value, LabError), f"untyped {type(value).__name__}: {value}"
        return [error_type_of(value)]
    return list(value["error_type"])


@pytest.mark.parametrize("call", list(CALLS))
def test_a_server_that_never_answers_costs_one_timeout_per_attempt_and_one_deadline(
    make_lab, dead_url: str, call: str
) -> None:
    """chat, stream and compare against a silent server: typed ``timeout`` failures, each attempt bounded by the
    timeout, the whole request by the deadline."""
    lab = lab_for(make_lab, dead_url)
    value, elapsed = watchdog(lambda: CALLS[call](lab), DEADLINE_S + SLACK_S, lambda: None)
    assert set(failures_of(value)) == {"timeout"}, value
    assert TIMEOUT_S <= elapsed <= DEADLINE_S + SLACK_S, f"{call} took {elapsed:.2f}s"
    latencies = [a["latency_s"] for a in lab.attempts().to_dict("records")]
    assert latencies and max(latencies) <= TIMEOUT_S + 1.0, latencies
    print(f"\n{call}: gave up after {elapsed:.2f}s, {len(latencies)} attempts, longest {max(latencies):.2f}s")


@pytest.mark.parametrize("call", list(CALLS))
def test_a_server_that_trickles_bytes_forever_is_cut_off_by_the_deadline(make_lab, servers, call: str) -> None:
    """A body that never ends but never stalls defeats a per-read timeout; the request deadline still ends it."""
    server = servers("trickle")
    lab = lab_for(make_lab, server.base_url)
    value, elapsed = watchdog(lambda: CALLS[call](lab), DEADLINE_S + SLACK_S, server.stop)
    assert set(failures_of(value)) <= {"timeout", "stream_interrupted", "malformed_response"}, value
    assert elapsed <= DEADLINE_S + SLACK_S, f"{call} took {elapsed:.2f}s"


def test_a_retry_after_beyond_the_deadline_fails_at_once_instead_of_sleeping(make_lab, fault) -> None:
    """A 429 asking for 60 s when 2 s remain ends the request now, as a rate-limit error."""
    fault.configure(queue=["rate_limit"], retry_after=60)
    lab = lab_for(make_lab, fault.base_url)
    value, elapsed = watchdog(lambda: lab.chat("busy?", "a/x"), DEADLINE_S, lambda: None)
    assert failures_of(value) == ["rate_limit"]
    assert elapsed < DEADLINE_S, f"waited {elapsed:.2f}s for a pause that could not end in time"
    assert fault.count() == 1


CATALOG_CALLS: dict[str, Callable[[Lab], Any]] = {
    "models": lambda lab: lab.models(),
    "unknown model resolved through the catalog": lambda lab: lab.chat("hi", "vendor/not-configured"),
    "health_check": lambda lab: lab.health_check(),
}


@pytest.mark.parametrize("mode", ["silent", "trickle"])
@pytest.mark.parametrize("call", list(CATALOG_CALLS))
def test_catalog_and_health_requests_are_bounded(make_lab, servers, monkeypatch, mode: str, call: str) -> None:
    """The OpenRouter model list (``%models``, resolving an unknown id) and ``health_check`` also give up:
    within the timeout for a silent server, within the deadline for one that trickles."""
    server = servers(mode)
    monkeypatch.setenv("OPENROUTER_API_KEY", "test-key-for-no-hang")
    monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
    lab = make_lab(LAB)
    bound = (TIMEOUT_S if mode == "silent" else DEADLINE_S) + SLACK_S
    value, elapsed = watchdog(lambda: CATALOG_CALLS[call](lab), bound, server.stop)
    if isinstance(value, BaseException):
        assert isinstance(value, LabError), f"untyped {type(value).__name__}: {value}"
    assert elapsed <= bound, f"{call} took {elapsed:.2f}s against a {mode} server"
