"""AWS's binary event stream, read with botocore's parser: frames split anywhere, exceptions, broken frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencode_lab.providers import bedrock_wire, eventstream
from opencode_lab.providers.wire import Reported, WireError
from opencode_lab.testing.bedrock_server import event_message

EVENT = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}


def frame(text: str) -> bytes:
    return event_message(EVENT, json.dumps({"contentBlockIndex": 0, "delta": {"text": text}}).encode())


def read(*pieces: bytes) -> list[str]:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def collect() -> list[str]:
        return [e async for e in eventstream.events(chunks(), bedrock_wire.exception)]

    return asyncio.run(collect())


def test_frames_split_at_every_byte_read_as_whole_events() -> None:
    body = frame("one") + frame(" two")
    events = read(*(body[i : i + 1] for i in range(len(body))))
    assert [json.loads(e)["contentBlockDelta"]["delta"]["text"] for e in events] == ["one", " two"]


def test_an_exception_message_is_raised_as_the_error_its_type_means() -> None:
    headers = {":exception-type": "throttlingException", ":message-type": "exception"}
    with pytest.raises(Reported) as info:
        read(frame("one"), event_message(headers, b'{"message": "slow down"}'))
    assert info.value.status == 429 and "slow down" in str(info.value)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (frame("one")[:-1] + b"\x00", "ChecksumMismatch"),
        (event_message({":message-type": "event"}, b"{}"), "no :event-type"),
        (event_message({":message-type": "surprise"}, b"{}"), "'surprise'"),
    ],
)
def test_a_broken_frame_is_a_wire_error(body: bytes, says: str) -> None:
    with pytest.raises(WireError, match=says):
        read(body)


def test_a_body_that_ends_inside_a_frame_just_ends() -> None:
    assert read(frame("one") + frame("two")[:10]) == [read(frame("one"))[0]]


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=7))
def test_any_bytes_give_events_or_a_wire_error_never_another_exception(noise: bytes, at: int, bit: int) -> None:
    body = bytearray(frame("one") + frame("two"))
    if at < len(body):
        body[at] ^= 1 << bit  # one flipped bit somewhere in two good frames
    for spoiled in (bytes(body), noise, frame("one")[:12] + noise):
        with contextlib.suppress(WireError, Reported):  # anything else fails the test
            read(spoiled)
