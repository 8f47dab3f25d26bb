"""The session: one owned event loop for every call, strict keywords, parameters on the wire."""

from __future__ import annotations

import asyncio

import pytest

from opencode_lab import InvalidRequestError, Lab


@pytest.fixture
def lab(fault, make_lab) -> Lab:
    return make_lab(f'[providers.f]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')


def test_sync_and_async_calls_mix_in_any_order(lab: Lab, fault) -> None:
    """Clients, limiters and breakers live on the Lab's loop; a caller's own loop only awaits the result."""
    assert lab.chat("one", "f/x", cache=False).text == "echo: one"
    assert asyncio.run(lab.achat("two", "f/x", cache=False)).text == "echo: two"
    assert lab.chat("three", "f/x", cache=False).text == "echo: three"
    assert "".join(lab.stream("four", "f/x", cache=False)) == "echo: four"

    async def twice() -> list[str]:
        first = await lab.achat("five", "f/x", cache=False)
        chunks = [c async for c in lab.astream("six", "f/x", cache=False)]
        frame = await lab.acompare(["seven"], "f/x", progress=False, cache=False)
        return [first.text, "".join(chunks), frame.response[0]]

    assert asyncio.run(twice()) == ["echo: five", "echo: six", "echo: seven"]
    assert asyncio.run(twice()) == ["echo: five", "echo: six", "echo: seven"]  # a second loop, the same Lab
    assert lab.compare(["eight"], "f/x", progress=False, cache=False).response[0] == "echo: eight"
    assert [e["outcome"] for e in fault.log] == ["ok"] * 11


def test_an_async_call_from_the_labs_own_loop_runs_there(lab: Lab) -> None:
    async def inside() -> str:
        return (await lab.achat("nested", "f/x", cache=False)).text

    assert lab.block_on(inside()) == "echo: nested"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lab: lab.chat("q", "f/x", temprature=0.5), r"of chat\(\) 'temprature'; did you mean 'temperature'"),
        (lambda lab: list(lab.stream("q", "f/x", top_k=5)), r"of stream\(\) 'top_k'; did you mean 'top_p'"),
        (lambda lab: asyncio.run(lab.achat("q", "f/x", sytem="be brief")), "did you mean 'system'"),
        (lambda lab: lab.compare(["q"], "f/x", temprature=0.5), r"compare\(\) 'temprature'; did you mean 'tempe"),
        (lambda lab: lab.compare(["q"], "f/x", concurency=2), "did you mean 'concurrency'"),
    ],
    ids=["chat", "stream", "achat", "compare-parameter", "compare-option"],
)
def test_an_unknown_keyword_is_refused_with_the_closest_valid_one(lab: Lab, fault, call, message) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        call(lab)
    assert fault.log == []  # refused before anything was sent


def test_an_unknown_keyword_to_lab_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="unknown keyword of Lab\\(\\) 'provider'; did you mean 'providers'"):
        Lab(provider={})


def test_top_p_and_stop_reach_the_request_body_from_chat_and_stream(lab: Lab, fault) -> None:
    lab.chat("q", "f/x", top_p=0.5, stop=["END", "STOP"], cache=False)
    list(lab.stream("q", "f/x", top_p=0.25, stop="END", cache=False))
    assert [e["sampling"] for e in fault.log] == [
        {"top_p": 0.5, "stop": ["END", "STOP"]},
        {"top_p": 0.25, "stop": ["END"]},
    ]
