"""Reading a file a user named, as hostile input: a regular file only, and never past a limit.

``stat()`` says 0 bytes for ``/dev/zero`` and for a pipe; reading either "whole" never ends
(or never starts: opening a FIFO waits for a writer).  So a file is opened without blocking,
checked on the open descriptor (what is read is what was checked), and read up to one byte
past the limit, which is enough to know it is over.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InvalidRequestError


def read_capped(path: Path, limit: int, what: str) -> bytes:
    """The bytes of *path*, a regular file of at most *limit* bytes; `InvalidRequestError` naming *what*
    (never quoting the content) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InvalidRequestError(f"{what} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidRequestError(f"{what} is not a regular file (a device, pipe or folder is not read)")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise InvalidRequestError(f"{what} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InvalidRequestError(f"{what} is over the {limit}-byte limit")
    return data
