"""The response cache: key, policy and store, kept apart as joblib keeps hashing, validation and storage.

* the key: `canonical_key` turns a request into canonical JSON (resolved model
  ids, messages, every output-relevant parameter, the sample index) and never
  sees an API key or a volatile field;
* the policy: `CachePolicy` per call (use, refresh, off) and a TTL checked by
  joblib's own ``cache_validation_callback`` (`joblib.expires_after`);
* the store: one small interface (`get`/`put`/`clear`/`info`) with two
  implementations: `DiskStore` on joblib.Memory's public API (a memoised
  identity function: calling it on a miss stores, ``MemorizedFunc.call``
  replaces, ``check_call_in_cache`` and a call read) in an owner-only folder,
  and `MemoryStore`, a bounded in-process dict.

An expired, corrupt or unreadable entry is a miss, never a wrong answer and never an error.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import InvalidRequestError
from ..core.secrets import get_logger
from ..core.types import ChatRequest

log = get_logger(__name__)
MEMORY_MODE_ITEMS = 2048


class CachePolicy(enum.Enum):
    """What one call does with the cache: read and write (``use``), write only (``refresh``), or nothing."""

    USE = "use"
    REFRESH = "refresh"
    OFF = "off"

    @classmethod
    def of(cls, value: Any) -> CachePolicy:
        """Accept the spellings users write: True, False, ``"refresh"``, ``"use"``, ``"off"`` or a policy."""
        if isinstance(value, CachePolicy):
            return value
        if value is True:
            return cls.USE
        if value is False:
            return cls.OFF
        try:
            return cls(value)
        except ValueError:
            raise InvalidRequestError(f"cache must be True, False, 'refresh' or 'off', got {value!r}") from None


def canonical_key(request: ChatRequest, resolved: Sequence[str], sample: int) -> str:
    """The cache key: equal for requests that must give the same answer, different otherwise.

    *resolved* is what the model spec resolved to (so ``gpt-4o-mini`` and its full
    id share entries); the spec as typed, the API key and timings are not part of it.
    Tools are part of it, and images are by content hash (`Message.canonical`).
    """
    body = {
        "models": list(resolved),
        "messages": [m.canonical() for m in request.messages],
        "params": request.params.payload(),
        "sample": sample,
    }
    if request.tools:  # absent when there are none, so keys made before tools existed still match
        body["tools"] = [t.canonical() for t in request.tools]
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class Store(Protocol):
    """Where cached responses live; a store never raises for a damaged entry, it misses."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def clear(self) -> None: ...

    def entries(self) -> int: ...


def _stored(key: str, value: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The memoised identity: joblib keeps what it returns for *key* (``value`` is not part of the key)."""
    return value


class DiskStore:
    """joblib.Memory in *directory*, which is created owner-only so no other user can read an entry."""

    def __init__(self, directory: Path, ttl_ms: int | None) -> None:
        import joblib

        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        self.directory = directory
        validate = joblib.expires_after(seconds=ttl_ms / 1000) if ttl_ms else None
        self._memory = joblib.Memory(directory, verbose=0)
        self._fn = self._memory.cache(_stored, ignore=["value"], cache_validation_callback=validate)

    def get(self, key: str) -> dict[str, Any] | None:
        if not self._fn.check_call_in_cache(key):
            return None
        return self._fn(key)  # an entry that vanished or broke meanwhile comes back as None: a miss

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self._fn.check_call_in_cache(key):
            self._fn.call(key, value)  # replace (a refresh): force the identity to run and store again
        else:
            self._fn(key, value)  # a miss: joblib runs the identity and stores what it returns

    def clear(self) -> None:
        self._fn.clear(warn=False)

    def entries(self) -> int:
        """Entries on disk, as the store backend lists them (``StoreBackendBase.get_items``)."""
        return len(self._memory.store_backend.get_items())


class MemoryStore:
    """A bounded, least-recently-used dict: the cache for one process (``OC_CACHE_MODE=memory``)."""

    def __init__(self, ttl_ms: int | None, items: int = MEMORY_MODE_ITEMS) -> None:
        self._ttl_s = ttl_ms / 1000 if ttl_ms else None
        self._items = items
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return None
            if self._ttl_s is not None and time.monotonic() - found[0] > self._ttl_s:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return dict(found[1])

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = (time.monotonic(), dict(value))
            self._data.move_to_end(key)
            while len(self._data) > self._items:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def entries(self) -> int:
        return len(self._data)


class ResponseCache:
    """Complete successful responses keyed by `canonical_key`.

    ``mode``: ``file`` (a `DiskStore` under *directory*), ``memory`` (a `MemoryStore`) or ``off``.
    A folder that cannot be created or written (a user without a home) makes a ``memory``
    cache instead, and ``fallback`` says why: a lost disk cache must not cost the session.
    """

    def __init__(self, mode: str, directory: Path | None = None, ttl_ms: int | None = None) -> None:
        self.mode = mode
        self.ttl_ms = ttl_ms
        self.location = Path(directory) / "responses" if mode == "file" and directory is not None else None
        self.fallback: str | None = None
        self._store: Store | None = None
        if mode == "memory":
            self._store = MemoryStore(ttl_ms)
        elif mode == "file":
            assert self.location is not None, "file mode needs a directory"
            try:
                self._store = DiskStore(self.location, ttl_ms)
            except OSError as exc:
                self.fallback = f"the cache folder {self.location} is not writable ({exc})"
                self.mode, self.location, self._store = "memory", None, MemoryStore(ttl_ms)

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for *key*, or None (miss, expired, corrupt, or cache off)."""
        if self._store is None:
            return None
        try:
            value = self._store.get(key)
        except Exception as exc:  # a damaged store must never break a run
            log.warning("cache read failed, treating as a miss: %s", exc)
            return None
        if value is None:
            return None
        if not isinstance(value, dict) or "text" not in value:
            log.warning("cache entry has an unexpected shape, treating as a miss")
            return None
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self._store is None:
            return
        try:
            self._store.put(key, value)
        except Exception as exc:
            log.warning("cache write failed: %s", exc)

    def clear(self) -> None:
        if self._store is not None:
            self._store.clear()

    def info(self) -> dict[str, Any]:
        """Mode, entries, bytes on disk, TTL and location."""
        size = 0
        if self.location is not None and self.location.exists():
            size = sum(p.stat().st_size for p in self.location.rglob("*") if p.is_file())
        return {
            "mode": self.mode,
            "entries": self._store.entries() if self._store is not None else 0,
            "bytes": size,
            "ttl_ms": self.ttl_ms,
            "location": str(self.location) if self.location else None,
        }
