"""The SSE reader: the ``data:`` payloads of a body, however its bytes are split, decoded strictly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from opencode_lab.providers.sse import data_lines
from opencode_lab.providers.wire import WireError

BODY = b'event: message_start\ndata: {"a": 1}\r\n\n: a comment\ndata: {"b": "\xc3\xa9"}\n\ndata:[DONE]'


async def _chunks(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def read(pieces: Iterable[bytes]) -> list[str]:
    async def main() -> list[str]:
        return [line async for line in data_lines(_chunks(pieces))]

    return asyncio.run(main())


def test_only_data_lines_are_payloads_and_the_last_needs_no_newline() -> None:
    assert read([BODY]) == ['{"a": 1}', '{"b": "é"}', "[DONE]"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_a_body_split_anywhere_reads_the_same(size: int) -> None:
    assert read(BODY[i : i + size] for i in range(0, len(BODY), size)) == read([BODY])


def test_an_invalid_utf8_byte_is_a_wire_error_not_a_replacement_character() -> None:
    with pytest.raises(WireError, match="invalid UTF-8"):
        read([b'data: {"a": "\xff"}\n'])
