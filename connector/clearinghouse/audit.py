"""``connector audit verify``: check the clearing house from outside, trusting only its verifier key.

For one process (``--process``, as a party or an auditor) or the whole log (``--all``,
auditors only) it fetches the entries against one signed checkpoint and checks, per entry:
the JWS signature with the sender's public key, the canonical payload and schema, the
submitter, and the inclusion in the signed tree (per-entry proofs for a process; for the
whole log, the root recomputed from every leaf, with per-entry proofs to name the first
bad one when it differs).  With ``--since`` it checks that the log is an append-only
extension of an older checkpoint; if ``--since`` is an audit state saved by ``--save``,
it also names the first entry that is not what it was.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from ..ledger.checkpoint import Checkpoint
from ..ledger.merkle import CompactTree
from .client import ClearingHouseClient
from .keys import ParticipantKeyError, ParticipantKeys
from .verify import (
    AuditState,
    EntryVerdict,
    LogVerificationError,
    check_consistency,
    first_divergence,
    open_checkpoint,
    senders_of,
    verify_item,
)

PAGE = 1000
PROOF_PAGE = 200


@dataclass
class AuditReport:
    scope: str
    process_id: str | None
    checkpoint: str = ""
    tree_size: int = 0
    checked: int = 0
    failures: list[tuple[int | None, str]] = field(default_factory=list)
    since_size: int | None = None
    leaves: dict[int, bytes] = field(default_factory=dict)  # verified entries: what --save remembers
    seen: dict[int, bytes] = field(default_factory=dict)  # every readable entry: compared with --since state
    origin: str = ""
    remember: bool = True  # keep leaf hashes (for --save and a --since state); off saves memory on big logs

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def first_bad(self) -> tuple[int | None, str] | None:
        indexed = [f for f in self.failures if f[0] is not None]
        if indexed:
            return min(indexed, key=lambda f: f[0])  # type: ignore[arg-type, return-value]
        return self.failures[0] if self.failures else None

    def fail(self, index: int | None, reason: str) -> None:
        self.failures.append((index, reason))

    def verdict_line(self) -> str:
        what = f"process {self.process_id}" if self.scope == "process" else "the whole log"
        if self.ok:
            since = f", consistent with the checkpoint of size {self.since_size}" if self.since_size is not None else ""
            return (f"verdict: OK: {self.checked} entries of {what} verified against the signed checkpoint "
                    f"of size {self.tree_size}{since}")
        index, reason = self.first_bad  # type: ignore[misc]
        where = f"first bad entry #{index}: " if index is not None else ""
        return f"verdict: FAILED: {what}: {where}{reason} ({len(self.failures)} problem(s))"

    def to_json(self) -> dict[str, Any]:
        bad = self.first_bad
        return {"ok": self.ok, "scope": self.scope, "processId": self.process_id, "treeSize": self.tree_size,
                "entries": self.checked, "problems": len(self.failures),
                "firstBadEntry": bad[0] if bad else None, "reason": bad[1] if bad else None,
                "sinceSize": self.since_size, "checkpoint": self.checkpoint}

    def state(self) -> AuditState:
        return AuditState(checkpoint=self.checkpoint, origin=self.origin, scope=self.scope,
                          process_id=self.process_id, leaves=dict(self.leaves))


async def resolve_keys(keys: ParticipantKeys, senders: set[str]) -> dict[str, object]:
    out: dict[str, object] = {}

    async def one(pid: str) -> None:
        try:
            out[pid] = await keys.key_for(pid)
        except ParticipantKeyError as exc:
            out[pid] = str(exc)

    await asyncio.gather(*(one(p) for p in senders))
    return out


def _open_head(client: ClearingHouseClient, report: AuditReport, page: dict) -> Checkpoint | None:
    try:
        cp = open_checkpoint(page.get("checkpoint"), client.verifier_key, origin=client.origin)
    except LogVerificationError as exc:
        report.fail(None, str(exc))
        return None
    if page.get("treeSize") != cp.size:
        report.fail(None, f"the listing says tree size {page.get('treeSize')!r} but its checkpoint is for {cp.size}")
        return None
    report.checkpoint, report.tree_size = page["checkpoint"], cp.size
    return cp


def _emit(verdict: EntryVerdict, emit: Callable[[str], None], quiet: bool, report: AuditReport) -> None:
    report.checked += 1
    if not verdict.ok:
        report.fail(verdict.index, verdict.reason)
    if report.remember and verdict.index is not None and verdict.leaf_hash is not None:
        report.seen.setdefault(verdict.index, verdict.leaf_hash)
        if verdict.ok:
            report.leaves[verdict.index] = verdict.leaf_hash
    if not quiet or not verdict.ok:
        emit(verdict.line())


async def audit_process(client: ClearingHouseClient, process_id: str, keys: ParticipantKeys, *,
                        since: str | AuditState | None = None, emit: Callable[[str], None] = print,
                        quiet: bool = False, remember: bool = True) -> AuditReport:
    report = AuditReport("process", process_id, origin=_origin(client), remember=remember)
    page = await client.process_page(process_id, limit=PROOF_PAGE)
    cp = _open_head(client, report, page)
    if cp is None:
        return report
    items = list(page.get("entries") or [])
    while page.get("next") is not None:
        page = await client.process_page(process_id, after=page["next"], limit=PROOF_PAGE, size=cp.size)
        if page.get("checkpoint") != report.checkpoint:
            report.fail(None, "the log changed the checkpoint of a fixed tree size between pages")
            return report
        items.extend(page.get("entries") or [])
    key_map = await resolve_keys(keys, senders_of(items))
    last = -1
    parties: tuple[str, str] | None = None
    for item in items:
        verdict = verify_item(item, tree_size=cp.size, root=cp.root_hash, keys=key_map, process_id=process_id)
        if verdict.ok and verdict.index is not None and verdict.index <= last:
            verdict = EntryVerdict(verdict.index, False, f"listed out of order (after #{last})", verdict.entry,
                                   verdict.leaf_hash)
        if verdict.ok and verdict.entry is not None:
            named = (verdict.entry["provider"], verdict.entry["consumer"])
            if parties is None:
                parties = named
            elif named != parties:
                verdict = EntryVerdict(verdict.index, False, f"names other parties than the process's first entry "
                                                             f"({parties[0]}, {parties[1]})", verdict.entry,
                                       verdict.leaf_hash)
        if verdict.index is not None:
            last = max(last, verdict.index)
        _emit(verdict, emit, quiet, report)
    await _check_since(client, report, cp, since)
    return report


async def audit_all(client: ClearingHouseClient, keys: ParticipantKeys, *, since: str | AuditState | None = None,
                    emit: Callable[[str], None] = print, quiet: bool = False, remember: bool = True) -> AuditReport:
    report = AuditReport("all", None, origin=_origin(client), remember=remember)
    page = await client.entries_page(start=0, limit=PAGE)
    cp = _open_head(client, report, page)
    if cp is None:
        return report
    tree = CompactTree()
    expected = 0
    contiguous = True
    while True:
        items = list(page.get("entries") or [])
        key_map = await resolve_keys(keys, senders_of(items))
        for item in items:
            verdict = verify_item(item, tree_size=cp.size, root=cp.root_hash, keys=key_map, check_proof=False)
            index = verdict.index
            if index is not None and index != expected:
                if index > expected:
                    report.fail(expected, f"entry {expected} is missing from the log" +
                                (f" (and {index - expected - 1} more after it)" if index - expected > 1 else ""))
                    emit(f"FAIL #{expected} missing from the log")
                else:
                    verdict = EntryVerdict(index, False, f"listed again or out of order (expected #{expected})",
                                           verdict.entry, verdict.leaf_hash)
                contiguous = False
            if index is not None and index >= expected:
                expected = index + 1
            if contiguous and verdict.leaf_hash is not None:
                tree.append(verdict.leaf_hash)
            elif verdict.leaf_hash is None:
                contiguous = False
            _emit(verdict, emit, quiet, report)
        if page.get("next") is None:
            break
        page = await client.entries_page(start=page["next"], limit=PAGE, size=cp.size)
        if page.get("checkpoint") != report.checkpoint:
            report.fail(None, "the log changed the checkpoint of a fixed tree size between pages")
            return report
    if expected < cp.size:
        report.fail(expected, f"entries {expected} to {cp.size - 1} are missing from the log "
                              f"(the signed tree has {cp.size})")
        emit(f"FAIL #{expected} missing from the log")
        contiguous = False
    if not contiguous or tree.size != cp.size or tree.root() != cp.root_hash:
        await _name_first_uncommitted(client, report, cp, emit)
    await _check_since(client, report, cp, since)
    return report


async def _name_first_uncommitted(client: ClearingHouseClient, report: AuditReport, cp: Checkpoint,
                                  emit: Callable[[str], None]) -> None:
    """The leaves do not give the signed root: find, with per-entry proofs, the first entry that is not in it."""
    start = 0
    while True:
        page = await client.entries_page(start=start, limit=PROOF_PAGE, size=cp.size, proofs=True)
        items = list(page.get("entries") or [])
        for item in items:
            verdict = verify_item(item, tree_size=cp.size, root=cp.root_hash, keys=None, check_proof=True)
            if not verdict.ok and "not in the signed tree" in verdict.reason:
                report.fail(verdict.index, verdict.reason)
                report.leaves.pop(verdict.index, None)  # type: ignore[arg-type]
                emit(verdict.line())
                return
        if page.get("next") is None:
            break
        start = page["next"]
    if not any(i is not None for i, _ in report.failures):
        report.fail(None, "the entries do not hash to the signed root")


async def _check_since(client: ClearingHouseClient, report: AuditReport, cp: Checkpoint,
                       since: str | AuditState | None) -> None:
    if since is None:
        return
    state = since if isinstance(since, AuditState) else None
    note = state.checkpoint if state is not None else since
    try:
        old = open_checkpoint(note, client.verifier_key, origin=client.origin)
    except LogVerificationError as exc:
        report.fail(None, f"the --since checkpoint: {exc}")
        return
    report.since_size = old.size
    try:
        proof = await client.consistency_proof(old.size, cp.size) if 0 < old.size < cp.size else []
        check_consistency(old, cp, proof)
    except LogVerificationError as exc:
        hint = "" if state is not None else " (an audit state saved with --save names the first changed entry)"
        report.fail(exc.index, f"{exc}{hint}")
    except Exception as exc:  # noqa: BLE001 - EntryRefused etc.: the log cannot prove it
        report.fail(None, f"the log gives no consistency proof from size {old.size} to {cp.size}: {exc}")
    if state is not None:
        if state.scope == "process" and state.process_id != report.process_id:
            report.fail(None, f"the --since state is for process {state.process_id}, not {report.process_id}")
            return
        remembered = state.leaves
        if state.scope == "all" and report.scope == "process":  # only this process's positions are visible
            remembered = {i: h for i, h in remembered.items() if i in report.seen}
        divergence = first_divergence(remembered, report.seen, cp.size)
        if divergence is not None:
            report.fail(*divergence)


def _origin(client: ClearingHouseClient) -> str:
    from .verify import _key  # the verifier key's name is the origin
    return client.origin or _key(client.verifier_key).name
