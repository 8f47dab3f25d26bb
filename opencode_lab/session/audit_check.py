"""Reading the audit trail back: verify it, export it, prune what is old, adopt a log from before it.

`verify` recomputes every link from the prune record (or the start), checks every
checkpoint's signature and that it still matches the chain, and compares each row
of the log with its latest entry.  What it finds is named by kind:

- ``edited``: a row differs from what was chained (an answer, a cost, ...);
- ``swapped``: a row holds what was chained for another row of its table;
- ``deleted``: a chained row, or chain entries, are gone;
- ``inserted``: a row that was never chained, or entries no signed checkpoint covers;
- ``chain altered``: an entry that does not follow from the one before (edited, moved);
- ``rewritten``: the chain no longer leads to what a signed checkpoint (or a published head) says;
- ``truncated``: a signed checkpoint names an entry past the end of the chain;
- ``forged checkpoint``: a checkpoint or prune record whose signature the key does not confirm.

Findings are ordered by chain position, so the first is the earliest damage.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InvalidRequestError
from .audit import GENESIS, TABLES, Auditor, canonical, digests, entry_link, mac
from .audit_key import AuditKey


@dataclass(frozen=True)
class Finding:
    """One piece of damage: its kind (see the module doc), where, and what was seen."""

    kind: str
    where: str
    detail: str
    pos: float = math.inf  # the chain position it concerns, for ordering (inf: a row never chained)

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass(frozen=True)
class AuditReport:
    """What `verify` found: the chain's size and head, and every finding, earliest first."""

    entries: int
    checkpoints: int
    head: str  # ``pos:link``, what to publish elsewhere
    pruned_upto: int
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


@dataclass(frozen=True)
class Pruned:
    """What `prune` removed: entries up to ``upto`` and the rows they alone covered."""

    upto: int
    counts: dict[str, int] = field(default_factory=dict)


def adopt(con: sqlite3.Connection, auditor: Auditor) -> None:
    """A log written before the audit trail: its rows enter the chain as they are now (and are signed)."""
    for kind in TABLES:
        auditor.chain(con, kind, "1")


def verify(con: sqlite3.Connection, key: AuditKey, *, head: str | None = None) -> AuditReport:
    """Check the whole trail (see the module doc); *head* is a published ``pos:link`` the chain must still hold."""
    findings: list[Finding] = []
    anchor = _anchor(con)
    upto, prev = (anchor["upto"], anchor["link"]) if anchor is not None else (0, GENESIS)
    if anchor is not None and not _signed_prune(key, anchor):
        findings.append(Finding("forged checkpoint", f"the prune record up to entry {upto}", _UNSIGNED, upto))
    links, latest = _walk(con, upto, prev, findings)
    checkpoints = con.execute("SELECT * FROM audit_checkpoints ORDER BY pos").fetchall()
    signed = _check_checkpoints(checkpoints, links, key, upto, findings)
    unsigned = [pos for pos in links if pos > signed]
    if unsigned:
        findings.append(
            Finding(
                "inserted",
                f"entries {unsigned[0]}..{unsigned[-1]}",
                "no signed checkpoint covers them (every write is signed: these were added without the key)",
                unsigned[0],
            )
        )
    _check_rows(con, latest, findings)
    if head is not None:
        _check_head(head, links, upto, findings)
    end = max(links, default=upto)
    last_link = con.execute("SELECT link FROM audit WHERE pos = ?", (end,)).fetchone()
    shown = f"{end}:{last_link[0] if last_link else prev}"
    findings.sort(key=lambda f: f.pos)
    return AuditReport(len(links), len(checkpoints), shown, upto, tuple(findings))


_UNSIGNED = "its signature does not match the audit key: replaced or forged without the key (or signed by another key)"


def _anchor(con: sqlite3.Connection) -> sqlite3.Row | None:
    row: sqlite3.Row | None = con.execute("SELECT * FROM audit_pruned ORDER BY upto DESC LIMIT 1").fetchone()
    return row


def _signed_prune(key: AuditKey, anchor: sqlite3.Row) -> bool:
    fields = ("prune", anchor["upto"], anchor["link"], anchor["before"], anchor["at"], anchor["counts"])
    return bool(anchor["key_id"] == key.key_id and anchor["mac"] == mac(key, *fields, anchor["key_id"]))


def _walk(
    con: sqlite3.Connection, upto: int, prev: str | None, findings: list[Finding]
) -> tuple[dict[int, str], dict[tuple[str, int], tuple[int, str]]]:
    """Recompute every link after the prune point; returns each entry's stored link by position, and the
    latest (pos, digest) of each chained row."""
    links: dict[int, str] = {}
    latest: dict[tuple[str, int], tuple[int, str]] = {}
    expected = upto + 1
    for e in con.execute("SELECT * FROM audit ORDER BY pos"):
        pos = e["pos"]
        if pos <= upto:
            findings.append(Finding("inserted", f"entry {pos}", "it sits before the prune point", pos))
            continue
        if pos != expected:
            findings.append(Finding("deleted", f"entries {expected}..{pos - 1}", "gone from the chain", expected))
            prev = None  # nothing to check this entry's link against: resume from it
        fields = (pos, e["kind"], e["ref"], e["at"], e["who"], e["what"], e["digest"])
        if prev is not None and entry_link(prev, fields) != e["link"]:
            detail = "it does not follow from the entry before it: edited, inserted or moved"
            findings.append(Finding("chain altered", f"entry {pos} ({e['kind']} {e['ref']})", detail, pos))
        links[pos], prev, expected = e["link"], e["link"], pos + 1
        if e["kind"] in TABLES:
            latest[(e["kind"], e["ref"])] = (pos, e["digest"])
    return links, latest


def _check_checkpoints(
    checkpoints: list[sqlite3.Row], links: dict[int, str], key: AuditKey, upto: int, findings: list[Finding]
) -> int:
    """Findings for forged, dangling or contradicted checkpoints; returns the last position one claims to sign."""
    end = max(links, default=upto)
    signed = upto
    for cp in checkpoints:
        pos = cp["pos"]
        if cp["key_id"] != key.key_id:
            detail = f"signed by key {cp['key_id']}, not this key ({key.key_id}): another OC_AUDIT_KEY, or forged"
            findings.append(Finding("forged checkpoint", f"the checkpoint at entry {pos}", detail, pos))
        elif cp["mac"] != mac(key, "checkpoint", pos, cp["link"], cp["at"], cp["key_id"]):
            findings.append(Finding("forged checkpoint", f"the checkpoint at entry {pos}", _UNSIGNED, pos))
        elif pos > end:
            detail = f"it signs entry {pos} but the chain ends at {end}: records were cut from the tail"
            findings.append(Finding("truncated", f"entries {end + 1}..{pos}", detail, end + 1))
        elif pos > upto and links.get(pos) is not None and links[pos] != cp["link"]:
            detail = "the chain no longer leads to what this signed checkpoint says: rewritten without the key"
            findings.append(Finding("rewritten", f"entries up to {pos}", detail, pos))
        signed = max(signed, pos)  # a forged one is named above: what follows it is not also "unsigned"
    return signed


def _check_rows(
    con: sqlite3.Connection, latest: dict[tuple[str, int], tuple[int, str]], findings: list[Finding]
) -> None:
    for kind, (table, column) in TABLES.items():
        expected = {ref: chained for (k, ref), chained in latest.items() if k == kind}
        owner_of = {digest: ref for ref, (_, digest) in expected.items()}
        for ref, digest in digests(con, kind):
            chained = expected.pop(ref, None)
            if chained is not None and chained[1] == digest:
                continue
            row = con.execute(f"SELECT * FROM {table} WHERE {column} = ?", (ref,)).fetchone()
            where = f"{table} row {ref}{_describe(row, kind)}"
            other = owner_of.get(digest)
            if chained is None:
                detail = "it was never chained: inserted (or written with OC_AUDIT off)"
                findings.append(Finding("inserted", where, detail))
            elif other is not None and other != ref:
                findings.append(Finding("swapped", where, f"it holds what was logged as row {other}", chained[0]))
            else:
                findings.append(Finding("edited", where, "it differs from what was logged", chained[0]))
        for ref, (pos, _) in expected.items():
            findings.append(Finding("deleted", f"{table} row {ref}", f"logged at entry {pos}, now gone", pos))


def _describe(row: sqlite3.Row, kind: str) -> str:
    if kind == "result":
        return f" (run {row['run_id']}, prompt {row['prompt_id']}, model {row['model']}, sample {row['sample']})"
    if kind == "attempt":
        return f" (run {row['run_id']}, request {row['request_id']}, attempt {row['attempt']})"
    return f" (run {row['run_id']})"


def _check_head(published: str, links: dict[int, str], upto: int, findings: list[Finding]) -> None:
    pos_text, _, link = published.partition(":")
    if not pos_text.isdigit() or len(link) != 64:
        raise InvalidRequestError(f"a published head is 'position:link' (as verify prints it), got {published!r}")
    pos = int(pos_text)
    if pos <= upto:
        return  # pruned since: the signed prune record stands for it
    if pos not in links:
        detail = f"the published head {pos} is past the end of the chain: records were cut from the tail"
        findings.append(Finding("truncated", f"entries up to {pos}", detail, pos))
    elif links[pos] != link:
        detail = "the chain no longer leads to the published head: history was rewritten"
        findings.append(Finding("rewritten", f"entries up to {pos}", detail, pos))


def export(con: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """The trail as JSON-ready dicts: the prune record, then each entry (with the row it covers, when it is
    that row's latest) followed by the checkpoint that signed it."""
    anchor = _anchor(con)
    if anchor is not None:
        yield {"type": "pruned", **dict(anchor), "counts": json.loads(anchor["counts"])}
    latest = {
        (r["kind"], r["ref"]): r["pos"]
        for r in con.execute("SELECT kind, ref, MAX(pos) AS pos FROM audit GROUP BY kind, ref")
    }
    checkpoints = {r["pos"]: dict(r) for r in con.execute("SELECT * FROM audit_checkpoints")}
    for e in con.execute("SELECT * FROM audit ORDER BY pos").fetchall():
        entry = {"type": "entry", **dict(e), "who": json.loads(e["who"]), "what": json.loads(e["what"])}
        if e["kind"] in TABLES and latest.get((e["kind"], e["ref"])) == e["pos"]:
            table, column = TABLES[e["kind"]]
            row = con.execute(f"SELECT * FROM {table} WHERE {column} = ?", (e["ref"],)).fetchone()
            entry["record"] = dict(row) if row is not None else None
        yield entry
        if e["pos"] in checkpoints:
            yield {"type": "checkpoint", **checkpoints[e["pos"]]}


def prune(con: sqlite3.Connection, auditor: Auditor, before: float) -> Pruned:
    """Delete the chain's longest prefix logged before *before*, and the rows only it covered, inside the
    caller's transaction; a signed prune record keeps what is left verifiable.  A trail that does not verify
    is refused (pruning re-signs: it must not launder damage)."""
    report = verify(con, auditor.key)
    if not report.ok:
        raise InvalidRequestError(
            f"the audit trail does not verify ({report.first}); prune refuses to sign over it: "
            "run `opencode-lab audit verify` and keep an export of the log as it is"
        )
    old = _anchor(con)
    start = old["upto"] if old is not None else 0
    upto, link = start, old["link"] if old is not None else GENESIS
    for e in con.execute("SELECT pos, at, link FROM audit WHERE pos > ? ORDER BY pos", (start,)):
        if e["at"] >= before:
            break
        upto, link = e["pos"], e["link"]
    if upto == start:
        return Pruned(upto)
    counts = _delete_rows(con, upto)
    con.execute("DELETE FROM audit WHERE pos <= ?", (upto,))
    con.execute("DELETE FROM audit_checkpoints WHERE pos <= ?", (upto,))
    at, blob = time.time(), json.dumps(counts, sort_keys=True)
    key = auditor.key
    signature = mac(key, "prune", upto, link, before, at, blob, key.key_id)
    con.execute(
        "INSERT INTO audit_pruned (upto, link, before, at, counts, key_id, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (upto, link, before, at, blob, key.key_id, signature),
    )
    record = hashlib.sha256(canonical(["prune", upto, link, before, at, blob])).hexdigest()
    auditor.append(con, [("prune", upto, record)])
    # runs whose entries were pruned enter the chain again, as they are
    auditor.chain(con, "run", "rowid NOT IN (SELECT ref FROM audit WHERE kind = 'run')")
    return Pruned(upto, counts)


def _delete_rows(con: sqlite3.Connection, upto: int) -> dict[str, int]:
    """Delete results and attempts whose every entry is at or before *upto* (runs are kept: a session may still
    write to its run, and a run is a line)."""
    counts: dict[str, int] = {}
    for kind in ("result", "attempt"):
        table, column = TABLES[kind]
        gone = con.execute(
            f"DELETE FROM {table} WHERE {column} IN (SELECT ref FROM audit WHERE kind = ? GROUP BY ref "
            "HAVING MAX(pos) <= ?)",
            (kind, upto),
        )
        counts[table] = gone.rowcount
    return counts
