"""OpenRouter: attribution headers, usage accounting, catalog pricing and its disk cache."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest

from opencode_lab import ChatRequest, PaymentRequiredError
from opencode_lab.core.secrets import Secret
from opencode_lab.providers.openrouter import OpenRouterProvider

CATALOG = {
    "data": [
        {
            "id": "openai/gpt-4o-mini",
            "name": "GPT-4o mini",
            "context_length": 128000,
            "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "input_cache_read": "0.000000075",
                        "request": "0.0005"},
        },
        {"id": "meta/free-model", "context_length": 8192, "pricing": {"prompt": "0", "completion": "0"}},
    ]
}


def recording_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=CATALOG)
        return httpx.Response(
            200,
            json={
                "model": "openai/gpt-4o-mini",
                "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.0000012},
            },
        )

    return httpx.MockTransport(handle)


def provider(seen: list[httpx.Request], **kw: object) -> OpenRouterProvider:
    return OpenRouterProvider(
        "https://openrouter.test/api/v1",
        api_key=Secret("sk-or-v1-unit-0123456789"),
        transport=recording_transport(seen),
        **kw,
    )  # type: ignore[arg-type]


def test_requests_carry_attribution_headers_and_ask_for_usage() -> None:
    seen: list[httpx.Request] = []
    completion = asyncio.run(provider(seen).complete("openai/gpt-4o-mini", ChatRequest.build("hello")))
    request = seen[0]
    assert request.headers["X-Title"] == "opencode_lab"
    assert "HTTP-Referer" in request.headers
    assert request.headers["Authorization"] == "Bearer sk-or-v1-unit-0123456789"
    assert json.loads(request.content)["usage"] == {"include": True}
    assert completion.usage.cost_usd == pytest.approx(0.0000012)


def test_catalog_prices_are_per_million_tokens_and_free_models_are_tagged(tmp_path) -> None:
    models = {m.id: m for m in asyncio.run(provider([], catalog_path=tmp_path / "c.json").list_models())}
    mini = models["openai/gpt-4o-mini"]
    assert (mini.input_price_per_mtok, mini.output_price_per_mtok) == (0.15, 0.6)
    assert mini.context_length == 128000
    assert "free" in models["meta/free-model"].tags


def test_catalog_cache_read_prices_and_request_fees_are_read(tmp_path) -> None:
    models = {m.id: m for m in asyncio.run(provider([], catalog_path=tmp_path / "c.json").list_models())}
    mini, free = models["openai/gpt-4o-mini"], models["meta/free-model"]
    assert (mini.cached_input_price_per_mtok, mini.cache_write_price_per_mtok, mini.request_fee_usd) == (
        0.075, None, 0.0005,
    )
    assert (free.cached_input_price_per_mtok, free.request_fee_usd) == (None, None)


def test_the_catalog_is_read_from_disk_while_fresh(tmp_path) -> None:
    seen: list[httpx.Request] = []
    path = tmp_path / "catalog.json"
    asyncio.run(provider(seen, catalog_path=path).list_models())
    asyncio.run(provider(seen, catalog_path=path).list_models())
    assert len(seen) == 1
    stale = time.time() - 2 * 24 * 3600
    os.utime(path, (stale, stale))
    asyncio.run(provider(seen, catalog_path=path).list_models())
    assert len(seen) == 2


def test_402_means_out_of_credit(fault) -> None:
    async def go() -> None:
        p = OpenRouterProvider(fault.base_url, api_key=None)
        try:
            await p.complete("x", ChatRequest.build("hi [[fault:payment_required]]"))
        finally:
            await p.aclose()

    with pytest.raises(PaymentRequiredError):
        asyncio.run(go())


def test_catalog_numbers_that_are_not_prices_or_sizes_are_dropped_and_the_entry_kept(fault, tmp_path) -> None:
    fault.configure(
        models=[
            {"id": "inf", "context_length": float("inf"), "pricing": {"prompt": "Infinity", "completion": "NaN"}},
            {"id": "odd", "context_length": "n/a", "pricing": "free?"},
            {"id": "fine", "context_length": 8192, "pricing": {"prompt": "0.000001", "completion": "0.000002"}},
        ]
    )

    async def go():
        p = OpenRouterProvider(fault.base_url, api_key=None, catalog_path=tmp_path / "c.json")
        try:
            return await p.list_models()
        finally:
            await p.aclose()

    models = {m.id: m for m in asyncio.run(go())}
    assert [(m.context_length, m.input_price_per_mtok, m.output_price_per_mtok) for m in models.values()] == [
        (None, None, None),
        (None, None, None),
        (8192, 1.0, 2.0),
    ]
    assert "Infinity" not in (tmp_path / "c.json").read_text() and "NaN" not in (tmp_path / "c.json").read_text()


def test_configured_headers_join_the_attribution_headers() -> None:
    seen: list[httpx.Request] = []
    p = OpenRouterProvider(
        "https://openrouter.test/api/v1",
        api_key=None,
        headers={"X-Team": Secret("research-team-7")},
        transport=recording_transport(seen),
    )
    asyncio.run(p.complete("openai/gpt-4o-mini", ChatRequest.build("hello")))
    assert seen[0].headers["X-Team"] == "research-team-7" and seen[0].headers["X-Title"] == "opencode_lab"
