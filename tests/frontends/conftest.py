"""A scriptable loopback chat server for judges: it answers what a test's ``reply`` function says."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Reply = Callable[[dict[str, Any]], str]


class JudgeServer:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 whose answer text is ``reply(request body)``.

    ``requests`` keeps every body received; usage counts words so costs can be priced.
    """

    def __init__(self) -> None:
        self.reply: Reply = lambda body: '{"score": 5, "reason": "fine"}'
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "judge-model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    reply = server.reply
                text = reply(body)
                prompt_words = sum(len(m["content"].split()) for m in body["messages"])
                usage = {"prompt_tokens": prompt_words, "completion_tokens": len(text.split())}
                if body.get("stream"):
                    self._stream(body["model"], text, usage)
                    return
                self._send(200, {
                    "id": "chatcmpl-judge", "object": "chat.completion", "model": body["model"], "usage": usage,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                })  # fmt: skip

            def _stream(self, model: str, text: str, usage: dict[str, int]) -> None:
                """The whole answer as one delta, then the finish, the usage and ``[DONE]``."""
                events = [
                    {"model": model, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                    {"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {"model": model, "choices": [], "usage": usage},
                ]
                data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def start(self) -> JudgeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer().start()
    yield server
    server.stop()


@pytest.fixture
def judge_toml(judge_server: JudgeServer) -> str:
    """TOML for a model ``judge`` on the judge server, priced ($1 / $2 per million tokens) so its cost counts."""
    return (
        f'[providers.j]\nbase_url = "{judge_server.base_url}"\n\n'
        '[models.judge]\nprovider = "j"\nupstream = "judge-model"\ninput_price = 1.0\noutput_price = 2.0\n'
    )
