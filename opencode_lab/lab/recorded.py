"""A compare as the run log records it: the run it belongs to, the rows it finished before, the claims it
shares with other processes running the same named run, and its finished rows saved every tick.

A run log that fails mid-run never costs an answer: the failure is reported once per session (see
`Session.runlog_failed`) and the rows stay in memory.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, LabError, RunMismatchError
from ..core.schema import PRIVATE_EXTRAS

if TYPE_CHECKING:
    from ..session.runlog import RunLog
    from ..session.session import Session
    from .plan import CompareOptions, RowKey

_TICK_S = 1.0  # how often finished rows are saved and a named run's claims renewed


class RecordedRun:
    """One compare's rows in the run log (``runlog`` None: this compare is not logged)."""

    def __init__(self, lab: Session, run_id: str, name: str | None, runlog: RunLog | None) -> None:
        self.lab = lab
        self.run_id = run_id
        self.name = name
        self.runlog = runlog
        self.owner: str | None = None
        """This compare's claim owner, when it shares a named run with other processes."""
        self._since = 0.0
        self._unsaved: list[dict[str, Any]] = []

    @classmethod
    def open(cls, lab: Session, options: CompareOptions, spec: dict[str, Any]) -> RecordedRun:
        """Start (or resume) the run; a named run that could not resume is refused before anything is sent."""
        run_id = _open_run(lab, options, spec)
        logged = lab.runlog if run_id != lab.session_run_id else None
        return cls(lab, run_id, options.run, logged)

    def completed(self) -> dict[RowKey, dict[str, Any]]:
        """The rows a named run finished before; a run log failing here refuses the run before sending."""
        if self.runlog is None or self.name is None:
            return {}  # an unnamed run is new: nothing finished yet
        try:
            finished = self.runlog.completed(self.run_id)
        except ConfigError as exc:
            raise _unresumable(self.name, exc) from None
        return {key: replayed(row) for key, row in finished.items()}

    def share(self) -> None:
        """Take part in the named run with any other process running it: a row is sent by whoever claims it
        first and read back by the others (see `RunLog.claim`)."""
        if self.runlog is not None and self.name is not None:
            self.owner, self._since = self.runlog.claimant(), time.time()

    def claim(self, key: RowKey) -> tuple[bool, dict[str, Any] | None]:
        """Whether to send row *key* now, else the row another process finished (None: it is still at it)."""
        if self.owner is None or self.runlog is None:
            return True, None
        try:
            claim = self.runlog.claim(self.run_id, key, self.owner, since=self._since)
        except ConfigError as exc:  # the log broke mid-run: the answers matter more than sharing the run
            self.lab.runlog_failed(exc)
            self.owner = None
            return True, None
        return claim.granted, claim.row

    def finished(self, row: dict[str, Any]) -> None:
        """A row this compare produced: saved at the next tick."""
        if self.runlog is not None:
            self._unsaved.append(row)

    async def keep(self) -> None:
        """Every tick, save the rows finished since the last one (a crash loses at most a tick's rows, and a
        process waiting for them sees them) and renew this run's claims."""
        if self.runlog is None:
            return
        runlog = self.runlog
        while True:
            await asyncio.sleep(_TICK_S)
            self.save()
            if self.owner is not None:
                self._logged(runlog.renew, self.owner)

    def save(self) -> None:
        """Save the finished rows, releasing their claims; a failing log keeps them in memory (warned once)."""
        runlog = self.runlog
        if runlog is None or not self._unsaved:
            return
        rows, self._unsaved = self._unsaved, []
        self._logged(lambda: runlog.save_results(self.run_id, rows, owner=self.owner))

    def close(self) -> None:
        """Save what is left and give up this compare's claims."""
        self.save()
        if self.owner is not None and self.runlog is not None:
            self._logged(self.runlog.release, self.owner)

    def _logged(self, write: Callable[..., None], *args: Any) -> None:
        """Run a run-log write; a failure is reported (once per session), never raised."""
        try:
            write(*args)
        except Exception as exc:
            self.lab.runlog_failed(exc)


def replayed(row: dict[str, Any]) -> dict[str, Any]:
    """A row a resumed run reads back instead of asking again, flagged as a cache hit is: ``cached``,
    nothing paid now, and what the original call cost (NaN when unknown) is what the rerun saved."""
    return {**row, "cached": True, "cost_usd": 0.0, "cost_saved_usd": row.get("cost_usd", math.nan)}


def _open_run(lab: Session, options: CompareOptions, spec: dict[str, Any]) -> str:
    """The run's id.  A run log that cannot be used refuses a named run before anything is sent (it could
    not resume); an unnamed run goes on without it (warned once) under the session's id.  In privacy mode
    the specification's own texts are kept as keyed hashes, and a resume compares those."""
    if options.run is not None and lab.runlog is None and lab.runlog_error is not None:
        raise _unresumable(options.run, lab.runlog_error)
    if lab.conceal is not None:
        spec = {k: lab.conceal(v) if k in PRIVATE_EXTRAS and isinstance(v, str) else v for k, v in spec.items()}
    try:
        return _start_run(lab, options, spec)
    except ConfigError as exc:
        if options.run is not None:
            raise _unresumable(options.run, exc) from None
        lab.runlog_failed(exc)
        return lab.session_run_id


def _unresumable(run: str, problem: LabError) -> ConfigError:
    return ConfigError(f"compare(run={run!r}) needs its run log to resume, and {problem}")


def _start_run(lab: Session, options: CompareOptions, spec: dict[str, Any]) -> str:
    runlog = lab.runlog
    if runlog is None:
        return lab.session_run_id
    if options.run is not None:
        stored = runlog.run_meta(options.run)
        if stored is not None and options.resume == "new":
            runlog.retire(options.run)
        elif stored is not None and "spec" in stored:  # runs logged before specifications were kept resume as is
            differences = {k: (stored["spec"].get(k), v) for k, v in spec.items() if stored["spec"].get(k) != v}
            differences.pop("version", None)  # a newer opencode_lab may finish an older run
            if differences:
                raise RunMismatchError(options.run, differences)
    return runlog.start_run(options.run, {"spec": spec})
