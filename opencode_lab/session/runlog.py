"""The run log: every results row and attempt record of an experiment, in one SQLite file.

Experiments outlive the kernel: rows are committed in small transactions as they
arrive, so a restart, a crash or a SIGKILL loses at most the batch being written,
and `RunLog.completed` lets `compare()` resume a named run without paying twice.

Storage choices:

- WAL journal, ``synchronous=NORMAL`` (a committed batch survives a process kill),
  ``busy_timeout`` 30 s and ``BEGIN IMMEDIATE`` writes, so several processes can
  append to the same file; SQLite serialises them.
- One connection per `RunLog`, guarded by a re-entrant lock and opened with
  ``check_same_thread=False``: the Lab's event-loop thread writes while the
  notebook thread reads, and every statement runs under the lock.  A forked child
  opens its own connection on first use.
- The file is created owner-only (0o600): prompts and responses can be private.
- A file that cannot serve as a run log (not SQLite, damaged, another program's
  database, a directory, unwritable) is never modified: every SQLite or OS error
  becomes a `ConfigError` that names the file and what to do about it.
- Processes running the same named run share it through *claims*: a row is sent
  by the process that claimed it (`RunLog.claim`, in a ``BEGIN IMMEDIATE``
  transaction), and the claim is released in the transaction that saves the row.
  A claim is a lease: its owner renews it, and it lapses when the lease expires
  or the owner's process (on this host) is gone, so a crashed kernel blocks no one.
- NaN is stored as NULL and comes back as NaN; user columns of a results row are
  kept as one JSON object (``extra``) and restored as columns on load.
- Nothing else is stored: no request headers, so never an API key.
- With an `Auditor`, every run, row and attempt written is chained in the same
  transaction (`opencode_lab.session.audit`); with a concealer (privacy mode), the
  private columns (`PRIVATE_COLUMNS`: prompt, answer, tool calls) are stored as keyed hashes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, InvalidRequestError
from ..core.schema import (
    ATTEMPT_COLUMNS,
    ATTEMPT_SCHEMA,
    KINDS,
    PRIVATE_COLUMNS,
    PRIVATE_EXTRAS,
    RESULT_COLUMNS,
    RESULT_KEY,
    RESULT_SCHEMA,
    attempts_frame,
    results_frame,
    tagged,
)
from ..core.secrets import get_logger, redact
from . import audit_check
from .audit import SCHEMA as _AUDIT_SCHEMA
from .audit import Auditor

if TYPE_CHECKING:
    import pandas as pd

    from .audit_key import AuditKey

_log = get_logger(__name__)
_KEY = RESULT_KEY
_KEY_SQL = ", ".join(c.sql for c in RESULT_SCHEMA if c.name in _KEY)
_WHERE_KEY = " AND ".join(f"{c} = ?" for c in _KEY)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT UNIQUE, created_at REAL NOT NULL, meta TEXT
);
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY,
    {", ".join(c.sql for c in RESULT_SCHEMA)},
    extra TEXT,
    updated_at REAL,
    UNIQUE (run_id, prompt_id, model, sample)
);
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY,
    {", ".join(c.sql for c in ATTEMPT_SCHEMA)}
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run_id);
CREATE TABLE IF NOT EXISTS claims (
    {_KEY_SQL},
    owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY ({", ".join(_KEY)})
);
CREATE INDEX IF NOT EXISTS claims_owner ON claims (owner);
"""

#: the run log's format (SQLite ``user_version``); a log of a newer format is refused, an older one migrated
FORMAT_VERSION = 4


def _index_call_times(con: sqlite3.Connection) -> None:
    """Format 2: ``history(since=...)`` and ``uptime(window)`` read calls by time, not by run."""
    con.execute("CREATE INDEX IF NOT EXISTS results_updated ON results (updated_at)")
    con.execute("CREATE INDEX IF NOT EXISTS attempts_time ON attempts (timestamp)")


def _labels_table(con: sqlite3.Connection) -> None:
    """Format 3: human labels of results rows (who said what, when); appended, never overwritten."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS labels (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, prompt_id, "
        "model TEXT NOT NULL, sample INTEGER NOT NULL, over TEXT, value REAL NOT NULL, label TEXT NOT NULL, "
        "who TEXT NOT NULL, at REAL NOT NULL, note TEXT)"
    )
    con.execute("CREATE INDEX IF NOT EXISTS labels_run ON labels (run_id)")


def _audit_tables(con: sqlite3.Connection) -> None:
    """Format 4: the audit trail's chain, checkpoints and prune records (`opencode_lab.session.audit`)."""
    for statement in filter(str.strip, _AUDIT_SCHEMA.split(";")):
        con.execute(statement)


#: ``version -> step`` bringing a log of ``version - 1`` up to ``version``, applied in order in one transaction
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _index_call_times, 3: _labels_table, 4: _audit_tables,
}  # fmt: skip
_LABEL_FIELDS = ("run_id", "prompt_id", "model", "sample", "over", "value", "label", "who", "at", "note")

_RESULT_FIELDS = (*RESULT_COLUMNS, "extra", "updated_at")
_DECLARED = frozenset(RESULT_COLUMNS)  # every other key of a results row goes to ``extra``
_PRIVATE, _PRIVATE_EXTRAS = frozenset(PRIVATE_COLUMNS), frozenset(PRIVATE_EXTRAS)
_UPSERT = (
    f"INSERT INTO results ({', '.join(_RESULT_FIELDS)}) VALUES ({', '.join('?' for _ in _RESULT_FIELDS)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RESULT_FIELDS if c not in _KEY)
    # a success is final: a later failure of the same cell (e.g. a flaky resume) never replaces it
    + " WHERE results.error_type IS NOT NULL OR excluded.error_type IS NULL"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' for _ in ATTEMPT_COLUMNS)})"
)
_CLAIM = (
    f"INSERT INTO claims ({', '.join(_KEY)}, owner, host, pid, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET owner = excluded.owner, host = excluded.host, "
    "pid = excluded.pid, expires_at = excluded.expires_at"
)
# the cost rule of metrics.summarize: successes, plus failures that were billed
_BILLED = "CASE WHEN x.error_type IS NULL OR x.cost_usd > 0 THEN x.cost_usd END"
#: seconds a claim holds without renewal: a row's send, retries included, fits in it many times over
LEASE_S = 30.0
_HOST = socket.gethostname()
_LIVE_OWNERS: set[str] = set()  # claim owners of this process that have not been released


@dataclass(frozen=True)
class Claim:
    """What `RunLog.claim` found: ``granted`` (send the row now), the ``row`` another owner finished,
    or neither (another live owner holds the row: ask again later)."""

    granted: bool
    row: dict[str, Any] | None = None


class RunLog:
    """An append-mostly SQLite log of runs, results rows and attempt records (see the module doc)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auditor: Auditor | None = None,
        conceal: Callable[[str], str] | None = None,
    ) -> None:
        """Open (or create) the log at *path*; `ConfigError` when the file cannot be one, left untouched.

        *auditor* chains every record written (a log from before the audit trail enters the chain as it
        is when first opened with one); *conceal* replaces the private columns' text (privacy mode).
        """
        self.path = Path(path).expanduser()
        self._auditor = auditor
        self._conceal = conceal
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self._pid = os.getpid()
        with self._failures():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise IsADirectoryError(f"{self.path} is a directory")
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.chmod(self.path, 0o600)  # whatever the umask said
            with contextlib.closing(sqlite3.connect(self.path, timeout=30.0)) as probe:
                _require_ours(probe)  # before the connection below switches the file to WAL
        with self._write() as con:
            chained = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit'").fetchone() is not None
            _upgrade(con, self.path)
            if auditor is not None and not chained:
                audit_check.adopt(con, auditor)

    def __repr__(self) -> str:
        return f"RunLog({str(self.path)!r})"

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Turn a SQLite or OS failure into a `ConfigError` naming this file and the way out."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            self.close()  # a damaged file may have left the connection unusable: reopen on the next call
            raise _unusable(self.path, exc) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._con is None or self._pid != os.getpid():
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout = 30000")
            _enable_wal(con, timeout_s=30.0)
            con.execute("PRAGMA synchronous = NORMAL")
            self._con, self._pid = con, os.getpid()
        return self._con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: takes the write lock up front, so waits honour busy_timeout."""
        with self._lock, self._failures():
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # nothing to roll back when BEGIN or COMMIT failed
                    con.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._failures():
            return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection; a later call on this object reopens it."""
        with self._lock:
            if self._con is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._con.close()
            self._con = None

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self, name: str | None = None, meta: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> str:
        """Return the run_id of run ``name`` if it exists (that is how a run resumes), else create one.

        A resumed run keeps its original ``meta``.  *run_id* starts an unnamed run under that id (a
        session's own calls); starting it again changes nothing.
        """
        run_id = run_id or "r-" + uuid.uuid4().hex[:12]
        blob = json.dumps(dict(meta or {}), default=str)
        with self._write() as con:
            if name is not None:
                row = con.execute("SELECT run_id FROM runs WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    return str(row["run_id"])
            added = con.execute(
                "INSERT OR IGNORE INTO runs (run_id, name, created_at, meta) VALUES (?, ?, ?, ?)",
                (run_id, name, time.time(), blob),
            )
            if self._auditor is not None and added.rowcount == 1:
                self._auditor.chain(con, "run", "rowid = ?", (added.lastrowid,))
        return run_id

    def run_meta(self, name: str) -> dict[str, Any] | None:
        """The ``meta`` a named run was started with (its specification), or None if there is no such run."""
        rows = self._query("SELECT meta FROM runs WHERE name = ?", (name,))
        return json.loads(rows[0]["meta"] or "{}") if rows else None

    def retire(self, name: str) -> str | None:
        """Rename run ``name`` to ``name@run_id`` (its rows stay), freeing the name for a fresh run."""
        with self._write() as con:
            row = con.execute("SELECT run_id FROM runs WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            con.execute("UPDATE runs SET name = ? WHERE run_id = ?", (f"{name}@{row['run_id']}", row["run_id"]))
            if self._auditor is not None:
                self._auditor.chain(con, "run", "run_id = ?", (row["run_id"],))
        return str(row["run_id"])

    def find_run(self, name_or_id: str) -> str | None:
        """The run_id whose id or name is ``name_or_id`` (an id wins), or None."""
        rows = self._query(
            "SELECT run_id FROM runs WHERE run_id = ? OR name = ? ORDER BY run_id = ? DESC LIMIT 1",
            (name_or_id, name_or_id, name_or_id),
        )
        return str(rows[0]["run_id"]) if rows else None

    def _require_run(self, name_or_id: str) -> str:
        run_id = self.find_run(name_or_id)
        if run_id is None:
            known = [r["name"] or r["run_id"] for r in self._query("SELECT name, run_id FROM runs ORDER BY created_at")]
            hint = f"; known runs: {', '.join(known[-10:])}" if known else "; the log has no runs yet"
            raise InvalidRequestError(f"no run named or with id {name_or_id!r} in {self.path}{hint}")
        return run_id

    def runs(self) -> pd.DataFrame:
        """One row per run, oldest first: run_id, name, created_at (UTC datetime), rows, ok, failed, cost_usd."""
        import pandas as pd

        rows = self._query(
            "SELECT r.run_id, r.name, r.created_at, COUNT(x.seq) AS rows, "
            "COUNT(x.seq) - COUNT(x.error_type) AS ok, COUNT(x.error_type) AS failed, "
            f"SUM({_BILLED}) AS cost_usd "
            "FROM runs r LEFT JOIN results x ON x.run_id = r.run_id "
            "GROUP BY r.run_id ORDER BY r.created_at, r.rowid"
        )
        columns = ["run_id", "name", "created_at", "rows", "ok", "failed", "cost_usd"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        df["created_at"] = pd.to_datetime(df["created_at"].astype("float64"), unit="s", utc=True)
        df["cost_usd"] = df["cost_usd"].astype("float64")
        for col in ("rows", "ok", "failed"):
            df[col] = df[col].astype("int64")
        return tagged(df, "runs")

    # -- results ---------------------------------------------------------------------------

    def save_results(self, run_id: str, rows: Sequence[Mapping[str, Any]], *, owner: str | None = None) -> None:
        """Upsert results rows of ``run_id`` in one transaction, keyed by (prompt_id, model, sample).

        A successful row is never overwritten by a failed one; a success replaces a
        failure or an earlier success.  Columns outside `RESULT_COLUMNS` go to ``extra``.
        *owner*'s claims on these rows are released in the same transaction, so no
        other process sees a row neither claimed nor saved.
        """
        if not rows:
            return
        now = time.time()
        params = []
        for row in rows:
            missing = [c for c in _KEY[1:] if _sql(row.get(c)) is None]
            if missing:
                raise InvalidRequestError(f"results row without {', '.join(missing)}: cannot key it in the run log")
            values = [run_id if c == "run_id" else _sql(row.get(c)) for c in RESULT_COLUMNS]
            extra = {k: _plain(v) for k, v in row.items() if k not in _DECLARED}
            if self._conceal is not None:
                values, extra = _concealed(self._conceal, values, extra)
            params.append((*values, redact(json.dumps(extra, default=str)) if extra else None, now))
        with self._write() as con:
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise InvalidRequestError(f"unknown run_id {run_id!r}: call start_run() first")
            if self._auditor is not None:
                self._auditor.guard(con, "result")
            con.executemany(_UPSERT, params)
            if self._auditor is not None:  # the rows the upsert changed (stamped *now*) enter the chain
                self._auditor.chain(con, "result", "run_id = ? AND updated_at = ?", (run_id, now))
            if owner is not None:
                keys = [(run_id, *(values[RESULT_COLUMNS.index(c)] for c in _KEY[1:]), owner) for values in params]
                con.executemany(f"DELETE FROM claims WHERE {_WHERE_KEY} AND owner = ?", keys)

    def completed(self, run_id: str) -> dict[tuple[Any, str, int], dict[str, Any]]:
        """Successful rows of a run keyed by (prompt_id, model, sample): what a resume need not resend."""
        rows = self._query("SELECT * FROM results WHERE run_id = ? AND error_type IS NULL ORDER BY seq", (run_id,))
        return {(r["prompt_id"], r["model"], r["sample"]): _restore(r) for r in rows}

    def load_run(self, name_or_id: str) -> pd.DataFrame:
        """The results frame of a run: by prompt_id, then models in first-seen order, then sample."""
        run_id = self._require_run(name_or_id)
        rows = self._query(
            "SELECT x.* FROM results x JOIN (SELECT model, MIN(seq) AS first FROM results WHERE run_id = ? "
            "GROUP BY model) m ON m.model IS x.model WHERE x.run_id = ? ORDER BY x.prompt_id, m.first, x.sample",
            (run_id, run_id),
        )
        return results_frame([_restore(r) for r in rows])

    # -- labels ----------------------------------------------------------------------------

    def add_label(self, run: str, label: Mapping[str, Any]) -> None:
        """Append one human label (`_LABEL_FIELDS` but ``run_id`` and ``at``) to a row of *run* (name or id)."""
        run_id = self._require_run(run)
        values = {**label, "run_id": run_id, "at": time.time()}
        with self._write() as con:
            con.execute(
                f"INSERT INTO labels ({', '.join(_LABEL_FIELDS)}) VALUES ({', '.join('?' for _ in _LABEL_FIELDS)})",
                [_sql(values.get(c)) for c in _LABEL_FIELDS],
            )

    def labels(self, run: str | None = None) -> pd.DataFrame:
        """Every label, oldest first, of one run (name or id) or all: run, prompt_id, model, sample, over (the
        other model of a preference), value, label, who, at (UTC datetime), note."""
        import pandas as pd

        where, params = ("WHERE l.run_id = ?", (self._require_run(run),)) if run is not None else ("", ())
        rows = self._query(
            f"SELECT COALESCE(r.name, l.run_id) AS run, l.* FROM labels l LEFT JOIN runs r ON r.run_id = l.run_id "
            f"{where} ORDER BY l.seq",
            params,
        )
        columns = ["run", *(c for c in _LABEL_FIELDS if c != "run_id")]
        frame = pd.DataFrame([[r[c] for c in columns] for r in rows], columns=columns)
        frame["value"] = frame["value"].astype("float64")
        frame["sample"] = frame["sample"].astype("int64")
        frame["at"] = pd.to_datetime(frame["at"].astype("float64"), unit="s", utc=True)
        return tagged(frame, "labels")

    # -- claims ----------------------------------------------------------------------------

    def claimant(self) -> str:
        """A new claim owner, alive for this process until `release`."""
        owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        _LIVE_OWNERS.add(owner)
        return owner

    def claim(
        self, run_id: str, key: tuple[Any, str, int], owner: str, *, since: float, lease_s: float = LEASE_S
    ) -> Claim:
        """Claim row *key* = (prompt_id, model, sample) of *run_id* for *owner*, unless it is finished or held.

        Finished means succeeded, or failed at or after *since* (the caller's start: a failure
        from before it is what a resume retries).  A held row is claimed by another owner whose
        lease has not expired and whose process is alive.  A cheap read answers first, so
        asking again about a held row takes no write lock.
        """
        where = (run_id, *(_sql(k) for k in key))
        with self._lock, self._failures():
            found = _claim_state(self._connection(), where, owner, since)
        if found is not None:
            return found
        with self._write() as con:
            found = _claim_state(con, where, owner, since)
            if found is not None:
                return found
            con.execute(_CLAIM, (*where, owner, _HOST, os.getpid(), time.time() + lease_s))
        return Claim(True)

    def renew(self, owner: str, lease_s: float = LEASE_S) -> None:
        """Extend every claim *owner* holds by *lease_s* from now."""
        with self._write() as con:
            con.execute("UPDATE claims SET expires_at = ? WHERE owner = ?", (time.time() + lease_s, owner))

    def release(self, owner: str) -> None:
        """Drop every claim *owner* still holds (rows it did not finish) and retire the owner."""
        try:
            with self._write() as con:
                con.execute("DELETE FROM claims WHERE owner = ?", (owner,))
        finally:
            _LIVE_OWNERS.discard(owner)

    # -- attempts --------------------------------------------------------------------------

    def append_attempts(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append attempt records (`ATTEMPT_COLUMNS`; other keys are dropped) in one transaction."""
        if not records:
            return
        params = [[_sql(r.get(c)) for c in ATTEMPT_COLUMNS] for r in records]
        with self._write() as con:
            if self._auditor is None:
                con.executemany(_INSERT_ATTEMPT, params)
                return
            self._auditor.guard(con, "attempt")
            last = con.execute("SELECT MAX(seq) FROM attempts").fetchone()[0]
            con.executemany(_INSERT_ATTEMPT, params)
            self._auditor.chain(con, "attempt", "seq > ?", (last or 0,))

    def attempts(self, run_id: str | None = None, *, since: float | None = None) -> pd.DataFrame:
        """Attempt records in the order they were logged, of one run (name or id) or of all runs; *since*
        (seconds since the epoch) keeps those started at or after it."""
        where: list[str] = ["1"]
        params: list[str | float] = []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(self.find_run(run_id) or run_id)
        if since is not None:
            where.append("timestamp >= ?")
            params.append(since)
        rows = self._query(f"SELECT * FROM attempts WHERE {' AND '.join(where)} ORDER BY seq", params)
        return attempts_frame([{c: _nan_if_null(c, r[c]) for c in ATTEMPT_COLUMNS} for r in rows])

    def version(self) -> tuple[Any, ...]:
        """A value that changes whenever any process adds an attempt or saves a results row: what a viewer
        polls (cheaply, from two indexes) to know the log has news."""
        rows = self._query(
            "SELECT (SELECT MAX(seq) FROM attempts), (SELECT MAX(updated_at) FROM results), "
            "(SELECT COUNT(*) FROM results)"
        )
        return tuple(rows[0])

    def spent_since(self, since: float) -> float:
        """USD paid for the attempts started at or after *since* (seconds since the epoch), by every process
        writing this log: the ledger spending limits are kept against (an unknown cost counts nothing; the cache
        hits that run logs of earlier versions recorded as attempts paid nothing)."""
        rows = self._query("SELECT TOTAL(cost_usd) FROM attempts WHERE timestamp >= ? AND NOT cached", (since,))
        return float(rows[0][0])

    def history(self, since: float | None = None) -> pd.DataFrame:
        """Every results row of every run, oldest first: chat and stream calls under their session's run,
        compare rows under theirs.  Adds ``run`` (the run's name, None for a session) and ``logged_at``
        (when the row was saved, UTC); *since* (seconds since the epoch) keeps rows saved at or after it."""
        import pandas as pd

        where, params = ("WHERE x.updated_at >= ?", (since,)) if since is not None else ("", ())
        rows = self._query(
            f"SELECT x.*, r.name AS run_name FROM results x LEFT JOIN runs r ON r.run_id = x.run_id {where} "
            "ORDER BY x.seq",
            params,
        )
        frame = results_frame([{**_restore(r), "run": r["run_name"], "logged_at": r["updated_at"]} for r in rows])
        frame["run"] = frame["run"] if rows else None
        frame["logged_at"] = pd.to_datetime(frame["logged_at"] if rows else [], unit="s", utc=True)
        return frame

    # -- audit trail -----------------------------------------------------------------------

    def verify(self, key: AuditKey, *, head: str | None = None) -> audit_check.AuditReport:
        """Check the audit trail against *key* (and a published *head*, ``pos:link``); see `audit_check.verify`."""
        with self._lock, self._failures():
            return audit_check.verify(self._connection(), key, head=head)

    def export_audit(self) -> list[dict[str, Any]]:
        """The chain, its checkpoints and the rows it covers, as JSON-ready dicts (`audit_check.export`), read
        whole: this log's writers wait for no reader that a caller left half-way."""
        with self._lock, self._failures():
            return list(audit_check.export(self._connection()))

    def prune(self, before: float) -> audit_check.Pruned:
        """Delete what was logged before *before* (epoch seconds), leaving a signed record of it
        (`audit_check.prune`); refused when the trail does not verify or this log keeps none."""
        if self._auditor is None:
            raise ConfigError(f"the run log {self.path} is open without its audit trail (OC_AUDIT is off): not pruned")
        with self._write() as con:
            return audit_check.prune(con, self._auditor, before)


def _concealed(
    conceal: Callable[[str], str], values: list[Any], extra: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """A row's column values and extra columns with the user's text (`PRIVATE_COLUMNS`, `PRIVATE_EXTRAS`)
    replaced by privacy mode's stand-in."""

    def hide(name: str, value: Any, private: frozenset[str]) -> Any:
        return conceal(value) if name in private and isinstance(value, str) else value

    columns = [hide(c, v, _PRIVATE) for c, v in zip(RESULT_COLUMNS, values, strict=True)]
    return columns, {k: hide(k, v, _PRIVATE_EXTRAS) for k, v in extra.items()}


def _upgrade(con: sqlite3.Connection, path: Path) -> None:
    """Bring the log to `FORMAT_VERSION` inside the caller's write transaction (so two processes opening
    one old file migrate it once): tables first, then each migration step in order, then any column the
    result and attempt declarations added since (NULL in old rows).  A newer format is refused untouched."""
    found = con.execute("PRAGMA user_version").fetchone()[0]
    if found > FORMAT_VERSION:
        raise ConfigError(
            f"the run log {path} has format {found}, written by a newer opencode_lab (this one reads formats up "
            f"to {FORMAT_VERSION}): upgrade opencode_lab, or set OC_RUNLOG to another file"
        )
    new = found == 0 and not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'results'").fetchone()
    for statement in filter(str.strip, _SCHEMA.split(";")):
        con.execute(statement)
    for version in sorted(v for v in _MIGRATIONS if max(found, 1) < v <= FORMAT_VERSION):
        if not new:
            _log.info("run log %s: migrating to format %d", path, version)
        _MIGRATIONS[version](con)
    for table, schema in (("results", RESULT_SCHEMA), ("attempts", ATTEMPT_SCHEMA)):
        have = {r["name"] for r in con.execute(f"PRAGMA table_info({table})")}
        for column in schema:
            if column.name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column.sql}")
    con.execute(f"PRAGMA user_version = {FORMAT_VERSION}")


def _claim_state(con: sqlite3.Connection, where: tuple[Any, ...], owner: str, since: float) -> Claim | None:
    """The row's answer when it is finished or held by someone else (see `RunLog.claim`); None when free."""
    row = con.execute(f"SELECT * FROM results WHERE {_WHERE_KEY}", where).fetchone()
    if row is not None and (row["error_type"] is None or (row["updated_at"] or 0.0) >= since):
        return Claim(False, _restore(row))
    held = con.execute(f"SELECT owner, host, pid, expires_at FROM claims WHERE {_WHERE_KEY}", where).fetchone()
    if held is not None and held["owner"] != owner and held["expires_at"] > time.time() and _alive(held):
        return Claim(False)
    return None


def _alive(claim: sqlite3.Row) -> bool:
    """Whether a claim's owner may still be working: certainly not when its process on this host is gone."""
    if claim["host"] != _HOST:
        return True  # another machine on a shared disk: only its lease can tell
    if claim["pid"] == os.getpid():
        return claim["owner"] in _LIVE_OWNERS
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _require_ours(con: sqlite3.Connection) -> None:
    """Refuse another program's database before anything of ours is written to it."""
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return
    for table, needed in (("runs", {"run_id", "name"}), ("results", set(_KEY))):
        columns = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if not needed <= columns:
            raise sqlite3.DatabaseError(f"another program's database, with tables {', '.join(sorted(tables))}")


def _unusable(path: Path, exc: BaseException) -> ConfigError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in reason or "busy" in reason):
        advice = "another process holds it locked; try again, or set OC_RUNLOG to another file"
    else:
        advice = "move it away or set OC_RUNLOG to another file (OC_RUNLOG=off runs without a log)"
    return ConfigError(f"the run log {path} cannot be used ({reason}): {advice}")


def _enable_wal(con: sqlite3.Connection, *, timeout_s: float) -> None:
    """Switch to WAL, retrying: that pragma fails at once with "database is locked" (it ignores
    busy_timeout) while another process opens the same new file."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if con.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch the run log to WAL within {timeout_s}s")
        time.sleep(0.02)


def _plain(value: Any) -> Any:
    """A JSON/SQLite friendly Python value: numpy scalars unwrapped, NaN / NA / NaT → None."""
    if value is None:
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _sql(value: Any) -> Any:
    kind = type(value)  # the common cases first: this runs for every column of every row
    if kind is str:
        return redact(value)
    if value is None or kind is int or kind is bool:
        return value
    if kind is float:
        return None if value != value else value
    value = _plain(value)
    if value is None or isinstance(value, int | float | str | bytes):
        return redact(value) if isinstance(value, str) else value
    return json.dumps(value, default=str)


def _nan_if_null(col: str, value: Any) -> Any:
    kind = KINDS[col]
    if value is None and kind == "float":
        return math.nan
    if kind == "bool":
        return bool(value)
    if kind == "flag":
        return None if value is None else bool(value)
    return value


def _restore(row: sqlite3.Row) -> dict[str, Any]:
    out = {c: _nan_if_null(c, row[c]) for c in RESULT_COLUMNS}
    if row["extra"]:
        out.update(json.loads(row["extra"]))
    return out
