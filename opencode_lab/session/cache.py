"""The response cache: key, policy and store, kept apart as joblib keeps hashing, validation and storage.

* the key: `canonical_key` turns a request into canonical JSON (resolved model
  ids, messages, every output-relevant parameter, the sample index) and never
  sees an API key or a volatile field; its SHA-256 names the entry;
* the policy: `CachePolicy` per call (use, refresh, off), a TTL checked by
  joblib's own validation callback (`joblib.expires_after`) against the time the
  answer was stored, and the value format (`cache_format`): versioned JSON,
  checked field by field on every read;
* the store: `DiskStore` (`cache_store`), a joblib.Memory whose registered store
  backend keeps each entry as one JSON file, with `MemoryStore`, a bounded
  in-process LRU, in front of it; ``OC_CACHE_MODE=memory`` is the LRU alone.

A hit is one lookup (the LRU, whose answer is used while one ``stat`` shows its file unchanged, else one
file read) and can be made on any thread.
An expired entry is a miss; a damaged, foreign or newer-format entry is a miss with one
warning per kind and session, never a wrong answer and never an error.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidRequestError
from ..core.secrets import get_logger
from ..core.types import ChatRequest
from .cache_format import EntryRefused, decode, encode
from .cache_memory import Held, MemoryStore

if TYPE_CHECKING:
    from .cache_store import DiskStore

log = get_logger(__name__)


class CachePolicy(enum.Enum):
    """What one call does with the cache: read and write (``use``), write only (``refresh``), or nothing."""

    USE = "use"
    REFRESH = "refresh"
    OFF = "off"

    @classmethod
    def of(cls, value: object) -> CachePolicy:
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


def canonical_key(request: ChatRequest, resolved: Sequence[str | Sequence[str]], sample: int) -> str:
    """The cache key: equal for requests that must give the same answer, different otherwise.

    *resolved* is what the model spec resolved to (so ``gpt-4o-mini`` and its full
    id share entries); the spec as typed, the API key and timings are not part of it.
    Tools are part of it, and images are by content hash (`Message.canonical`).
    """
    body = {
        "models": list(resolved),
        "messages": [m.canonical() for m in request.messages],
        "params": request.params.canonical(),
        "sample": sample,
    }
    if request.tools:  # absent when there are none, so keys made before tools existed still match
        body["tools"] = [t.canonical() for t in request.tools]
    return _CANONICAL.encode(body)


#: what ``json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` builds on every call, built once
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def key_digest(key: str) -> str:
    """The SHA-256 of a canonical key: it names the entry on disk, and the entry repeats it so that a file
    filed under another key is refused."""
    return hashlib.sha256(key.encode()).hexdigest()


class ResponseCache:
    """Complete successful responses keyed by `canonical_key`.

    ``mode``: ``file`` (a `DiskStore` under *directory* behind an in-process LRU), ``memory``
    (the LRU alone) or ``off``.  A folder that cannot be created (a user without a home) makes a
    ``memory`` cache instead, and ``fallback`` says why: a lost disk cache must not cost the
    session.  A folder that exists but cannot be written (read-only) is still read; answers
    that cannot be stored stay in the LRU for the session, and the first failed write says so.
    """

    def __init__(self, mode: str, directory: Path | None = None, ttl_ms: int | None = None) -> None:
        self.mode = mode
        self.ttl_ms = ttl_ms
        self.location = Path(directory) / "responses" if mode == "file" and directory is not None else None
        self.fallback: str | None = None
        self._front = MemoryStore()
        self._disk: DiskStore | None = None
        self._fresh = _expiry(ttl_ms)
        self._warned: set[str] = set()
        if mode == "file":
            assert self.location is not None, "file mode needs a directory"
            from .cache_store import DiskStore

            try:
                self._disk = DiskStore(self.location)
            except OSError as exc:
                self.fallback = f"the cache folder {self.location} is not writable ({exc})"
                self.mode, self.location = "memory", None
            else:
                if self._disk.exposure is not None:
                    log.warning(
                        "the cache folder %s: its entries may be answers someone else wrote (they are read as "
                        "data and cannot run code, but their answers are trusted); set OC_CACHE_DIR to a folder "
                        "only you can write",
                        self._disk.exposure,
                    )

    @property
    def enabled(self) -> bool:
        return self.mode in ("file", "memory")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for *key*, or None (miss, expired, damaged, newer format, or cache off)."""
        if not self.enabled:
            return None
        digest = key_digest(key)
        held = self._front.get(digest)
        if self._disk is not None and (held is None or held.signature is not None):
            held = self._from_disk(digest, held)
        if held is None:
            return None
        if self._fresh is not None and not self._fresh({"time": held.answer["stored_at"]}):
            self._front.discard(digest)
            return None
        return dict(held.answer)

    def _from_disk(self, digest: str, held: Held | None) -> Held | None:
        """What the disk holds for *digest*: *held* while its file is unchanged (one ``stat``), else the file
        read and checked again (one read); None for no entry or one that must not be used."""
        assert self._disk is not None
        try:
            signature = self._disk.signature(digest)
            if held is not None and held.signature == signature:
                return held
            self._front.discard(digest)
            if signature is None:
                return None
            held = Held(decode(self._disk.get(digest), digest), signature)
        except KeyError:  # removed since the stat (another process cleared the cache)
            return None
        except EntryRefused as refused:
            kind, reason = refused.kind, refused.reason
        except (OSError, ValueError, RecursionError) as exc:  # unreadable, not JSON, nested too deep
            kind, reason = "damaged", f"{type(exc).__name__}: {exc}"
        else:
            self._front.put(digest, held)
            return held
        self._once(
            kind,
            "cache entry %s %s (%s): treated as a miss, and the answer is asked again",
            self._disk.path(digest),
            "was written by a newer opencode_lab" if kind == "newer" else "is damaged or not ours",
            reason,
        )
        return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store *value* (`records.cache_value`) under *key*: on disk in file mode, and in the LRU."""
        if not self.enabled:
            return
        digest = key_digest(key)
        entry = encode(value, digest)
        try:
            answer = decode(entry, digest)  # never store what a read would refuse
        except EntryRefused as refused:
            self._once("unstorable", "an answer was not cached: %s", refused.reason)
            return
        signature = None
        if self._disk is not None:
            try:
                signature = self._disk.put(digest, entry)
            except (OSError, ValueError) as exc:  # a read-only or full folder
                self._once(
                    "write",
                    "cannot store answers in the cache folder %s (%s): they are kept in memory for this session",
                    self.location,
                    exc,
                )
        self._front.put(digest, Held(answer, signature))

    def _once(self, kind: str, message: str, *args: Any) -> None:
        """Warn the first time a problem of *kind* is met in this cache; later ones go to the debug log."""
        first = kind not in self._warned
        self._warned.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)

    def clear(self) -> None:
        self._front.clear()
        if self._disk is not None:
            self._disk.clear()

    def info(self) -> dict[str, Any]:
        """Mode, entries, bytes on disk, TTL and location."""
        size = 0
        if self.location is not None and self.location.exists():
            size = sum(p.stat().st_size for p in self.location.rglob("*") if p.is_file())
        store = self._disk or self._front
        return {
            "mode": self.mode,
            "entries": store.entries() if self.enabled else 0,
            "bytes": size,
            "ttl_ms": self.ttl_ms,
            "location": str(self.location) if self.location else None,
        }


def _expiry(ttl_ms: int | None) -> Callable[[dict[str, Any]], bool] | None:
    """joblib's own validation callback for a TTL, applied to when an answer was stored (None: no expiry)."""
    if not ttl_ms:
        return None
    import joblib

    return joblib.expires_after(seconds=ttl_ms / 1000)  # type: ignore[no-any-return]
