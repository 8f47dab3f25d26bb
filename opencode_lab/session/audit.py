"""The audit trail: a hash chain over every record of the run log, with keyed checkpoints.

Every run, results row and attempt record the run log writes gets an *entry* in the
``audit`` table, in the same ``BEGIN IMMEDIATE`` transaction: its kind and row id,
when, who (user, host, process), what (package version, configuration hash), the
SHA-256 *digest* of the row as stored (every column, generically, so a column added
later is covered with no change here), and a *link*: the SHA-256 of the previous
entry's link and this entry.  The previous link is read inside the transaction, so
several writer processes extend one chain.  Each transaction ends with a
*checkpoint*: the head's position and link, signed with HMAC-SHA256 under the audit
key (`audit_key`), which is kept outside the run log.

An upserted results row gets a new entry each time it changes; its latest entry
must match the row.  Who edits, inserts, deletes or reorders records without the
key breaks a digest, a link or a checkpoint (`audit_check` finds which); who holds
the key can rewrite history, hence the exportable checkpoints (see the README).

Chaining runs in the run log's batched writer, never on a call's path.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from typing import Any

from ..core.errors import ConfigError
from .audit_key import AuditKey

#: the link before the first entry
GENESIS = "0" * 64
#: entry kind -> (table, the column that identifies its row)
TABLES: dict[str, tuple[str, str]] = {
    "run": ("runs", "rowid"),
    "result": ("results", "seq"),
    "attempt": ("attempts", "seq"),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    pos INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref INTEGER, at REAL NOT NULL,
    who TEXT NOT NULL, what TEXT NOT NULL, digest TEXT NOT NULL, link TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ref ON audit (kind, ref);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    pos INTEGER PRIMARY KEY, link TEXT NOT NULL, at REAL NOT NULL, key_id TEXT NOT NULL, mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_pruned (
    upto INTEGER PRIMARY KEY, link TEXT NOT NULL, before REAL NOT NULL, at REAL NOT NULL, counts TEXT NOT NULL,
    key_id TEXT NOT NULL, mac TEXT NOT NULL
);
"""


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False)
#: the same bytes for a dict whose keys are already in sorted order, without sorting them again
_IN_ORDER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def canonical(value: Any) -> bytes:
    """The one byte form that is hashed: sorted-key compact JSON, UTF-8 (NaN is never stored: it is NULL; a
    BLOB, which none of our columns holds, is its hex)."""
    try:
        return _ENCODER.encode(value).encode()
    except TypeError:  # the rare slow path: json's `default` hook costs every value, so it is not the first try
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_bytes).encode()


def _bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot hash a {type(value).__name__}")


def row_digest(row: Mapping[str, Any], ref_column: str) -> str:
    """The digest of a stored row: every column but its row id, NULLs left out (so a column added by a later
    format, NULL in old rows, leaves old digests valid)."""
    return _digest({k: row[k] for k in sorted(row) if row[k] is not None and k != ref_column})


def _digest(content: dict[str, Any]) -> str:
    """The SHA-256 of *content*'s `canonical` bytes, its keys already in sorted order (so not sorted again)."""
    try:
        text = _IN_ORDER.encode(content).encode()
    except TypeError:  # a BLOB: `canonical`'s slow path
        text = canonical(content)
    return hashlib.sha256(text).hexdigest()


def entry_link(prev: str, entry: Sequence[Any]) -> str:
    """The link of *entry* = (pos, kind, ref, at, who, what, digest) after the link *prev*: the SHA-256 of *prev*
    and the fields, one a line (no field holds a newline: who and what are compact JSON; a time is its
    shortest repr, as JSON would write it)."""
    return hashlib.sha256("\n".join(map(str, (prev, *entry))).encode()).hexdigest()


def mac(key: AuditKey, *fields: Any) -> str:
    """HMAC-SHA256 under the audit key of a checkpoint's or a prune's fields."""
    return hmac.new(key.secret, canonical(list(fields)), hashlib.sha256).hexdigest()


def digests(con: sqlite3.Connection, kind: str, where: str = "1", params: Sequence[Any] = ()) -> list[tuple[int, str]]:
    """(row id, digest) of the rows of *kind* matching *where*, in row-id order, read as stored (so the digest is
    of what SQLite kept, after its type conversions)."""
    table, column = TABLES[kind]
    cursor = con.cursor()
    cursor.row_factory = None  # plain tuples: this reads every row a write or a verification covers
    cursor.execute(f"SELECT {column}, * FROM {table} WHERE {where} ORDER BY {column}", params)
    names = [d[0] for d in cursor.description]
    # `row_digest` of each row, with its columns put in sorted order once for the whole query (+1: the ref)
    order = sorted((name, i) for i, name in enumerate(names) if i and name != column)
    return [(values[0], _digest({name: values[i] for name, i in order if values[i] is not None})) for values in cursor]


@dataclass
class Auditor:
    """Chains records inside the run log's write transactions; *key* is asked for once, at the first write."""

    key_source: Callable[[], AuditKey]
    config_hash: str

    @cached_property
    def key(self) -> AuditKey:
        return self.key_source()

    @cached_property
    def what(self) -> str:
        return json.dumps({"version": package_version(), "config": self.config_hash}, sort_keys=True)

    def chain(self, con: sqlite3.Connection, kind: str, where: str, params: Sequence[Any] = ()) -> None:
        """Append an entry for each row of *kind* matching *where* and sign the new head, in the caller's
        transaction (nothing when no row matches)."""
        found = digests(con, kind, where, params)
        if found:
            self.append(con, [(kind, ref, digest) for ref, digest in found])

    def guard(self, con: sqlite3.Connection, kind: str) -> None:
        """Refuse to add rows of *kind* when its last chained row is gone: SQLite would give the next row that
        row's id, and its new entry would hide the deletion."""
        table, column = TABLES[kind]
        chained = con.execute("SELECT MAX(ref) FROM audit WHERE kind = ?", (kind,)).fetchone()[0]
        if (
            chained is not None
            and con.execute(f"SELECT 1 FROM {table} WHERE {column} >= ?", (chained,)).fetchone() is None
        ):
            raise ConfigError(
                f"{table} row {chained} of this run log was chained but is gone: nothing more is written, so the "
                "gap is not papered over; run `opencode-lab audit verify`, keep a copy of the file, then prune the "
                "log or set OC_RUNLOG to a new file"
            )

    def append(self, con: sqlite3.Connection, entries: Sequence[tuple[str, int | None, str]]) -> None:
        """Append (kind, ref, digest) entries after the current head, then a signed checkpoint of the new head."""
        key, who = self.key, _who()  # per write: a forked child is another process
        pos, link = head(con)
        at = time.time()
        rows = []
        for kind, ref, digest in entries:
            pos += 1
            entry = (pos, kind, ref, at, who, self.what, digest)
            link = entry_link(link, entry)
            rows.append((*entry, link))
        con.executemany(
            "INSERT INTO audit (pos, kind, ref, at, who, what, digest, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        con.execute(
            "INSERT INTO audit_checkpoints (pos, link, at, key_id, mac) VALUES (?, ?, ?, ?, ?)",
            (pos, link, at, key.key_id, mac(key, "checkpoint", pos, link, at, key.key_id)),
        )


def head(con: sqlite3.Connection) -> tuple[int, str]:
    """The position and link of the chain's last entry (after a prune, its anchor when nothing follows it)."""
    row = con.execute("SELECT pos, link FROM audit ORDER BY pos DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    anchor = con.execute("SELECT upto, link FROM audit_pruned ORDER BY upto DESC LIMIT 1").fetchone()
    return (int(anchor[0]), str(anchor[1])) if anchor is not None else (0, GENESIS)


def config_hash(settings: object) -> str:
    """A fingerprint of the configuration: its repr, in which every key and credential is masked."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def package_version() -> str:
    try:
        return metadata.version("opencode-lab")
    except metadata.PackageNotFoundError:
        return "unknown"


def _who() -> str:
    return json.dumps({"user": _user(), "host": socket.gethostname(), "pid": os.getpid()}, sort_keys=True)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"
