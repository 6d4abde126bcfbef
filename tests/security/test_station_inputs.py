"""Issue 10, item 5: the station accepted "HK\\n" as a jurisdiction (regex `$`), a newline in an
organisation name (a forged line in its log), wildcard and foreign host names in a CSR's subject
alternative names, and duplicate organisation names; station.db and identity.db were mode 0644.
Each is refused now, naming the rule. A real station process (and a node for identity.db)."""
import os
import stat

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity.pki import make_csr
from support.nodes import NodeProcess, StationProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    proc = StationProcess(tmp_path_factory.mktemp("inputs") / "station").start()
    yield proc
    proc.stop()


def enrol(station, **body):
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"name": "Org", "jurisdiction": "HK", "csr": make_csr(key, "Org", body.pop("sans", [])).decode(), **body}
    return httpx.post(station.url + "/admin/participants", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {station.admin_token}"})


def count(station):
    return len(station.admin("GET", "/admin/participants", expect=200))


@pytest.mark.parametrize("jurisdiction", ["HK\n", "CN-GD-SZ\n"])
def test_a_jurisdiction_with_a_trailing_newline_is_refused(station, jurisdiction):
    before = count(station)
    resp = enrol(station, name=f"Trailing {jurisdiction!r}", jurisdiction=jurisdiction)
    assert resp.status_code == 400 and "jurisdiction" in resp.json()["error"], resp.text
    assert count(station) == before


@pytest.mark.parametrize("field,value", [
    ("name", "Harbour Lab\n2026-12-02 04:00:00 WARNING connector.station revoked participant X"),
    ("name", "Harbour Lab\r"), ("name", "Harbour\x00Lab"), ("name", "Harbour\u2028Lab"), ("name", "Harbour\x85Lab"),
    ("membership", ["hks:StationMember\nforged"]),
])
def test_a_control_character_in_a_text_field_is_refused_and_forges_no_log_line(station, field, value):
    before = count(station)
    resp = enrol(station, **{field: value})
    assert resp.status_code == 400 and "control characters" in resp.json()["error"], resp.text
    assert count(station) == before
    assert "WARNING connector.station revoked participant X" not in station.log_path.read_text()


def test_a_control_character_in_a_revocation_reason_is_refused(station):
    pid = enrol(station, name="Reasoned Org").json()["participantId"]
    resp = httpx.post(f"{station.url}/admin/participants/{pid}/revoke", json={"reason": "left\nforged line"},
                      timeout=10, headers={"Authorization": f"Bearer {station.admin_token}"})
    assert resp.status_code == 400 and "control characters" in resp.json()["error"]
    assert station.admin("GET", f"/admin/participants/{pid}", expect=200)["status"] == "active"


def test_a_duplicate_organisation_name_is_refused_unless_made_explicit(station):
    assert enrol(station, name="Pearl River Medical Centre").status_code == 201
    before = count(station)
    for name in ("Pearl River Medical Centre", "pearl river  medical centre", " Pearl River Medical Centre "):
        dup = enrol(station, name=name)
        assert dup.status_code == 409 and dup.json()["code"] == "DuplicateName", dup.text
        assert "allowDuplicateName" in dup.json()["error"]
    assert count(station) == before
    explicit = enrol(station, name="Pearl River Medical Centre", allowDuplicateName=True)
    assert explicit.status_code == 201
    assert enrol(station, name="Other Org", allowDuplicateName="yes").status_code == 400


@pytest.mark.parametrize("sans,url,needle", [
    (["*.example.hk"], "https://node.example.hk", "wildcard"),
    (["*"], "https://node.example.hk", "wildcard"),
    (["bank.example.com"], "https://node.example.hk", "not the host of the participant's connectorUrl"),
    (["node.example.hk", "intranet.local"], "https://node.example.hk", "not the host"),
    (["10.0.0.5"], "https://node.example.hk", "not the host"),
    (["node.example.hk"], None, "not the host"),  # no connectorUrl: no host name to certify
    (["localhost"], "https://node.example.hk", "not the host"),
])
def test_csr_alternative_names_other_than_the_connector_host_are_refused(station, sans, url, needle):
    before = count(station)
    body = {"name": f"SAN {sans} {url}", "sans": sans}
    if url:
        body["connectorUrl"] = url
    resp = enrol(station, **body)
    assert resp.status_code == 400 and needle in resp.json()["error"], resp.text
    assert count(station) == before


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_station_and_identity_databases_are_not_readable_by_others(station, tmp_path):
    db = station.directory / "station.db"
    assert db.is_file() and mode(db) == 0o600, oct(mode(db))
    assert mode(station.directory) == 0o700
    for extra in (db.with_name("station.db-wal"), db.with_name("station.db-shm")):
        if extra.exists():
            assert mode(extra) & 0o077 == 0, (extra, oct(mode(extra)))
    node = NodeProcess(tmp_path / "node", "Identity Db Org", station=station).start()
    try:
        catalog = httpx.post(f"{node.url}/dsp/2025-1/catalog/request", timeout=10,  # a token check opens identity.db
                             json={"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                                   "@type": "CatalogRequestMessage"}, headers={"Authorization": "Bearer x.y.z"})
        assert catalog.status_code == 401
        identity_db = node.directory / "identity.db"
        assert identity_db.is_file() and mode(identity_db) == 0o600, oct(mode(identity_db))
    finally:
        node.stop()
