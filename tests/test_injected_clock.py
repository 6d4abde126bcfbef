"""Time-driven rules of the data plane and the outbox, judged by the node's injected clock: the
tests jump over a deadline instead of sleeping through it. Two real nodes (directories, SQLite
files, keys, HTTP on loopback, outbox, data plane) run in the test process so that the test holds
their clock (tests/support/house.py); everything between them goes over real HTTP.

- a time window in the agreement's policy closes when the clock passes its end;
- a pull token expires when the clock passes its lifetime ([dataplane] token_ttl);
- a delete duty removes pushed data when the clock passes its deadline;
- a message in backoff is not sent again before the clock reaches its next attempt."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from connector.node.negotiations import NegotiationService
from connector.node.catalog import CatalogService
from connector.node.outbox import Dispatcher
from connector.store.db import Database
from support.house import InProcessNode, ManualClock

CSV = b"patient_id,district\nP1,Tianhe\nP2,Yuexiu\n"
DELETE_SOON = {"permission": [{"action": "use", "duty": [{"action": [{"rdf:value": {"@id": "odrl:delete"}, "refinement": [
    {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": {"@value": "PT3S", "@type": "xsd:duration"}}]}]}]}]}


@pytest.fixture
async def pair(tmp_path):
    clock = ManualClock()
    async with InProcessNode(tmp_path / "provider", "Provider", clock) as provider, \
            InProcessNode(tmp_path / "consumer", "Consumer", clock) as consumer:
        data = provider.directory / "data"
        data.mkdir(exist_ok=True)
        (data / "visits.csv").write_bytes(CSV)
        yield clock, provider, consumer


async def offer(provider: InProcessNode, name: str, policy: dict) -> None:
    await provider.api("POST", "/policies", {"id": name, "policy": policy}, expect=201)
    await provider.api("POST", "/policies", {"id": f"{name}-access", "policy": {"permission": [{"action": "use"}]}},
                       expect=201)
    await provider.api("POST", "/assets", {"id": name, "contentType": "text/csv",
                                           "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    await provider.api("POST", "/offers", {"id": f"offer-{name}", "assetIds": [name],
                                           "accessPolicyId": f"{name}-access", "contractPolicyId": name}, expect=201)


async def transfer(provider: InProcessNode, consumer: InProcessNode, name: str, fmt: str, expect: str) -> dict:
    neg = (await consumer.api("POST", "/negotiations", {
        "counterPartyAddress": provider.url, "counterPartyId": provider.participant_id,
        "datasetId": name, "offerId": f"offer-{name}"}, expect=201)).json()
    neg = (await consumer.api("GET", f"/negotiations/{neg['id']}?waitFor=FINALIZED&timeout=20", expect=200)).json()
    assert neg["state"] == "FINALIZED", neg
    started = (await consumer.api("POST", "/transfers", {"agreementId": neg["agreement"]["@id"], "format": fmt},
                                  expect=201)).json()
    row = (await consumer.api("GET", f"/transfers/{started['id']}?waitFor={expect}&timeout=20", expect=200)).json()
    assert row["state"] == expect, row
    return row


async def test_a_time_window_closes_when_the_injected_clock_passes_its_end(pair):
    clock, provider, consumer = pair
    end = datetime.fromtimestamp(clock.now(), timezone.utc) + timedelta(seconds=60)
    await offer(provider, "window", {"permission": [{"action": "use", "constraint": [
        {"leftOperand": "dateTime", "operator": "lt",
         "rightOperand": {"@value": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "@type": "xsd:dateTime"}}]}]})
    row = await transfer(provider, consumer, "window", "HttpData-PULL", "STARTED")
    first = await consumer.api("GET", f"/transfers/{row['id']}/data")
    assert first.status_code == 200 and first.content == CSV
    clock.advance(61)  # no sleeping through the window
    refused = await consumer.api("GET", f"/transfers/{row['id']}/data")
    assert refused.status_code == 403, refused.text
    assert any("is not before" in r for r in refused.json()["reasons"]), refused.json()


async def test_a_pull_token_expires_when_the_injected_clock_passes_its_lifetime(pair):
    clock, provider, consumer = pair
    await offer(provider, "open", {"permission": [{"action": "use"}]})
    row = await transfer(provider, consumer, "open", "HttpData-PULL", "STARTED")
    assert (await consumer.api("GET", f"/transfers/{row['id']}/data")).status_code == 200
    clock.advance(provider.settings.dataplane_token_ttl - 5)
    assert (await consumer.api("GET", f"/transfers/{row['id']}/data")).status_code == 200  # still valid
    clock.advance(10)
    expired = await consumer.api("GET", f"/transfers/{row['id']}/data")
    assert expired.status_code == 401 and expired.json()["reasons"] == ["the access token has expired"], expired.text


async def test_a_delete_duty_removes_pushed_data_when_the_injected_clock_passes_its_deadline(pair):
    clock, provider, consumer = pair
    await offer(provider, "delete", DELETE_SOON)  # delete within 3 s of the agreement
    row = await transfer(provider, consumer, "delete", "HttpData-PUSH", "COMPLETED")
    kept = await consumer.api("GET", f"/transfers/{row['id']}/data")
    assert kept.status_code == 200 and kept.content == CSV
    assert await consumer.node.dataplane.delete_overdue() == 0  # not due by the clock
    clock.advance(4)
    assert await consumer.node.dataplane.delete_overdue() == 1
    gone = await consumer.api("GET", f"/transfers/{row['id']}/data")
    assert gone.status_code == 410 and "deleted" in gone.json()["error"], gone.text
    assert gone.json()["deletedAt"] >= clock.now() - 1
    assert not [p for p in (consumer.directory / "received").glob("*") if not p.name.endswith(".part")]


async def test_a_message_in_backoff_is_sent_again_only_when_the_injected_clock_reaches_its_next_attempt(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}")
    await db.migrate()
    try:
        clock = ManualClock()
        service = NegotiationService(db, participant_id="urn:hks:participant:me", dsp_base=lambda v: f"http://me/{v}",
                                     catalog=CatalogService(db, participant_id="urn:hks:participant:me", title="Me"),
                                     clock=clock)
        await service.start(version="2025-1", provider_base="http://peer/dsp/2025-1", provider_id="urn:hks:participant:p",
                            dataset_id="ds-1", offer={"@id": "o", "permission": [{"action": "use"}]})
        d = Dispatcher(db, service, session=None, authorization=None, retry_initial=60.0, retry_max=120.0, clock=clock)
        [entry] = await d._claim(10)
        await db.transaction(d._flush_tx, [(entry, "retry", "TransientSendError: the peer answered 503")], clock.now())
        await asyncio.sleep(0)
        assert await d._claim(10) == []  # backing off: at least 30 s by the clock
        clock.advance(121)  # past the longest backoff step
        [again] = await d._claim(10)
        assert again["id"] == entry["id"] and again["attempts"] == 1 and again["lease_gen"] == entry["lease_gen"] + 1
    finally:
        await db.dispose()
