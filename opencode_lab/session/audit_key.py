"""The audit key: what signs the run log's checkpoints and keys privacy mode's hashes.

It is kept outside the run log, so someone who can edit the log cannot forge a
checkpoint: ``OC_AUDIT_KEY`` (any text), else a key file (``OC_AUDIT_KEY_FILE``,
by default ``audit.key`` in the per-user config folder).  The file is created on
first use with 32 random bytes, owner-only (0o600), and a note on stderr says
where it is; a key file others can read or write is refused, since whoever
holds the key can rewrite history.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.secrets import Secret


@dataclass(frozen=True)
class AuditKey:
    """The key's bytes (never shown) and ``key_id``, a short fingerprint a checkpoint records to say which key
    signed it."""

    secret: bytes
    key_id: str

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    @classmethod
    def of(cls, material: bytes) -> AuditKey:
        return cls(material, hashlib.sha256(b"opencode_lab audit key id\0" + material).hexdigest()[:16])


def load_key(given: Secret | None, path: Path, *, create: bool = True) -> AuditKey:
    """The key from *given* (``OC_AUDIT_KEY``), else from the file at *path*, created when *create* allows it.

    `ConfigError` when the file is missing (and may not be made), unreadable, empty, or open to other users.
    """
    if given is not None:
        return AuditKey.of(given.reveal().encode())
    try:
        return AuditKey.of(_read(path))
    except FileNotFoundError:
        if not create:
            raise ConfigError(
                f"no audit key: {path} does not exist and OC_AUDIT_KEY is not set; the checkpoints cannot be checked "
                "without the key that signed them"
            ) from None
    return AuditKey.of(_create(path))


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"the audit key file {path} cannot be read ({exc}): set OC_AUDIT_KEY_FILE") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the audit key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"the audit key file {path} can be read or written by other users (mode {stat.filemode(info.st_mode)}):"
                f" whoever holds it can rewrite the audit trail; run chmod 600 {path}"
            )
        material = file.read(4096).strip()
    if not material:
        raise ConfigError(f"the audit key file {path} is empty: delete it (a new key is made) or restore it")
    return material


def _create(path: Path) -> bytes:
    material = secrets.token_hex(32).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the audit key file {path} ({exc}): set OC_AUDIT_KEY_FILE or OC_AUDIT_KEY"
        ) from None
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask said
        file.write(material + b"\n")
    print(
        f"opencode_lab: created the audit key {path} (owner-only). It signs the run log's checkpoints; keep a copy "
        "apart from the run log, since without it the trail cannot be checked.",
        file=sys.stderr,
    )
    return material
