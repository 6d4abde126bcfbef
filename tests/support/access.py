"""Helpers of the access-policy and stored-secret security tests (tests/security/)."""
from __future__ import annotations

import json

import sqlalchemy as sa

from support.nodes import NodeProcess


def held_token(node: NodeProcess, transfer_id: str) -> str:
    """The token `node` presents for its transfer `transfer_id` (a consumer's pull token, a
    provider's push token). A node must keep the token it presents: it is in its own database."""
    engine = sa.create_engine(node.settings.database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        address = conn.execute(sa.text("SELECT data_address FROM transfers WHERE id = :i"), {"i": transfer_id}).scalar()
    engine.dispose()
    return {p["name"]: p["value"] for p in json.loads(address)["endpointProperties"]}["authorization"]
