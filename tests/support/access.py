"""Helpers of the access-policy and stored-secret security tests (tests/security/)."""
from __future__ import annotations

import json

import sqlalchemy as sa

from support.nodes import NodeProcess


def held_pull_token(consumer: NodeProcess, transfer_id: str) -> str:
    """The pull token a provider gave `consumer` for its transfer `transfer_id`. The consumer
    must keep the token it presents: it is in the consumer's own database."""
    engine = sa.create_engine(consumer.settings.database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        address = conn.execute(sa.text("SELECT data_address FROM transfers WHERE id = :i"), {"i": transfer_id}).scalar()
    engine.dispose()
    return {p["name"]: p["value"] for p in json.loads(address)["endpointProperties"]}["authorization"]
