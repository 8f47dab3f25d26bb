"""``opencode-lab audit verify | export | prune``: the run log's audit trail from a shell.

Presentation only: the checks are `opencode_lab.session.audit_check`'s, reached through the
Lab's run log.  ``verify`` exits 0 on an intact trail and 1 naming the first damage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, InvalidRequestError
from ..lab.lab import Lab
from ..session.keeping import audit_key
from ..session.runlog import RunLog

#: findings listed after the first, at most
SHOWN = 10


def add_audit_commands(sub: Any) -> None:
    """The ``audit`` command and its three subcommands, on the CLI's subparsers *sub*."""
    audit = sub.add_parser("audit", help="verify, export or prune the run log's audit trail")
    commands = audit.add_subparsers(required=True, metavar="ACTION")
    verify = commands.add_parser("verify", help="check every record against the chain and its signed checkpoints")
    verify.add_argument("--head", help="a head printed earlier (POS:LINK): the chain must still lead to it")
    verify.set_defaults(command=_verify)
    export = commands.add_parser("export", help="write the chain, its checkpoints and records as JSON Lines")
    export.add_argument("--out", type=Path, help="file to write (owner-only; default: standard output)")
    export.set_defaults(command=_export)
    prune = commands.add_parser("prune", help="delete records logged before a date, keeping the chain verifiable")
    prune.add_argument("--before", required=True, help="ISO date or time (UTC unless it says otherwise)")
    prune.set_defaults(command=_prune)


def _runlog(lab: Lab) -> RunLog:
    runlog = lab.runlog
    if runlog is None:
        raise ConfigError(str(lab.runlog_error or "the run log is off (OC_RUNLOG=off): there is no trail to check"))
    return runlog


def _verify(lab: Lab, args: argparse.Namespace) -> int:
    runlog = _runlog(lab)
    report = runlog.verify(audit_key(lab.settings, create=False), head=args.head)
    pruned = f", pruned up to entry {report.pruned_upto}" if report.pruned_upto else ""
    if report.ok:
        print(f"audit trail intact: {runlog.path}: {report.entries} entries, {report.checkpoints} checkpoints{pruned}")
        print(f"head {report.head}  (publish it; `audit verify --head` then detects a cut tail)")
        return 0
    print(f"audit trail damaged: {runlog.path}: {report.first}", file=sys.stderr)
    rest = report.findings[1 : SHOWN + 1]
    for finding in rest:
        print(f"  also {finding}", file=sys.stderr)
    hidden = len(report.findings) - 1 - len(rest)
    if hidden:
        print(f"  and {hidden} more", file=sys.stderr)
    return 1


def _export(lab: Lab, args: argparse.Namespace) -> int:
    runlog = _runlog(lab)
    if args.out is None:
        count = _write_lines(runlog, sys.stdout)
    else:
        fd = os.open(args.out, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)  # it holds the records
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            count = _write_lines(runlog, out)
        print(f"exported {count} lines to {args.out}", file=sys.stderr)
    return 0


def _write_lines(runlog: RunLog, out: Any) -> int:
    count = 0
    for item in runlog.export_audit():
        out.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


def _prune(lab: Lab, args: argparse.Namespace) -> int:
    before = _moment(args.before)
    done = _runlog(lab).prune(before.timestamp())
    if not done.counts:
        print(f"nothing was logged before {before.isoformat()}: nothing pruned")
        return 0
    removed = ", ".join(f"{n} {table}" for table, n in done.counts.items())
    print(f"pruned entries up to {done.upto} (logged before {before.isoformat()}): {removed}; a signed record keeps")
    print("the rest verifiable (`opencode-lab audit verify`)")
    return 0


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"--before takes an ISO date or time such as 2026-01-31 or 2026-01-31T12:00, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
