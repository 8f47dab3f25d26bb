"""A test server in a child process, driven through its ``/_admin`` endpoints."""

from __future__ import annotations

import httpx
import pytest

from opencode_lab.testing import AnthropicServer, FaultServer

CHAT = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


def test_the_admin_endpoints_script_read_and_reset_a_server() -> None:
    with FaultServer() as server, httpx.Client(base_url=server.root_url, trust_env=False, timeout=5.0) as admin:
        assert admin.post("/_admin/script", json={"queue": ["payment_required"]}).status_code == 200
        assert admin.post("/_admin/script", json={"queue": ["explode"]}).status_code == 400
        assert admin.post("/_admin/script", json=["not", "an", "object"]).status_code == 400
        assert admin.post("/v1/chat/completions", json=CHAT).status_code == 402
        assert [e["outcome"] for e in admin.get("/_admin/log").json()] == ["payment_required"]
        admin.post("/_admin/reset")
        assert admin.get("/_admin/log").json() == []
        assert admin.get("/_admin/nowhere").status_code == 404


def test_the_server_counts_the_connections_it_accepted() -> None:
    with FaultServer() as server:
        with httpx.Client(base_url=server.root_url, trust_env=False, timeout=5.0) as pooled:
            for _ in range(3):
                pooled.post("/v1/chat/completions", json=CHAT)
            assert pooled.get("/_admin/connections").json() == 1  # keep-alive: one connection for all four
        httpx.post(f"{server.base_url}/chat/completions", json=CHAT, trust_env=False)
        assert server.connections == 2


@pytest.mark.slow
def test_a_spawned_server_answers_is_scriptable_and_stops() -> None:
    spawned = FaultServer.spawn(models=["spawned-model"])
    try:
        with httpx.Client(base_url=spawned.base_url, trust_env=False, timeout=5.0) as c:
            assert [m["id"] for m in c.get("/models").json()["data"]] == ["spawned-model"]
            spawned.configure(queue=["server_error"])
            assert c.post("/chat/completions", json=CHAT).status_code == 500
            assert c.post("/chat/completions", json=CHAT).status_code == 200
        assert spawned.count("server_error") == 1
        assert [e["outcome"] for e in spawned.log] == ["ok", "server_error", "ok"]
    finally:
        spawned.stop()
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as c:
        c.get(f"{spawned.base_url}/models")


@pytest.mark.slow
def test_any_wire_format_spawns_and_settings_are_checked_before_they_travel() -> None:
    with AnthropicServer.spawn(queue=["overloaded"]) as spawned:
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{spawned.base_url}/v1/messages", json=body, headers=headers, trust_env=False)
        assert response.status_code == 529 and response.json()["error"]["type"] == "overloaded_error"
        with pytest.raises(ValueError, match="unknown outcomes"):
            spawned.configure(queue=["payment_required"])  # an OpenAI outcome Anthropic's wire does not play
        spawned.reset()
        assert spawned.log == []
