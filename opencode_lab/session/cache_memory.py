"""The in-process side of the response cache: a bounded LRU of checked answers, safe from any thread.

In front of the disk store it saves re-reading and re-checking an entry: each answer is
held with the signature of the file it came from (inode, modification time, size), and is
used only while that file is unchanged, so the disk stays the truth for every process
sharing the folder (a refresh, a ``clear()`` or a damaged file elsewhere is seen at the
next lookup, at the cost of one ``stat``).  An answer held without a signature (memory
mode, or a folder that refused the write) lives for the session.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

ENTRIES = 16_384
SIZE = 64 * 1024 * 1024
"""The bounds: answers held, and characters of answer text plus `OVERHEAD` per answer."""
OVERHEAD = 1024


class Held(NamedTuple):
    """A checked answer and the signature of the file it was read from or written to (None: none)."""

    answer: dict[str, Any]
    signature: tuple[int, int, int] | None


class MemoryStore:
    """Least-recently-used `Held` answers by key digest, bounded in count and in text size."""

    def __init__(self, entries: int = ENTRIES, size: int = SIZE) -> None:
        self._entries, self._size, self._used = entries, size, 0
        self._data: OrderedDict[str, Held] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Held | None:
        with self._lock:
            held = self._data.get(digest)
            if held is not None:
                self._data.move_to_end(digest)
            return held

    def put(self, digest: str, held: Held) -> None:
        with self._lock:
            self._forget(digest)
            self._data[digest] = held
            self._used += _footprint(held)
            while len(self._data) > self._entries or self._used > self._size:
                self._forget(next(iter(self._data)))

    def discard(self, digest: str) -> None:
        with self._lock:
            self._forget(digest)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._used = 0

    def entries(self) -> int:
        return len(self._data)

    def _forget(self, digest: str) -> None:
        held = self._data.pop(digest, None)
        if held is not None:
            self._used -= _footprint(held)


def _footprint(held: Held) -> int:
    return len(held.answer["text"]) + OVERHEAD
