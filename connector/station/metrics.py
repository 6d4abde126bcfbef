"""The station's gauges read at scrape time (GET /metrics, admin token)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client.core import Metric

from ..metrics import family

STATUSES = ("active", "revoked")


def station_families(station: Any) -> list[Metric]:
    by_status = Counter(str(row["status"]) for row in station.participants.values())
    return [
        family("hks_station_participants", "gauge", "enrolled participants by status",
               [({"status": st}, by_status.get(st, 0)) for st in sorted(set(STATUSES) | set(by_status))]),
        family("hks_station_registry_entries", "gauge", "self-descriptions in the registry",
               [({}, len(station.registered))]),
        family("hks_station_revocations", "gauge", "entries in the revocation feed",
               [({}, len(station.revocation_feed))]),
        family("hks_station_signing_keys", "gauge", "token-signing keys published in the JWKS",
               [({}, len(station.public_keys))]),
        # dead: refused by the clearing house or failing for long (still retried; GET /admin/certificates/log)
        family("hks_station_certificate_log_entries", "gauge",
               "certificate log entries the station sends the clearing house, by state",
               [({"state": st}, n) for st, n in sorted(station.log_sender.counts.items())]),
    ]
