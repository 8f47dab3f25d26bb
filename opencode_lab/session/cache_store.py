"""The response cache on disk: a joblib.Memory whose registered store backend keeps entries as JSON.

joblib's memory separates hashing, validation and storage, and lets a program register
its own storage (`joblib.register_store_backend`).  `JsonStoreBackend` is joblib's local
file-system backend with one change: an item is a JSON document (``output.json``), read
with ``json.loads``, so opening an entry cannot run code the way unpickling
``output.pkl`` can.  `DiskStore` drives that backend through its store interface
(``load_item`` / ``dump_item`` / ``get_items`` / ``Memory.clear``) with the key's digest
as the item id: a hit is one file read, with no argument hashing and no metadata file.

This module imports joblib, so it is imported when a file cache is made, never by
``import opencode_lab``.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any

import joblib
from joblib._store_backends import FileSystemStoreBackend

from ..core.secrets import get_logger

log = get_logger(__name__)
BACKEND = "opencode_lab_json"
FOLDER = "answers"
ENTRY = "output.json"
MAX_ENTRY_BYTES = 256 * 1024 * 1024
"""Anything larger is not an entry this code wrote (answers are capped far below): refused unread."""


class JsonStoreBackend(FileSystemStoreBackend):  # type: ignore[misc]  # joblib ships no type information
    """joblib's local store with JSON items: cannot execute code when read, readable by any tool."""

    def configure(self, location: str, verbose: int = 0, backend_options: dict[str, Any] | None = None) -> None:
        with warnings.catch_warnings():  # joblib warns when it cannot add a .gitignore: a read-only folder is
            warnings.simplefilter("ignore")  # still a cache to read, and the first failed write says so once
            super().configure(location, verbose=verbose, backend_options=backend_options)

    def load_item(self, call_id: list[str], verbose: int = 1, timestamp: object = None, metadata: object = None) -> Any:
        """The JSON document stored at *call_id*; `KeyError` when there is none (joblib's convention),
        `ValueError` when the file is not a regular file of sane size or not JSON."""
        path = os.path.join(self.location, *call_id, ENTRY)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)  # a planted FIFO must not block
        except FileNotFoundError:
            raise KeyError(path) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENTRY_BYTES:
                raise ValueError(f"not a regular file of at most {MAX_ENTRY_BYTES} bytes")
            data = os.read(fd, info.st_size + 1)
        finally:
            os.close(fd)
        return json.loads(data)

    def dump_item(self, call_id: list[str], item: object, verbose: int = 1) -> None:
        """Store *item* as JSON at *call_id*, atomically (a private temporary file renamed over the entry,
        so a reader sees the old entry or the new one).  Unlike joblib's backend, which warns and goes
        on, a failure raises: the cache reports an unwritable folder once, in its own words."""
        folder = os.path.join(self.location, *call_id)
        data = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        os.makedirs(folder, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".output-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temporary, os.path.join(folder, ENTRY))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def get_items(self) -> list[Any]:
        """The entries of this format (joblib lists every item folder, pickles of older versions too)."""
        return [item for item in super().get_items() if os.path.exists(os.path.join(item.path, ENTRY))]


joblib.register_store_backend(BACKEND, JsonStoreBackend)


class DiskStore:
    """Entries as JSON documents in *directory*, through a joblib.Memory with `JsonStoreBackend`.

    The folder is created owner-only.  One that exists keeps its owner's permissions minus
    any group or other access, and never gains write access: a folder made read-only (or
    on a read-only mount) stays one, and its entries are still served.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        #: why the entries may not be this user's own (None when only this user can write them)
        self.exposure = _writable_by_others([directory, directory / FOLDER])
        _owner_only(directory)
        with contextlib.suppress(OSError):  # ours, not joblib's umask-wide default; a read-only folder has none
            (directory / FOLDER).mkdir(mode=0o700, exist_ok=True)
        self._memory = joblib.Memory(directory, backend=BACKEND, verbose=0)
        self._backend = self._memory.store_backend

    def path(self, digest: str) -> Path:
        """Where the entry of *digest* lives (for messages)."""
        return Path(self._path(digest))

    def _path(self, digest: str) -> str:
        return os.path.join(self._backend.location, FOLDER, digest[:32], ENTRY)

    def signature(self, digest: str) -> tuple[int, int, int] | None:
        """(inode, modification time, size) of the entry of *digest*, None when there is none: any
        replacement (always a rename) or change of the file changes it."""
        try:
            info = os.stat(self._path(digest))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def get(self, digest: str) -> Any:
        """The document stored for *digest*; `KeyError` when there is none, `OSError` / `ValueError` when it
        cannot be read as JSON."""
        return self._backend.load_item([FOLDER, digest[:32]])

    def put(self, digest: str, document: dict[str, Any]) -> tuple[int, int, int] | None:
        """Store *document* for *digest*, replacing any entry, and return the new file's `signature`;
        raises `OSError` when the folder refuses."""
        self._backend.dump_item([FOLDER, digest[:32]], document)
        return self.signature(digest)

    def clear(self) -> None:
        self._memory.clear(warn=False)

    def entries(self) -> int:
        return len(self._backend.get_items())


def _writable_by_others(folders: list[Path]) -> str | None:
    """Why someone other than this user could have written entries in *folders*, or None.

    Entries cannot run code, but their answers are trusted: a folder another user owns, or
    one any group member or user may write to, can hold answers planted by someone else.
    """
    for folder in folders:
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue
        if info.st_uid != os.geteuid():
            return f"{folder} belongs to another user (uid {info.st_uid})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{folder} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _owner_only(directory: Path) -> None:
    """Take group and other access away from *directory* if it is ours: an entry is a prompt and its answer."""
    info = directory.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        with contextlib.suppress(OSError):  # a read-only mount: the folder is still read
            directory.chmod(stat.S_IMODE(info.st_mode) & 0o700)
