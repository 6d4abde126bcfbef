"""The station's certificate log outbox (migration st0005): several station processes on one
PostgreSQL database lease each due entry to one of them, a lease that passed can be taken over, and
the backoff between attempts grows to its cap. Real PostgreSQL (and SQLite for the same rule)."""
from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from connector.certs import station_log
from connector.certs.station_log import LEASE_SECONDS, LogSender, backoff, enqueue, log_outbox
from connector.station import shared
from connector.store.db import Database

from conftest import BACKENDS, database_url


@pytest.fixture(params=BACKENDS)
async def two_processes(request, tmp_path):
    async with database_url(request.param, tmp_path, "station") as url:
        dbs = [Database(url), Database(url)]
        await dbs[0].migrate(shared.MIGRATIONS)
        try:
            yield [LogSender(SimpleNamespace(db=db)) for db in dbs]
        finally:
            for db in dbs:
                await db.dispose()


async def test_each_due_entry_is_leased_to_one_process_only(two_processes):
    a, b = two_processes
    now = time.time()
    await a.station.db.transaction(lambda conn: [enqueue(conn, serial, f"jws-{serial}", now)
                                                 for serial in range(1, 61)])
    taken: dict[str, list[int]] = {a.owner: [], b.owner: []}

    async def drain(sender: LogSender) -> None:
        while rows := await sender.station.db.transaction(sender._lease, time.time()):
            taken[sender.owner] += [r["serial"] for r in rows]

    await asyncio.gather(drain(a), drain(b))
    both = taken[a.owner] + taken[b.owner]
    assert sorted(both) == list(range(1, 61))  # every entry once, none twice
    owners = await a.station.db.read(lambda conn: dict(conn.execute(
        sa.select(log_outbox.c.serial, log_outbox.c.lease_owner)).all()))
    assert all(owners[s] == a.owner for s in taken[a.owner]) and all(owners[s] == b.owner for s in taken[b.owner])


async def test_a_lease_that_passed_is_taken_over_and_fences_the_late_owner(two_processes):
    a, b = two_processes
    now = time.time()
    await a.station.db.transaction(lambda conn: enqueue(conn, 7, "jws-7", now))
    assert [r["serial"] for r in await a.station.db.transaction(a._lease, now)] == [7]
    assert await b.station.db.transaction(b._lease, now + 1) == []  # still a's
    later = now + LEASE_SECONDS + 1
    assert [r["serial"] for r in await b.station.db.transaction(b._lease, later)] == [7]
    # a's late result no longer applies: its update is fenced by the lease owner
    changed = await a.station.db.transaction(lambda conn: conn.execute(
        a._fenced(1).values(state="sent")).rowcount)
    assert changed == 0
    state = await a.station.db.read(lambda conn: conn.execute(sa.select(log_outbox.c.state)).scalar())
    assert state == "pending"


def test_the_backoff_doubles_up_to_its_cap_and_never_stops():
    waits = [backoff(n) for n in range(1, 20)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == station_log.BACKOFF_CAP and waits[-1] == station_log.BACKOFF_CAP


async def test_a_refused_entry_becomes_a_visible_dead_letter_and_is_still_retried(two_processes):
    from connector.clearinghouse.client import EntryRefused

    a, _ = two_processes
    now = time.time()
    await a.station.db.transaction(lambda conn: enqueue(conn, 9, "jws-9", now))
    [row] = await a.station.db.transaction(a._lease, now)
    await a._failed(row, row["jws"], EntryRefused(403, "NotAParty", "the caller is not a party"))
    dead = await a.station.db.read(lambda conn: dict(conn.execute(sa.select(log_outbox)).mappings().one()))
    assert dead["state"] == "dead" and dead["attempts"] == 1 and "NotAParty" in dead["last_error"]
    assert dead["lease_owner"] is None
    assert await a.station.db.read(station_log.counts) == {"pending": 0, "sent": 0, "dead": 1}
    assert await a.station.db.transaction(a._lease, dead["next_attempt_at"] - 0.5) == []  # backing off
    again = await a.station.db.transaction(a._lease, dead["next_attempt_at"] + 0.01)
    assert [r["serial"] for r in again] == [9]  # never given up


async def test_a_401_is_retried_as_an_outage_not_a_dead_letter_at_once(two_processes):
    """The clearing house not trusting the station's token yet (a key rotation) is transient."""
    from connector.clearinghouse.client import EntryRefused

    a, _ = two_processes
    now = time.time()
    await a.station.db.transaction(lambda conn: enqueue(conn, 11, "jws-11", now))
    for attempt in range(1, station_log.DEAD_AFTER + 1):
        [row] = await a.station.db.transaction(a._lease, time.time() + backoff(attempt) + 1)
        await a._failed(row, row["jws"], EntryRefused(401, "Unauthorized", "token not accepted"))
        state = await a.station.db.read(lambda conn: conn.execute(sa.select(log_outbox.c.state)).scalar())
        assert state == ("dead" if attempt >= station_log.DEAD_AFTER else "pending"), attempt


async def test_settings_changed_on_a_running_station_are_read_and_the_warning_waits_for_an_entry(
        tmp_path, caplog):
    from connector.station import config as station_config

    station_config.init_directory(tmp_path / "st", name="Warn Station", port=9)
    settings = station_config.load(tmp_path / "st")
    db = Database(settings.database_url)
    await db.migrate(shared.MIGRATIONS)
    try:
        sender = LogSender(SimpleNamespace(db=db, settings=settings))
        with caplog.at_level("WARNING", logger=station_log.log.name):
            assert await sender.send_due() == 5.0  # nothing configured, nothing waiting: quiet
            assert "wait to be logged" not in caplog.text
            await db.transaction(lambda conn: enqueue(conn, 3, "jws-3", time.time()))
            await sender.send_due()
            assert "1 certificate(s) wait to be logged" in caplog.text
        # the operator configures the clearing house while the station runs
        toml = tmp_path / "st" / station_config.CONFIG_FILE
        text = toml.read_text()
        assert text.rsplit("\n[", 1)[-1].startswith("clearinghouse]")  # the last table: append to it
        toml.write_text(text + '\nurl = "http://127.0.0.1:9"\nverifier_key = "' + "A" * 43 + '"\n')
        later = time.time() + 5
        os.utime(toml, (later, later))  # a distinct mtime even on a coarse clock
        sender._reread_settings(settings)
        assert settings.clearinghouse_url == "http://127.0.0.1:9"
    finally:
        await db.dispose()


async def test_settings_given_in_process_are_not_overwritten_by_an_unchanged_file(tmp_path):
    """The demo hands the station its clearing house in-process, after the sender's first round."""
    from connector.station import config as station_config

    station_config.init_directory(tmp_path / "st", name="Demo Station", port=9)
    settings = station_config.load(tmp_path / "st")
    sender = LogSender(SimpleNamespace(settings=settings))
    sender._reread_settings(settings)  # first round: nothing configured anywhere
    settings.clearinghouse_url, settings.clearinghouse_verifier_key = "http://127.0.0.1:9", "B" * 43
    sender._reread_settings(settings)
    assert (settings.clearinghouse_url, settings.clearinghouse_verifier_key) == ("http://127.0.0.1:9", "B" * 43)
