"""The same store tests against SQLite and PostgreSQL: migrations, catalog, atomic
transitions with the outbox, idempotency, optimistic concurrency and outbox leases."""
import asyncio
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from connector.identity import Caller
from connector.node.automation import DefaultStrategy
from connector.node.catalog import CatalogService
from connector.node.negotiations import Conflict, NegotiationService, Outgoing, write_outbox
from connector.node.outbox import Dispatcher
from connector.protocol.errors import InvalidTransition, Refused, UnknownProcess
from connector.protocol.messages import ContractNegotiationEventMessage, ContractRequestMessage
from connector.protocol.negotiation import Event
from connector.store.db import Database
from connector.store.tables import metadata, negotiations, outbox

ME, PEER = "urn:hks:participant:me", "urn:hks:participant:peer"
PEER_CALLER = Caller(PEER, {"jurisdiction": "HK"})
POLICY = {"permission": [{"action": "use"}]}


@pytest.fixture
def engine(node_db):  # noqa: ANN001, ANN201
    return node_db


@pytest.fixture
async def service(engine):
    catalog = CatalogService(engine, participant_id=ME, title="Me")
    await catalog.create_policy("p", POLICY)
    await catalog.create_asset({"id": "ds-1"})
    await catalog.create_asset({"id": "ds-2"})
    await catalog.create_offer({"id": "single", "assetIds": ["ds-1"], "accessPolicyId": "p", "contractPolicyId": "p"})
    await catalog.create_offer({"id": "multi", "assetIds": ["ds-1", "ds-2"], "accessPolicyId": "p", "contractPolicyId": "p"})
    return NegotiationService(engine, participant_id=ME, dsp_base=lambda v: f"http://me/dsp/{v}", catalog=catalog,
                              strategy=DefaultStrategy())


def request(cpid="urn:c:1", offer_id="single", target="ds-1", permission=None):
    return ContractRequestMessage(consumer_pid=cpid, callback_address="http://peer/cb",
                                  offer={"@id": offer_id, "@type": "Offer", "target": target,
                                         "permission": permission or [{"action": "use"}]})


async def rows(db, table):
    return await db.read(lambda conn: [dict(r) for r in conn.execute(sa.select(table)).mappings()])


async def test_migrations_match_the_tables_and_rerun_cleanly(engine):
    await engine.migrate()  # a second run is a no-op
    diff = await engine.read(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert diff == []


async def test_catalog_offer_ids(service):
    def find(offer_id):
        return service.db.read(lambda conn: service.catalog.find_offer(conn, offer_id))
    assert (await find("single"))[0] == "ds-1"
    assert (await find("multi::ds-2"))[0] == "ds-2"
    assert await find("multi") is None  # ambiguous without the asset
    assert await find("single::ds-2") is None
    assert await find("nope") is None
    catalog = await service.catalog.catalog("http://me/dsp/2025-1", PEER_CALLER)
    offers = {o["@id"] for d in catalog["dataset"] for o in d["hasPolicy"]}
    assert offers == {"single", "multi::ds-1", "multi::ds-2"}
    assert all("target" not in o for d in catalog["dataset"] for o in d["hasPolicy"])


async def test_initial_request_is_one_transaction_with_its_outbox_message(service):
    status, ack = await service.receive_initial_request("2025-1", request(), PEER_CALLER, "d1")
    assert status == 201 and ack["state"] == "REQUESTED"
    [row] = await rows(service.db, negotiations)
    assert row["state"] == "AGREED" and row["version"] == 1
    assert row["agreement"]["permission"] == POLICY["permission"] and row["agreement"]["assignee"] == PEER
    [msg] = await rows(service.db, outbox)
    assert msg["kind"] == "ContractAgreementMessage" and msg["status"] == "pending"
    assert msg["url"] == "http://peer/cb/negotiations/urn:c:1/agreement"
    # a replay (same consumerPid) is answered alike and changes nothing
    assert await service.receive_initial_request("2025-1", request(), PEER_CALLER, "d1") == (201, ack)
    assert len(await rows(service.db, negotiations)) == 1 and len(await rows(service.db, outbox)) == 1


async def test_refusals_change_nothing(service):
    with pytest.raises(Refused, match="not offered"):
        await service.receive_initial_request("2025-1", request(offer_id="nope"), PEER_CALLER, "d")
    with pytest.raises(Refused, match="is for dataset"):
        await service.receive_initial_request("2025-1", request(target="ds-2"), PEER_CALLER, "d")
    assert await rows(service.db, negotiations) == [] and await rows(service.db, outbox) == []


async def test_a_failed_side_effect_rolls_the_transition_back(service, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(service, "_write_side_effects", boom)
    with pytest.raises(RuntimeError):
        await service.receive_initial_request("2025-1", request(), PEER_CALLER, "d")
    assert await rows(service.db, negotiations) == []


async def test_wrong_state_unknown_process_and_foreign_caller(service):
    _, ack = await service.receive_initial_request("2025-1", request(), PEER_CALLER, "d1")
    pid = ack["providerPid"]
    accepted = ContractNegotiationEventMessage(provider_pid=pid, consumer_pid="urn:c:1", event_type="ACCEPTED")
    with pytest.raises(InvalidTransition):
        await service.receive("2025-1", pid, None, accepted, PEER_CALLER, "d2")
    with pytest.raises(UnknownProcess):
        await service.receive("2025-1", "urn:nope", None, accepted, PEER_CALLER, "d3")
    with pytest.raises(UnknownProcess):
        await service.receive("2025-1", pid, None, accepted, Caller("urn:someone-else"), "d4")
    [row] = await rows(service.db, negotiations)
    assert row["version"] == 1 and row["state"] == "AGREED"


async def test_optimistic_version_check(service):
    _, ack = await service.receive_initial_request("2025-1", request(), PEER_CALLER, "d1")
    row = dict((await rows(service.db, negotiations))[0])
    await service.db.transaction(service._update, {**row, "version": 2}, 1)
    with pytest.raises(Conflict):  # someone else already moved it
        await service.db.transaction(service._update, {**row, "version": 2}, 1)


async def test_management_actions_go_through_the_table(service):
    row = await service.start(version="2025-1", provider_base="http://peer/dsp/2025-1", provider_id=PEER,
                              dataset_id="ds-9", offer={"@id": "o", "permission": [{"action": "use"}]})
    with pytest.raises(InvalidTransition):
        await service.act(row["id"], Event.ACCEPT)  # nothing was offered
    done = await service.act(row["id"], Event.TERMINATE, "stop")
    assert done["state"] == "TERMINATED"
    with pytest.raises(InvalidTransition):
        await service.act(row["id"], Event.TERMINATE, "again")
    kinds = [m["kind"] for m in sorted(await rows(service.db, outbox), key=lambda m: m["id"])]
    assert kinds == ["ContractRequestMessage:initial", "ContractNegotiationTerminationMessage"]


async def test_outbox_claims_keep_order_per_process_and_leases_are_exclusive(service):
    for i in range(3):
        await service.start(version="2025-1", provider_base="http://peer/dsp/2025-1", provider_id=PEER,
                            dataset_id=f"ds-{i}", offer={"@id": "o", "permission": [{"action": "use"}]})
    first = (await rows(service.db, negotiations))[0]["id"]
    await service.act(first, Event.TERMINATE, "stop")  # a second message for the first process
    a = Dispatcher(service.db, service, session=None, authorization=None)
    b = Dispatcher(service.db, service, session=None, authorization=None)
    claimed_a, claimed_b = await asyncio.gather(a._claim(10), b._claim(10))
    ids_a, ids_b = {r["id"] for r in claimed_a}, {r["id"] for r in claimed_b}
    assert not ids_a & ids_b
    claimed = claimed_a + claimed_b
    assert len(claimed) == 3  # the termination waits for the request of its process
    assert all(r["kind"] == "ContractRequestMessage:initial" for r in claimed)
    assert await a._claim(10) == [] and await b._claim(10) == []  # all leased
    # marking the first process's request sent leases its termination to the same dispatcher, in the
    # same transaction (the queue never advances before the sent mark is committed)
    owner = a if any(r["process_id"] == first for r in claimed_a) else b
    other = b if owner is a else a
    entry = next(r for r in claimed if r["process_id"] == first)
    ended, following, dead = await service.db.transaction(owner._flush_tx, [(entry, "sent", None)], time.time())
    [nxt] = following
    assert nxt["process_id"] == first and nxt["kind"] == "ContractNegotiationTerminationMessage"
    assert nxt["lease_owner"] == owner.owner and nxt["lease_gen"] == 1
    assert await other._claim(10) == []
    # a dispatcher that lost the lease (an older generation) can neither mark it sent nor renew it
    stale = {**nxt, "lease_gen": 0}
    owner._held[stale["id"]] = stale
    assert await service.db.transaction(owner._renew_tx, [stale], time.time() + 30) == [stale]
    await service.db.transaction(owner._flush_tx, [({**stale}, "sent", None)], time.time())
    [row] = [r for r in await rows(service.db, outbox) if r["id"] == nxt["id"]]
    assert row["status"] == "pending" and row["lease_gen"] == 1


async def test_waiters_do_not_miss_a_commit_that_lands_before_they_resume(service):
    row = await service.start(version="2025-1", provider_base="http://peer/dsp/2025-1", provider_id=PEER,
                              dataset_id="ds-1", offer={"@id": "o", "permission": [{"action": "use"}]})
    pid = row["id"]
    waiter = asyncio.create_task(service.wait_for(pid, {"FINALIZED"}, timeout=5))
    await asyncio.sleep(0.05)  # the waiter is registered and waiting
    await service.db.transaction(lambda conn: conn.execute(
        sa.update(negotiations).where(negotiations.c.id == pid).values(state="FINALIZED")))
    # two notifications in a row, before the waiter runs again: the second has nobody registered
    service.notifier.notify(pid, {**row, "state": "AGREED"})
    service.notifier.notify(pid, {**row, "state": "FINALIZED"})
    result = await asyncio.wait_for(waiter, 2)
    assert result["state"] == "FINALIZED"


async def test_group_commit_isolates_a_failing_transaction(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await db.migrate()
    catalog = CatalogService(db, participant_id=ME, title="Me")
    try:
        def insert(conn, pid, fail):
            conn.execute(sa.insert(negotiations.metadata.tables["policies"]).values(id=pid, body={}, created_at=0))
            if fail:
                raise ValueError(f"refused {pid}")
            return pid

        results = await asyncio.gather(*(db.transaction(insert, f"p{i}", i % 3 == 1) for i in range(9)),
                                       return_exceptions=True)
        assert [isinstance(r, ValueError) for r in results] == [i % 3 == 1 for i in range(9)]
        stored = {p["id"] for p in await catalog.list_rows(negotiations.metadata.tables["policies"])}
        assert stored == {f"p{i}" for i in range(9) if i % 3 != 1}
    finally:
        await db.dispose()


async def test_a_message_past_its_deadline_is_a_dead_letter_by_the_injected_clock(service):
    """The deadline is judged by the dispatcher's clock (injected here: no waiting for it)."""
    row = await service.start(version="2025-1", provider_base="http://peer/dsp/2025-1", provider_id=PEER,
                              dataset_id="ds-1", offer={"@id": "o", "permission": [{"action": "use"}]})
    await service.db.transaction(lambda conn: write_outbox(  # a later message of the process, queued behind it
        conn, row["id"], [Outgoing("ContractRequestMessage", "http://peer/later", {})], time.time(), None, 30))
    now = [time.time()]
    d = Dispatcher(service.db, service, session=None, authorization=None, message_deadline=60.0,
                   clock=lambda: now[0])
    [entry] = await d._claim(10)
    assert entry["kind"] == "ContractRequestMessage:initial" and d.deadline_of(entry) == entry["created_at"] + 60
    # before the deadline: backoff, never past the deadline
    await service.db.transaction(d._flush_tx, [(entry, "retry", "TransientSendError: the peer answered 503")], now[0])
    [kept] = [r for r in await rows(service.db, outbox) if r["id"] == entry["id"]]
    assert kept["status"] == "pending" and kept["next_attempt_at"] <= entry["created_at"] + 60
    # after it: a dead letter with its cause; the negotiation ends with it, the later message is
    # cancelled, and no termination is queued (the provider's pid was never learnt: nothing can address it)
    now[0] = entry["created_at"] + 61
    [entry] = await d._claim(10)
    ended, following, dead = await service.db.transaction(
        d._flush_tx, [(entry, "retry", "TransientSendError: the peer answered 503")], now[0])
    by_id = {r["id"]: r for r in await rows(service.db, outbox)}
    assert by_id[entry["id"]]["status"] == "dead" and "503" in by_id[entry["id"]]["last_error"]
    assert by_id[entry["id"]]["dead_at"] == now[0]
    assert [r["status"] for r in by_id.values() if r["id"] != entry["id"]] == ["cancelled"]
    [(owner, pid, ended_row, outgoing)] = dead
    assert owner is service and pid == row["id"] and outgoing == []
    neg = await service.get(row["id"])
    assert neg["state"] == "TERMINATED" and neg["termination"]["code"] == "DeliveryDeadline"
    assert "503" in neg["termination"]["reason"][0]


def test_backoff_is_capped_and_jittered():
    from connector.node.outbox import backoff
    delays = [backoff(n, 0.5, 300.0) for n in range(1, 60) for _ in range(20)]
    assert all(0.25 <= x <= 300.0 for x in delays)
    assert len({round(x, 3) for x in delays}) > 100  # jittered, not one fixed schedule
    assert max(backoff(n, 0.5, 300.0) for n in range(30, 40)) > 100  # grows to the cap
