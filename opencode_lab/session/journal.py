"""Where a session's calls go: kept in memory at once, written to the SQLite run log in batches.

A transaction per call would cost more than the call's own bookkeeping, so results
rows (of calls outside a compare) and attempt records wait for the next batch, at
least every second and at interpreter exit.  The run log is a record, never a reason
to lose an answer: a log that cannot be used is reported once, as a warning.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, LabError
from ..core.secrets import get_logger
from ..core.types import ChatResult
from .records import attempt_record, result_row

if TYPE_CHECKING:
    from .runlog import RunLog
    from .telemetry import Telemetry

log = get_logger(__name__)


class Journal:
    """A session's results rows and attempt records, and the run log they reach."""

    def __init__(
        self,
        runlog: Path | None,
        session_run_id: str,
        *,
        cache_dir: Path,
        cache_fallback: str | None,
        runlog_options: Mapping[str, Any] | None = None,
    ) -> None:
        """*runlog_options*: the `RunLog` keywords (its auditor, privacy mode's concealer)."""
        self.path = runlog
        self._runlog_options = dict(runlog_options or {})
        self.session_run_id = session_run_id
        #: every results row (`records.result_row`) and attempt record of the session, in order
        self.calls: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.error: ConfigError | None = None
        #: where each attempt is also exported as an OpenTelemetry span (`Session.instrument`), or None
        self.telemetry: Telemetry | None = None
        self._runlog: RunLog | None = None
        self._pending: list[dict[str, Any]] = []
        self._pending_rows: list[dict[str, Any]] = []
        self._session_logged = False
        self._flushed_at = time.monotonic()
        self._lock = threading.RLock()  # calls are recorded on the loop's thread, cache hits on the caller's
        if cache_fallback is not None:
            self._without_cache_folder(cache_fallback, cache_dir)
        atexit.register(_flush_at_exit, weakref.ref(self))

    @property
    def runlog(self) -> RunLog | None:
        """The SQLite run log (created on first use), or None when ``OC_RUNLOG=off`` or when it cannot be
        used (`error` says why): calls keep their answers without it."""
        if self._runlog is None and self.path is not None and self.error is None:
            from .runlog import RunLog

            try:
                self._runlog = RunLog(self.path, **self._runlog_options)
            except ConfigError as exc:
                self.failed(exc)
        return self._runlog

    def failed(self, exc: Exception) -> None:
        """Report a run-log failure once, as a warning.  Writes are still tried later (a full disk may recover)."""
        if self.error is not None:
            log.debug("the run log failed again: %s", exc)
            return
        self.error = exc if isinstance(exc, ConfigError) else ConfigError(f"the run log {self.path} failed: {exc}")
        log.warning("%s", self.error)

    def _without_cache_folder(self, problem: str, cache_dir: Path) -> None:
        """An unwritable cache folder (a user without a home) leaves the memory cache and, when the run log
        lives in that folder, no run log: one warning, never a PermissionError."""
        lost = self.path is not None and self.path.is_relative_to(cache_dir)
        if lost:
            self.error = ConfigError(f"the run log {self.path} is off: {problem}; set OC_CACHE_DIR or OC_RUNLOG")
        without = " and no run log" if lost else ""
        log.warning("%s: using the in-memory cache%s; set OC_CACHE_DIR to a writable folder", problem, without)

    def succeeded(self, result: ChatResult, run_id: str, who: dict[str, Any]) -> None:
        """Record a call that answered: its results row, and the attempts it made (a cache hit made none; its
        row says it was cached and what it saved)."""
        row = result_row(result, run_id=run_id, **who)
        with self._lock:
            self._keep(row, run_id, result.request_id)
            self._log([attempt_record(attempt, run_id, result.request_id, result) for attempt in result.attempts])

    def failed_call(
        self, exc: LabError, spec: str, run_id: str, request_id: str, latency_s: float, who: dict[str, Any]
    ) -> None:
        """Record a call that ended in *exc*, with every attempt it made."""
        row = result_row(exc, model=spec, run_id=run_id, latency_s=latency_s, **who)
        with self._lock:
            self._keep(row, run_id, request_id)
            self._log([attempt_record(attempt, run_id, request_id) for attempt in exc.attempts])

    def _keep(self, row: dict[str, Any], run_id: str, request_id: str) -> None:
        """Keep a call's results row; one outside a compare (whose rows the compare saves, under its run)
        also goes to the run log, keyed by its request id, with the next batch."""
        self.calls.append(row)
        if run_id == self.session_run_id:
            self._pending_rows.append({**row, "prompt_id": request_id})

    def _log(self, records: list[dict[str, Any]]) -> None:
        """Keep a call's attempt records (none for a cache hit or a call refused before its first attempt)."""
        if not records:
            return
        if self.telemetry is not None:
            self.telemetry.export(records)
        self.records.extend(records)
        self._pending.extend(records)
        if len(self._pending) >= 200 or time.monotonic() - self._flushed_at >= 1.0:
            self.flush()

    def flush(self) -> None:
        """Write pending results rows and attempt records to the run log."""
        with self._lock:
            pending, self._pending = self._pending, []
            rows, self._pending_rows = self._pending_rows, []
            self._flushed_at = time.monotonic()
        if not pending and not rows:
            return
        runlog = self.runlog
        if runlog is not None:
            try:
                if rows and not self._session_logged:
                    runlog.start_run(meta={"kind": "session"}, run_id=self.session_run_id)
                    self._session_logged = True
                if rows:
                    runlog.save_results(self.session_run_id, rows)
                runlog.append_attempts(pending)
            except Exception as exc:  # the run log must never break a call
                self.failed(exc)

    def close(self) -> None:
        self.flush()
        if self._runlog is not None:
            self._runlog.close()


def _flush_at_exit(ref: weakref.ref[Journal]) -> None:
    """Records still waiting for their batch reach the run log when the interpreter (kernel) exits."""
    journal = ref()
    if journal is not None:
        journal.flush()
