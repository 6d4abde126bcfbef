"""The `tck` profile: seeds the ids the Eclipse DSP TCK expects, scripts the node's
behaviour per dataset as the TCK scenarios need, and exposes the initiation webhooks
(reference TCK.md §1.3, §2). Enabled only by [tck] enabled = true."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from ..protocol.negotiation import Event, Role
from ..protocol.transfer import TransferEvent
from ..store.tables import agreements, assets, negotiations, policies
from .automation import Action, DefaultStrategy, View

log = logging.getLogger("connector.tck")
TCK_POLICY = {"permission": [{"action": "use"}]}
CATALOG_DATASETS = ("CAT0101", "CAT0102")
PROVIDER_DATASETS = tuple(f"ACN0{g}0{i}" for g, n in ((1, 4), (2, 7), (3, 4)) for i in range(1, n + 1))

A, O, T, AG, F, V, R = Event.ACCEPT, Event.OFFER, Event.TERMINATE, Event.AGREE, Event.FINALIZE, Event.VERIFY, Event.REQUEST

# dataset -> {event received (or "start") -> what to send}. Absent: do nothing.
PROVIDER_SCRIPT: dict[str, dict[Any, list[Event]]] = {
    "ACN0101": {R: [O]},
    "ACN0102": {R: [O], "counter": [T]},
    "ACN0103": {R: [O], A: [AG], V: [F]},
    "ACN0104": {R: [AG], V: [F]},
    "ACN0201": {R: [T]},
    "ACN0202": {},
    "ACN0203": {R: [AG]},
    "ACN0204": {R: [O]},
    "ACN0205": {R: [O, T]},
    "ACN0206": {R: [O], A: [T]},
    "ACN0207": {R: [AG], V: [T]},
    "ACN0301": {R: [AG], V: [F]},
    "ACN0302": {R: [O]},
    "ACN0303": {R: [O]},
    "ACN0304": {R: [O]},
}
CONSUMER_SCRIPT: dict[str, dict[Any, list[Event]]] = {
    "ACNC0101": {O: [A], AG: [V]},
    "ACNC0102": {O: [R]},
    "ACNC0103": {O: [T]},
    "ACNC0104": {AG: [V]},
    "ACNC0202": {"start": [T]},
    "ACNC0203": {AG: [T]},
    "ACNC0205": {O: [A]},
    "ACNC0206": {AG: [V]},
    "ACNC0304": {O: [A]},
    "ACNC0305": {O: [A]},
    "ACNC0306": {O: [A]},
}


class TckStrategy:
    """Scripted for the TCK's dataset ids; the default strategy for everything else."""

    def __init__(self) -> None:
        self.default = DefaultStrategy()

    def _script(self, view: View) -> dict[Any, list[Event]] | None:
        table = PROVIDER_SCRIPT if view.role is Role.PROVIDER else CONSUMER_SCRIPT
        if view.dataset_id in table:
            return table[view.dataset_id]
        if view.dataset_id and view.dataset_id.startswith("ACN"):
            return {}
        return None

    def after_received(self, view: View, received: Event) -> list[Action]:
        script = self._script(view)
        if script is None:
            return self.default.after_received(view, received)
        key: Any = received
        if received is Event.REQUEST and view.role is Role.PROVIDER and view.counter_requests:
            key = "counter"
        return [Action(e, "scripted by the TCK profile" if e is Event.TERMINATE else None) for e in script.get(key, [])]

    def after_started(self, view: View) -> list[Action]:
        script = self._script(view) or {}
        return [Action(e, "scripted by the TCK profile") for e in script.get("start", [])]


async def seed(node: Any) -> None:
    """Idempotent: assets, one policy and offers for the TCK's ids."""
    have = await node.db.read(lambda conn: {r[0] for r in conn.execute(sa.select(assets.c.id))})
    if "tck-use" not in {p["id"] for p in await node.catalog.list_rows(policies)}:
        await node.catalog.create_policy("tck-use", TCK_POLICY)
    for dataset in CATALOG_DATASETS + PROVIDER_DATASETS:
        if dataset in have:
            continue
        # a source, so that a transfer of it can start (an asset without one is refused at transfer start)
        await node.catalog.create_asset({"id": dataset, "title": f"TCK dataset {dataset}", "contentType": "application/json",
                                         "dataAddress": {"type": "file", "path": f"tck/{dataset}.json"}})
        offer_id = f"CD123:{dataset}:456" if dataset.startswith("ACN") else f"offer{dataset}"
        await node.catalog.create_offer({"id": offer_id, "assetIds": [dataset], "accessPolicyId": "tck-use",
                                         "contractPolicyId": "tck-use"})
    log.warning("TCK profile enabled: seeded TCK datasets and exposed /tck webhooks (unauthenticated)")


# Transfers (TCK TP and TP_C): agreement id -> what this node does, as provider after
# the request, or as consumer after the provider's start.
_ST, _CO, _SU, _TE = TransferEvent.START, TransferEvent.COMPLETE, TransferEvent.SUSPEND, TransferEvent.TERMINATE
PROVIDER_TRANSFERS: dict[str, list[TransferEvent]] = {
    "ATP0101": [_ST, _TE], "ATP0102": [_ST, _CO], "ATP0103": [_ST, _SU, _TE], "ATP0104": [_ST, _SU, _ST, _CO],
    "ATP0105": [_TE], "ATP0201": [_ST], "ATP0202": [_ST], "ATP0203": [_ST], "ATP0204": [_ST], "ATP0205": [],
    "ATP0301": [], "ATP0302": [], "ATP0303": [_ST], "ATP0304": [_ST], "ATP0305": [_ST], "ATP0306": [_ST],
}
CONSUMER_TRANSFERS: dict[str, list[TransferEvent]] = {
    "ATPC0201": [_TE], "ATPC0202": [_CO], "ATPC0203": [_SU, _TE],
}
# agreement id -> what this node does as consumer right after its own request (TP_C:02-05)
CONSUMER_TRANSFER_START: dict[str, list[TransferEvent]] = {"ATPC0205": [_TE]}
TCK_PARTICIPANT = "TCK_PARTICIPANT"


def scripted_transfer_start(row: dict) -> list:
    return [(e, "scripted by the TCK profile" if e in (_TE, _SU) else None)
            for e in PROVIDER_TRANSFERS.get(row["agreement_id"], [_ST])]


def scripted_transfer_reaction(row: dict, event: TransferEvent) -> list:
    if row["role"] == "consumer" and event is _ST and row["state"] == "STARTED":
        return [(e, "scripted by the TCK profile") for e in CONSUMER_TRANSFERS.get(row["agreement_id"], [])]
    return []


def _seed_agreement(conn: Any, agreement_id: str, *, role: str, me: str, peer: str, address: str, asset: str,
                    offer_id: str | None = None) -> None:
    """A finalized negotiation holding `agreement_id`, as the TCK's transfer tests presume; as
    provider, made under the seeded offer `offer_id`, whose access policy is decided at each use."""
    if conn.execute(sa.select(agreements.c.id).where(agreements.c.id == agreement_id)).first() is not None:
        if offer_id is not None:  # seeded before agreements kept their offer
            conn.execute(sa.update(agreements).where(agreements.c.id == agreement_id, agreements.c.offer_id.is_(None))
                         .values(offer_id=offer_id))
        return
    now = time.time()
    pid = f"urn:uuid:{uuid.uuid4()}"
    policy = {"@id": agreement_id, "@type": "Agreement", "target": asset, "assigner": me if role == "provider" else peer,
              "assignee": peer if role == "provider" else me, **TCK_POLICY}
    conn.execute(negotiations.insert(), {
        "id": pid, "role": role, "state": "FINALIZED", "version": 1, "dsp_version": "2025-1",
        "counterparty_id": peer, "counterparty_address": address, "consumer_pid": pid, "provider_pid": pid,
        "dataset_id": asset, "offer_id": offer_id, "offer": None, "agreement": policy, "last_in_digest": None,
        "last_in_response": None, "termination": None, "error": None, "created_at": now, "updated_at": now})
    conn.execute(agreements.insert(), {
        "id": agreement_id, "negotiation_id": pid, "role": role,
        "provider_id": me if role == "provider" else peer, "consumer_id": peer if role == "provider" else me,
        "asset_id": asset, "policy": policy, "created_at": now, "offer_id": offer_id})


async def seed_transfers(node: Any) -> None:
    def seed(conn: Any) -> None:
        for agreement_id in PROVIDER_TRANSFERS:
            _seed_agreement(conn, agreement_id, role="provider", me=node.participant_id, peer=TCK_PARTICIPANT,
                            address="http://tck.invalid", asset="CAT0101", offer_id="offerCAT0101")
    await node.db.transaction(seed)


def routes(node: Any) -> list[web.RouteDef]:
    async def negotiation_request(request: web.Request) -> web.Response:
        try:
            doc = await request.json()
            provider_id, offer_id = doc["providerId"], doc["offerId"]
            dataset_id, address = doc["datasetId"], doc["connectorAddress"]
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"expected providerId, offerId, datasetId, connectorAddress: {exc}"}, status=400)
        offer = {"@id": offer_id, "@type": "Offer", "target": dataset_id, "assigner": provider_id,
                 "permission": [{"action": "use"}]}
        row = await node.negotiations.start(version="2025-1", provider_base=address, provider_id=provider_id,
                                            dataset_id=dataset_id, offer=offer)
        return web.json_response({"id": row["id"]}, status=200)

    async def transfer_request(request: web.Request) -> web.Response:
        try:
            doc = await request.json()
            provider_id, agreement_id = doc["providerId"], doc["agreementId"]
            fmt, address = doc.get("format") or "HttpData-PULL", doc["connectorAddress"]
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"expected providerId, agreementId, format, connectorAddress: {exc}"},
                                     status=400)
        await node.db.transaction(lambda conn: _seed_agreement(
            conn, agreement_id, role="consumer", me=node.participant_id, peer=provider_id, address=address,
            asset=f"dataset-of-{agreement_id}"))
        row = await node.transfers.start(agreement_id=agreement_id, fmt=fmt)
        for event in CONSUMER_TRANSFER_START.get(agreement_id, []):  # queued behind the request
            row = await node.transfers.act(row["id"], event, "scripted by the TCK profile")
        return web.json_response({"id": row["id"]}, status=200)

    return [web.post("/tck/negotiations/requests", negotiation_request),
            web.post("/tck/transfers/requests", transfer_request)]
