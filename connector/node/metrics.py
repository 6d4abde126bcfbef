"""The participant node's metrics (`GET /api/v1/metrics`): counters and histograms kept in
process (requests, token checks, policy decisions, data-plane bytes) and gauges read from the
database at scrape time (processes by state, the outbox, its lag and dead letters, accesses,
the clearing house's consistency and audit)."""
from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from prometheus_client.core import Metric

from ..metrics import ServiceMetrics, family
from ..store.tables import access_log, negotiations, outbox, transfers

DECISION_OUTCOMES = ("permit", "deny")
DATA_DIRECTIONS = ("served", "pushed", "received")


class NodeMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("node")
        self.policy_decisions = Counter(
            "hks_policy_decisions", "usage-policy evaluations by outcome (access, contract and agreement policies; "
            "catalog decisions served from the decision cache are not evaluations)",
            ["outcome"], registry=self.registry)
        for outcome in DECISION_OUTCOMES:
            self.policy_decisions.labels(outcome)
        self.dataplane_bytes = Counter(
            "hks_dataplane_bytes", "data-plane bytes: served to pulls, pushed to consumers, received by push",
            ["direction"], registry=self.registry)
        for direction in DATA_DIRECTIONS:
            self.dataplane_bytes.labels(direction)

    def decided(self, permitted: bool) -> None:
        self.policy_decisions.labels("permit" if permitted else "deny").inc()

    def data_bytes(self, direction: str, count: int) -> None:
        if count > 0:
            self.dataplane_bytes.labels(direction).inc(count)


async def node_families(node: Any) -> list[Metric]:
    """The gauges read at scrape time (names kept from the hand-written exposition)."""
    def counts(conn):  # noqa: ANN001, ANN202
        def by(table, *cols):  # noqa: ANN001, ANN202
            return conn.execute(sa.select(*[table.c[c] for c in cols], sa.func.count()).group_by(
                *[table.c[c] for c in cols])).all()
        to_house = outbox.c.recipient.is_(None)  # the clearing house's lane (no bound literals: PostgreSQL groups it)
        return {"negotiations": by(negotiations, "role", "state"), "transfers": by(transfers, "role", "state"),
                "outbox": by(outbox, "status"), "accesses": by(access_log, "permitted"),
                "dead": conn.execute(sa.select(outbox.c.kind, sa.func.count()).where(outbox.c.status == "dead")
                                     .group_by(outbox.c.kind)).all(),
                "oldest": conn.execute(sa.select(to_house, sa.func.min(outbox.c.created_at))
                                       .where(outbox.c.status == "pending").group_by(to_house)).all()}
    data = await node.db.read(counts)
    now = time.time()
    out = [
        family("hks_negotiations", "gauge", "contract negotiations by role and state",
               [({"role": r, "state": st}, n) for r, st, n in data["negotiations"]]),
        family("hks_transfers", "gauge", "transfer processes by role and state",
               [({"role": r, "state": st}, n) for r, st, n in data["transfers"]]),
        family("hks_outbox_messages", "gauge", "outbox messages by status",
               [({"status": st}, n) for st, n in data["outbox"]]),
    ]
    oldest = {"clearinghouse" if house else "protocol": at for house, at in data["oldest"]}
    out.append(family("hks_outbox_lag_seconds", "gauge",
                      "age of the oldest message not yet delivered, by lane (protocol, clearinghouse); 0 when none",
                      [({"lane": lane}, max(0.0, now - oldest[lane]) if oldest.get(lane) else 0)
                       for lane in ("protocol", "clearinghouse")]))
    dead: dict[str, int] = {}
    for kind, n in data["dead"]:
        name = str(kind).split(":", 1)[0]
        dead[name] = dead.get(name, 0) + n
    out.append(family("hks_outbox_dead_letters", "gauge",
                      "messages given up at their delivery deadline, by message type (GET /api/v1/dead-letters)",
                      [({"kind": k}, n) for k, n in sorted(dead.items())] or [({}, 0)]))
    out.append(family("hks_data_accesses", "counter", "data-plane accesses decided, by outcome",
                      [({"permitted": str(bool(p)).lower()}, n) for p, n in data["accesses"]]))
    out.append(family("hks_longpoll_tracked_processes", "gauge",
                      "processes the long-poll notifiers hold state for (only while someone waits on them)",
                      [({"kind": "negotiation"}, len(node.negotiations.notifier)),
                       ({"kind": "transfer"}, len(node.transfers.notifier))]))
    compliance = getattr(node, "compliance", None)  # the cross-border filings (connector/compliance)
    filings = await compliance.filing_counts() if compliance is not None else {}
    out.append(family("hks_compliance_filings", "gauge",
                      "GBA Standard Contract filings of this party, by status "
                      "(due: within 3 working days; overdue: past the 10-working-day deadline)",
                      [({"status": k}, v) for k, v in filings.items()]))
    ch = node.clearinghouse
    if ch is not None:
        status = await ch.status()
        audit = status.get("audit") or {}
        bad = audit.get("firstBadEntry") or {}
        out += [
            family("hks_clearinghouse_consistent", "gauge",
                   "1 while every checkpoint seen extends the one before; 0 after an alarm",
                   [({}, int(status["consistent"]))]),
            family("hks_clearinghouse_receipts", "gauge", "verified receipts kept", [({}, status["receipts"])]),
            family("hks_clearinghouse_entries_pending", "gauge", "log entries not yet accepted",
                   [({}, status["pending"])]),
            family("hks_clearinghouse_checkpoint_size", "gauge", "size of the newest checkpoint seen",
                   [({}, status["checkpointSize"])]),
            family("hks_clearinghouse_audit_ok", "gauge",
                   "1 if the newest audit of the kept receipts passed, 0 if it failed or could not be completed",
                   [({}, int(bool(audit.get("ok"))))] if audit else []),
            family("hks_clearinghouse_audit_first_bad_entry", "gauge",
                   "leaf index of the first bad entry the newest audit found (-1: none)",
                   [({}, bad["leafIndex"] if bad.get("leafIndex") is not None else -1)]),
            family("hks_clearinghouse_audit_last_run_timestamp_seconds", "gauge", "when the newest audit ran",
                   [({}, audit["at"])] if audit else []),
        ]
    return out
