"""Two processes of one station on one PostgreSQL database, each running its certificate log sender,
and a clearing house in station mode: every certificate approved (at either process) is logged once,
by the station's identity, and each process can hand out its receipt. Real processes, real PostgreSQL."""
from __future__ import annotations

import shutil
import time

import httpx
import pytest

from support.certs import configure_station_clearinghouse
from support.identity import Member, station_clearing_house
from support.nodes import StationProcess, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_certificates_approved_at_two_station_processes_are_each_logged_once(tmp_path, pg_url):
    ch_port = free_port()
    ch_url = f"http://127.0.0.1:{ch_port}"
    env = {"CONNECTOR_DATABASE_URL": pg_url, "CONNECTOR_TOKENS_SERVICE_AUDIENCES": ch_url}
    first = StationProcess(tmp_path / "one", env=env)
    shutil.copytree(first.directory, tmp_path / "two")  # the same CA, keys and entry identity
    port = free_port()
    second = StationProcess(tmp_path / "two", init=False, env={**env, "CONNECTOR_STATION_LISTEN_PORT": str(port)})
    second.port, second.url = port, f"http://127.0.0.1:{port}"
    second.log_path = tmp_path / "two" / "station.log"
    procs = [first.start(), second.start()]
    try:
        ch, _ = station_clearing_house(tmp_path / "ch", first, ch_port)
        procs.append(ch.start())
        for station in (first, second):  # written after start: each process reads them when an entry is due
            configure_station_clearinghouse(station, ch_url, ch.verifier_key)
        owner = Member(first, "Lion Rock Mobility Data Co.")
        auth = {"Authorization": f"Bearer {owner.token(first.settings.issuer)}"}
        serials = []
        for i in range(8):
            resp = httpx.post(first.url + "/certificates/requests", headers=auth, timeout=30,
                              json={"datasetId": f"set-{i}", "sha256": f"{i:064x}", "title": f"Set {i}"})
            assert resp.status_code == 201, resp.text
            serials.append(resp.json()["serial"])
        for i, serial in enumerate(serials):
            (first, second)[i % 2].admin("POST", f"/admin/certificates/{serial}/approve", {}, expect=200)
        deadline = time.monotonic() + 60
        while True:
            listing = second.admin("GET", "/admin/certificates/log", expect=200)
            if listing["counts"]["sent"] == len(serials) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert listing["counts"] == {"pending": 0, "sent": len(serials), "dead": 0}, listing
        assert httpx.get(ch_url + "/log", timeout=10).json()["size"] == len(serials)  # once each, nothing else
        indexes = sorted(e["leafIndex"] for e in listing["entries"])
        assert indexes == list(range(len(serials)))
        for station in (first, second):  # either process gives the owner its entry and receipt
            got = httpx.get(f"{station.url}/certificates/requests/{serials[0]}", headers=auth, timeout=30).json()
            assert got["logged"] and got["receipt"]["leafIndex"] in indexes
            assert got["logEntry"].count(".") == 2
    finally:
        for proc in reversed(procs):
            proc.stop()
