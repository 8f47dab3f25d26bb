"""The response cache, on joblib.Memory.

Three separable pieces, as in joblib itself:

* the key: `canonical_key` turns a request into canonical JSON (resolved model
  ids, messages, every output-relevant parameter, the sample index) and never
  sees an API key or a volatile field;
* the policy: TTL through joblib's own ``cache_validation_callback``
  (`joblib.expires_after`), refresh and off modes in the Lab;
* the store: a joblib.Memory whose files are created owner-only.

A miss is signalled by the memoized function raising `_Miss`: joblib stores
only what a call returns, so an expired or corrupt entry (which joblib reports
with a logged warning and recomputes) becomes a clean miss, never a wrong answer.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._secrets import get_logger
from .types import ChatRequest

log = get_logger(__name__)
_BACKEND = "opencode_lab_private"
MEMORY_MODE_ITEMS = 2048


class _Miss(Exception):
    """Raised inside the memoized function: there is nothing valid to return for this key."""


def _response(key: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    if value is None:
        raise _Miss(key)
    return value


def _register_private_store() -> None:
    """joblib's file store, but every folder 0700 and every file 0600: prompts and answers are private.

    Defined on first use so that ``import opencode_lab`` does not import joblib (and numpy).
    """
    from joblib._store_backends import FileSystemStoreBackend
    from joblib.memory import _STORE_BACKENDS, register_store_backend

    if _BACKEND in _STORE_BACKENDS:
        return

    class PrivateStore(FileSystemStoreBackend):
        @staticmethod
        def _open_item(f: str, mode: str) -> Any:
            if "w" in mode:
                return os.fdopen(os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), mode)
            return open(f, mode)

        def create_location(self, location: str) -> None:
            os.makedirs(location, mode=0o700, exist_ok=True)

    register_store_backend(_BACKEND, PrivateStore)


def canonical_key(request: ChatRequest, resolved: Sequence[str], sample: int) -> str:
    """The cache key: equal for requests that must give the same answer, different otherwise.

    *resolved* is what the model spec resolved to (so ``gpt-4o-mini`` and its full
    id share entries); the spec as typed, the API key and timings are not part of it.
    """
    body = {
        "models": list(resolved),
        "messages": [[m.role, m.content] for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "top_p": request.top_p,
        "stop": list(request.stop),
        "sample": sample,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class ResponseCache:
    """Stores complete successful responses keyed by `canonical_key`.

    ``mode``: ``file`` (under *directory*), ``memory`` (a private temporary
    folder removed at exit, bounded to `MEMORY_MODE_ITEMS` entries) or ``off``.
    """

    def __init__(self, mode: str, directory: Path | None = None, ttl_ms: int | None = None) -> None:
        self.mode = mode
        self.ttl_ms = ttl_ms
        self.location: Path | None = None
        self._fn: Any = None
        self._puts = 0
        if mode == "off":
            return
        if mode == "memory":
            self.location = Path(tempfile.mkdtemp(prefix="opencode_lab_cache_"))
            atexit.register(shutil.rmtree, self.location, True)
        else:
            assert directory is not None, "file mode needs a directory"
            self.location = Path(directory) / "responses"
        self.location.mkdir(parents=True, exist_ok=True, mode=0o700)
        import joblib

        _register_private_store()
        memory = joblib.Memory(self.location, backend=_BACKEND, verbose=0)
        validate = joblib.expires_after(seconds=ttl_ms / 1000) if ttl_ms else None
        self._memory = memory
        self._fn = memory.cache(_response, ignore=["value"], cache_validation_callback=validate)
        # joblib records the function's code on the first lookup and clears entries stored before that; look
        # up once now so that a `put` before any `get` is kept
        self._fn.check_call_in_cache("")
        for path in self.location.iterdir():  # joblib's own .gitignore is written with a plain open()
            if path.is_file():
                path.chmod(0o600)

    @property
    def enabled(self) -> bool:
        return self._fn is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for *key*, or None (miss, expired, corrupt, or cache off)."""
        if self._fn is None:
            return None
        try:
            value = self._fn(key)
        except _Miss:
            return None
        except Exception as exc:  # a damaged store must never break a run
            log.warning("cache read failed, treating as a miss: %s", exc)
            return None
        if not isinstance(value, dict) or "text" not in value:
            log.warning("cache entry has an unexpected shape, treating as a miss")
            return None
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self._fn is None:
            return
        try:
            self._fn.call(key, value)
        except Exception as exc:
            log.warning("cache write failed: %s", exc)
            return
        self._puts += 1
        if self.mode == "memory" and self._puts % 64 == 0:
            self._memory.reduce_size(items_limit=MEMORY_MODE_ITEMS)

    def clear(self) -> None:
        if self._fn is not None:
            self._fn.clear(warn=False)

    def info(self) -> dict[str, Any]:
        """Entries and bytes on disk, plus mode, TTL and location."""
        entries, size = 0, 0
        if self.location is not None and self.location.exists():
            for path in self.location.rglob("output.pkl"):
                entries += 1
                size += sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file())
        return {
            "mode": self.mode,
            "entries": entries,
            "bytes": size,
            "ttl_ms": self.ttl_ms,
            "location": str(self.location) if self.location else None,
        }
