"""The clearing house's metrics (GET /metrics with [clearinghouse] metrics_token): requests, token
checks, each entry's append latency (queue wait and its batch's commit), batches, and the tree size."""
from __future__ import annotations

from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import Metric

from ..metrics import ServiceMetrics, family
from . import store

APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ClearingHouseMetrics(ServiceMetrics):
    def __init__(self, house: Any) -> None:
        super().__init__("clearinghouse")
        self.house = house
        self.append_latency = Histogram(
            "hks_clearinghouse_append_duration_seconds",
            "time from an entry's arrival at the sequencer to its batch's commit (signed checkpoint included)",
            buckets=APPEND_BUCKETS, registry=self.registry)
        house.sequencer.observe = self.append_latency.observe

    async def families(self) -> list[Metric]:
        tree = await self.house.db.read(store.head)
        sequencer = self.house.sequencer
        return [
            family("hks_clearinghouse_tree_size", "gauge", "entries in the log (the newest checkpoint's size)",
                   [({}, tree.size)]),
            family("hks_clearinghouse_entries_appended", "counter", "entries appended by this process",
                   [({}, sequencer.appended)]),
            family("hks_clearinghouse_batches", "counter", "batches committed by this process",
                   [({}, sequencer.batches)]),
            family("hks_clearinghouse_queued_entries", "gauge", "entries waiting for the next batch",
                   [({}, len(sequencer._queue))]),
        ]
