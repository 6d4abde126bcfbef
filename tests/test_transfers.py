"""Transfers between two real node processes: pull and push in both DSP versions, the
policy decided again on every access (N times, time windows), modification in transit,
suspension stopping a pull in flight, delete duties on the consumer, and bad input."""
import asyncio
import csv
import io
import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from connector.identity import DevSharedSecret
from support.nodes import SHARED_SECRET, NodeProcess, pull_suspended_midway

pytestmark = pytest.mark.slow
HEADER = ["patient_id", "name", "phone", "age", "sex", "district", "diagnosis_code", "hba1c", "visit_date"]


def synthetic_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for i in range(rows):
        writer.writerow([f"P{i:05d}", f"Patient {i}, Jr", f"9{i:07d}", 20 + i % 60, "FM"[i % 2], "Tianhe",
                         "E11" if i % 3 else "I10", f"{5 + i % 40 / 10:.1f}", "2025-03-01"])
    return out.getvalue().encode()


def plain_csv(rows: int) -> bytes:
    """No field needs quotes: the data plane's batch path takes every batch."""
    return ",".join(HEADER).encode() + b"\n" + b"".join(
        b"P%06d,Patient %d,9%07d,%d,F,Tianhe,E11,6.1,2025-03-01\n" % (i, i, i, 20 + i % 60) for i in range(rows))


def duty(action: str, fields: list[str]) -> dict:
    return {"action": [{"rdf:value": {"@id": action}, "refinement": [
        {"leftOperand": "hks:field", "operator": "isAnyOf", "rightOperand": fields}]}]}


OPEN = {"permission": [{"action": "use"}]}
TEN_TIMES = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "count", "operator": "lteq", "rightOperand": 10}]}]}
MODIFY = {"permission": [{"action": "use", "duty": [duty("hks:drop", ["name", "phone"]),
                                                     duty("hks:pseudonymise", ["patient_id"])]}]}
DELETE_SOON = {"permission": [{"action": "use", "duty": [{"action": [{"rdf:value": {"@id": "odrl:delete"}, "refinement": [
    {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": {"@value": "PT3S", "@type": "xsd:duration"}}]}]}]}]}
LOGGED = {"permission": [{"action": "use", "duty": [{"action": "hks:log"}]}]}
RESEARCH = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "purpose", "operator": "isA", "rightOperand": "dpv:ResearchAndDevelopment"}]}]}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    base = tmp_path_factory.mktemp("transfers")
    provider = NodeProcess(base / "provider", "Provider", jurisdiction="CN-GD-GZ",
                           env={"CONNECTOR_DATAPLANE_UPSTREAM_HOSTS": "127.0.0.1",
                                "CONNECTOR_DATAPLANE_UPSTREAM_TIMEOUT": "2"})
    consumer = NodeProcess(base / "consumer", "Consumer", jurisdiction="HK")
    data = provider.directory / "data"
    data.mkdir(exist_ok=True)
    (data / "visits.csv").write_bytes(synthetic_csv(2000))
    (data / "big.bin").write_bytes(bytes(range(256)) * 4096 * 40)  # 40 MiB
    (base / "outside.csv").write_text("secret\n")
    (data / "plain.csv").write_bytes(plain_csv(400_000))  # about 24 MiB
    (data / "broken.csv").write_bytes(plain_csv(150_000) + b'P9,"a quoted field never closed\n')
    provider.start()
    consumer.start()
    offers = {"open": OPEN, "ten": TEN_TIMES, "modify": MODIFY, "delete": DELETE_SOON, "logged": LOGGED,
              "research": RESEARCH}
    for name, policy in offers.items():
        provider.api("POST", "/policies", {"id": name, "policy": policy}, expect=201)
        provider.api("POST", "/assets", {"id": f"visits-{name}", "contentType": "text/csv",
                                         "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
        provider.api("POST", "/offers", {"id": f"offer-{name}", "assetIds": [f"visits-{name}"],
                                         "accessPolicyId": "open", "contractPolicyId": name}, expect=201)
    provider.api("POST", "/assets", {"id": "big", "contentType": "application/octet-stream",
                                     "dataAddress": {"type": "file", "path": "big.bin"}}, expect=201)
    provider.api("POST", "/offers", {"id": "offer-big", "assetIds": ["big"], "accessPolicyId": "open",
                                     "contractPolicyId": "open"}, expect=201)
    for name in ("plain", "broken"):
        provider.api("POST", "/assets", {"id": name, "contentType": "text/csv",
                                         "dataAddress": {"type": "file", "path": f"{name}.csv"}}, expect=201)
        provider.api("POST", "/offers", {"id": f"offer-{name}", "assetIds": [name], "accessPolicyId": "open",
                                         "contractPolicyId": "modify"}, expect=201)
    try:
        yield provider, consumer
    finally:
        provider.stop()
        consumer.stop()


def offer_window(provider, name, seconds):
    """An offer usable only until `seconds` from now; returns when the window ends."""
    end = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    policy = {"permission": [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lt",
              "rightOperand": {"@value": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "@type": "xsd:dateTime"}}]}]}
    provider.api("POST", "/policies", {"id": name, "policy": policy}, expect=201)
    provider.api("POST", "/assets", {"id": f"visits-{name}", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    provider.api("POST", "/offers", {"id": f"offer-{name}", "assetIds": [f"visits-{name}"],
                                     "accessPolicyId": "open", "contractPolicyId": name}, expect=201)
    return end.replace(microsecond=0).timestamp()


def sleep_until(moment):
    time.sleep(max(0.0, moment - time.time() + 0.5))


def agree(consumer, provider, name, version=None, dataset=None):
    neg = consumer.wait_state(consumer.negotiate(provider, dataset or f"visits-{name}", f"offer-{name}", version)["id"])
    assert neg["state"] == "FINALIZED", neg
    return neg["agreement"]["@id"]


def transfer(consumer, agreement_id, fmt="HttpData-PULL", expect="STARTED", **extra):
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id, "format": fmt, **extra}, expect=201)
    row = consumer.api("GET", f"/transfers/{started['id']}?waitFor={expect}&timeout=20", expect=200)
    assert row["state"] == expect, row
    return row


def data(consumer, transfer_id, purpose=None, timeout=60):
    params = {"purpose": purpose} if purpose else None
    return httpx.get(f"{consumer.url}/api/v1/transfers/{transfer_id}/data", params=params,
                     headers=consumer.headers(), timeout=timeout)


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
def test_pull_in_both_versions(nodes, version):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "open", version))
    assert row["dspVersion"] == version
    resp = data(consumer, row["id"])
    assert resp.status_code == 200 and resp.content == (provider.directory / "data" / "visits.csv").read_bytes()
    ranged = httpx.get(row["endpoint"], headers={"Range": "bytes=10-19", **_provider_token(provider, consumer, row)})
    assert ranged.status_code == 206 and ranged.content == resp.content[10:20]


def _provider_token(provider, consumer, row):
    """The pull token the provider gave the consumer (read from the consumer's database)."""
    import sqlalchemy as sa
    engine = sa.create_engine(consumer.settings.database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        address = conn.execute(sa.text("SELECT data_address FROM transfers WHERE id = :i"), {"i": row["id"]}).scalar()
    engine.dispose()
    props = {p["name"]: p["value"] for p in json.loads(address)["endpointProperties"]}
    return {"Authorization": f"Bearer {props['authorization']}"}


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
def test_push_in_both_versions_and_the_delete_duty(nodes, version):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "delete", version), fmt="HttpData-PUSH", expect="COMPLETED")
    resp = data(consumer, row["id"])
    assert resp.status_code == 200 and resp.content == (provider.directory / "data" / "visits.csv").read_bytes()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the agreement says: delete within 3 s of the agreement
        gone = data(consumer, row["id"])
        if gone.status_code == 410:
            break
        time.sleep(0.5)
    assert gone.status_code == 410 and "deleted" in gone.json()["error"]
    assert not list((consumer.directory / "received").glob("*")) or all(
        p.name.endswith(".part") for p in (consumer.directory / "received").glob("*"))


def test_ten_times_policy_gives_exactly_ten_successes_under_eleven_concurrent_requests(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "ten"))

    async def pull_all():
        async with httpx.AsyncClient(timeout=60, headers=consumer.headers()) as client:
            return await asyncio.gather(*(client.get(f"{consumer.url}/api/v1/transfers/{row['id']}/data")
                                          for _ in range(11)))

    results = asyncio.run(pull_all())
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 10 + [403], codes
    refused = next(r for r in results if r.status_code == 403).json()
    assert any("at most 10 uses" in reason for reason in refused["reasons"]), refused
    log = provider.api("GET", f"/access-log?agreementId={row['agreementId']}")
    assert sum(entry["permitted"] for entry in log) == 10 and len(log) == 11


def test_time_window_refuses_after_the_window(nodes):
    provider, consumer = nodes
    end = offer_window(provider, "window-a", 5)
    row = transfer(consumer, agree(consumer, provider, "window-a"))
    assert data(consumer, row["id"]).status_code == 200
    sleep_until(end)
    refused = data(consumer, row["id"])
    assert refused.status_code == 403
    assert any("is not before" in r for r in refused.json()["reasons"]), refused.json()


def test_csv_arrives_with_personal_fields_removed_or_pseudonymised(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "modify"))
    resp = data(consumer, row["id"])
    assert resp.status_code == 200
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == [h for h in HEADER if h not in ("name", "phone")]
    assert len(rows) == 2001
    assert all(r[0].startswith("ps_") for r in rows[1:]) and rows[1][0] != rows[2][0]
    assert "Patient 1" not in resp.text and "90000001" not in resp.text
    again = list(csv.reader(io.StringIO(data(consumer, row["id"]).text)))
    assert again[1][0] == rows[1][0]  # the same pseudonym every time (linkable records)


def test_pushed_csv_is_modified_as_the_pulled_one(nodes):
    provider, consumer = nodes
    agreement = agree(consumer, provider, "modify")
    pulled = data(consumer, transfer(consumer, agreement)["id"])
    pushed = data(consumer, transfer(consumer, agreement, fmt="HttpData-PUSH", expect="COMPLETED")["id"])
    assert pushed.status_code == pulled.status_code == 200
    assert pushed.content == pulled.content and b"ps_" in pushed.content and b"Patient 1" not in pushed.content


def test_a_large_csv_is_modified_in_batches_through_pull_and_push_alike(nodes):
    provider, consumer = nodes
    agreement = agree(consumer, provider, "plain", dataset="plain")
    pulled = data(consumer, transfer(consumer, agreement)["id"])
    pushed = data(consumer, transfer(consumer, agreement, fmt="HttpData-PUSH", expect="COMPLETED")["id"])
    assert pulled.status_code == pushed.status_code == 200
    lines = pulled.content.split(b"\n")
    assert lines[0] == b"patient_id,age,sex,district,diagnosis_code,hba1c,visit_date" and len(lines) == 400_002
    assert lines[1].startswith(b"ps_") and lines[-2].startswith(b"ps_") and b"Patient" not in pulled.content
    assert pushed.content == pulled.content


def test_a_csv_that_breaks_mid_stream_is_cut_never_a_truncated_success(nodes):
    # The batches before the broken end are sent; the error at the end must still reach the
    # consumer as a cut stream, through the pull and as a failed push.
    provider, consumer = nodes
    agreement = agree(consumer, provider, "broken", dataset="broken")
    row = transfer(consumer, agreement)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with httpx.stream("GET", row["endpoint"], headers=_provider_token(provider, consumer, row), timeout=60) as resp:
            assert resp.status_code == 200
            received = sum(len(chunk) for chunk in resp.iter_bytes())
            pytest.fail(f"the stream ended as a success after {received} bytes")
    pushed = transfer(consumer, agreement, fmt="HttpData-PUSH", expect="TERMINATED")
    assert pushed["state"] == "TERMINATED"


def test_suspension_stops_an_in_flight_modified_pull(nodes):
    # Read straight from the provider, slowly: what the transformer made ahead of the writer must
    # not go out after the suspension either.
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "plain", dataset="plain"))
    received = 0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with httpx.stream("GET", row["endpoint"], headers=_provider_token(provider, consumer, row), timeout=60) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_bytes():
                received += len(chunk)
                if received - len(chunk) <= 1_000_000 < received:
                    provider.api("POST", f"/transfers/{row['providerPid']}/suspend", {"reason": "maintenance"},
                                 expect=200)
                time.sleep(0.01)  # a slow reader
    # Of about 26 MB: the 1 MB read, one batch in the writer and the sockets' buffers at most (measured: 4.5 MB;
    # with the made-ahead outputs written after the stop, 18 MB).
    assert received < 14_000_000, received
    assert consumer.api("GET", f"/transfers/{row['id']}?waitFor=SUSPENDED&timeout=10")["state"] == "SUSPENDED"


def test_declared_purpose_is_decided_at_each_access(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "research"))
    refused = data(consumer, row["id"])
    assert refused.status_code == 403 and any("declared no purpose" in r for r in refused.json()["reasons"])
    assert data(consumer, row["id"], purpose="dpv:ResearchAndDevelopment").status_code == 200
    wrong = data(consumer, row["id"], purpose="dpv:Marketing")
    assert wrong.status_code == 403


def test_a_logging_duty_without_a_clearing_house_blocks_the_data(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "logged"))
    refused = data(consumer, row["id"])
    assert refused.status_code == 403 and any("clearing house" in r for r in refused.json()["reasons"])


def test_suspension_stops_an_in_flight_pull_and_revokes_the_token(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "big", dataset="big"))
    provider_pid = row["providerPid"]

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        pull_suspended_midway(consumer, row['id'], provider, provider_pid)
    suspended = consumer.api("GET", f"/transfers/{row['id']}?waitFor=SUSPENDED&timeout=10")
    assert suspended["state"] == "SUSPENDED"
    assert data(consumer, row["id"]).status_code == 409  # the consumer knows it is suspended
    direct = httpx.get(row["endpoint"], headers=_provider_token(provider, consumer, row))
    assert direct.status_code == 401 and "revoked" in direct.json()["reasons"][0]
    provider.api("POST", f"/transfers/{provider_pid}/resume", expect=200)
    resumed = consumer.api("GET", f"/transfers/{row['id']}?waitFor=STARTED&timeout=10")
    assert resumed["state"] == "STARTED"
    assert len(data(consumer, row["id"]).content) == 40 * 1024 * 1024


def test_bad_tokens_foreign_agreements_and_sources(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "open"))
    for headers, needle in [({}, "missing"), ({"Authorization": "Bearer nonsense"}, "malformed"),
                            ({"Authorization": "Bearer " + "A" * 43}, "does not verify")]:
        resp = httpx.get(row["endpoint"], headers=headers)
        assert resp.status_code == 401 and needle in resp.json()["reasons"][0], resp.text
    other = transfer(consumer, agree(consumer, provider, "open"))
    foreign = httpx.get(row["endpoint"], headers=_provider_token(provider, consumer, other))
    assert foreign.status_code == 401 and "another transfer" in foreign.json()["reasons"][0]
    # a transfer request for an agreement of another consumer: a DSP error, and no transfer
    intruder = "urn:hks:participant:intruder"
    token = "Bearer " + DevSharedSecret(intruder, SHARED_SECRET).token_for(intruder, audience=provider.participant_id)
    before = len(provider.api("GET", "/transfers?limit=1000"))
    resp = httpx.post(f"{provider.url}/dsp/2025-1/transfers/request", headers={"Authorization": token}, json={
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:intruder-1", "agreementId": row["agreementId"], "format": "HttpData-PULL",
        "callbackAddress": "http://127.0.0.1:9/cb"})
    assert resp.status_code == 400 and resp.json()["@type"] == "TransferError"
    assert "no agreement" in resp.json()["reason"][0]
    assert len(provider.api("GET", "/transfers?limit=1000")) == before
    # sources outside the data root or on hosts not allowed: refused when the asset is created
    for address, needle in [({"type": "file", "path": "../outside.csv"}, "outside the data root"),
                            ({"type": "file", "path": "/etc/passwd"}, "outside the data root"),
                            ({"type": "http", "url": "http://example.com/data"}, "not on the allowed upstream"),
                            ({"type": "ftp", "url": "x"}, "'type' must be")]:
        resp = httpx.post(provider.url + "/api/v1/assets", headers=provider.headers(),
                          json={"id": "bad-source", "dataAddress": address})
        assert resp.status_code == 400 and needle in resp.json()["error"], resp.text


def test_a_transfer_under_an_expired_agreement_is_refused(nodes):
    provider, consumer = nodes
    end = offer_window(provider, "window-b", 4)
    agreement_id = agree(consumer, provider, "window-b")
    sleep_until(end)
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id}, expect=201)
    row = consumer.api("GET", f"/transfers/{started['id']}?waitFor=TERMINATED&timeout=20")
    assert row["state"] == "TERMINATED" and "PolicyDenied" in row["termination"]["reason"][0]
    # the provider's access log keeps the engine's sentences as message ids too, which read back as the text
    from connector.policy.explain import msg_from_json
    refused = next(a for a in provider.api("GET", f"/access-log?agreementId={agreement_id}", expect=200)
                   if a["stage"] == "transfer-start")
    assert [str(msg_from_json(m)) for m in refused["reasonMessages"]] == refused["reasons"]


class Upstream:
    """An HTTP upstream in the test process: good data, a stream that breaks, one that hangs, a redirect."""

    def __init__(self, body: bytes):
        import socket
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://example.com/elsewhere")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path == "/ok":
                    self.wfile.write(body)
                elif self.path == "/break":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif self.path == "/hang":
                    self.wfile.write(body[:1000])
                    self.wfile.flush()
                    time.sleep(8)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_http_upstream_sources(nodes):
    provider, consumer = nodes
    body = synthetic_csv(3000)
    upstream = Upstream(body)
    try:
        for path in ("ok", "break", "hang", "redirect"):
            provider.api("POST", "/assets", {"id": f"up-{path}", "contentType": "text/csv",
                                             "dataAddress": {"type": "http", "url": f"{upstream.url}/{path}"}}, expect=201)
            provider.api("POST", "/offers", {"id": f"offer-up-{path}", "assetIds": [f"up-{path}"],
                                             "accessPolicyId": "open", "contractPolicyId": "open"}, expect=201)
        ok = transfer(consumer, agree(consumer, provider, "up-ok", dataset="up-ok"))
        assert data(consumer, ok["id"]).content == body
        for path in ("break", "hang"):
            row = transfer(consumer, agree(consumer, provider, f"up-{path}", dataset=f"up-{path}"))
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                data(consumer, row["id"])  # an error, never a truncated success
            shown = consumer.api("GET", f"/transfers/{row['id']}")
            assert "broke off" in (shown["error"] or ""), shown
        row = transfer(consumer, agree(consumer, provider, "up-redirect", dataset="up-redirect"))
        resp = data(consumer, row["id"])
        # the consumer learns that the source failed, not how (no redirect target, host or status)
        assert resp.status_code == 502 and resp.json()["reasons"] == ["the asset's data source is unavailable"]
    finally:
        upstream.server.shutdown()


def test_an_expired_token_is_refused(nodes):
    import sqlalchemy as sa

    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "open"))
    # the provider keeps the token's expiry next to its hash; make it lapse
    engine = sa.create_engine(provider.settings.database_url.replace("+aiosqlite", ""),
                              connect_args={"timeout": 10})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE transfers SET token_expires_at = :t WHERE id = :i"),
                     {"t": time.time() - 5, "i": row["providerPid"]})
    engine.dispose()
    resp = httpx.get(row["endpoint"], headers=_provider_token(provider, consumer, row))
    assert resp.status_code == 401 and "expired" in resp.json()["reasons"][0]


def wait_bytes(node, transfer_id, expected, timeout=10.0):
    """The transfer's byte count once it reaches `expected` (the data plane adds it at the stream's end)."""
    deadline = time.monotonic() + timeout
    while True:
        row = node.api("GET", f"/transfers/{transfer_id}", expect=200)
        if row["bytesMoved"] >= expected or time.monotonic() > deadline:
            return row
        time.sleep(0.2)


def test_each_side_counts_the_bytes_its_data_plane_moved(nodes):
    """Provider (served, pushed) and consumer (downloaded, received) each keep the bytes moved for
    their transfer in their database, over all its accesses; a refused access adds nothing."""
    provider, consumer = nodes
    size = len((provider.directory / "data" / "big.bin").read_bytes())
    row = transfer(consumer, agree(consumer, provider, "big", dataset="big"))
    assert consumer.api("GET", f"/transfers/{row['id']}", expect=200)["bytesMoved"] == 0
    assert len(data(consumer, row["id"]).content) == size
    assert wait_bytes(consumer, row["id"], size)["bytesMoved"] == size
    served = wait_bytes(provider, row["providerPid"], size)
    assert served["bytesMoved"] == size and served["bytesCountedAt"] is not None
    assert len(data(consumer, row["id"]).content) == size  # a second access adds up
    assert wait_bytes(provider, row["providerPid"], 2 * size)["bytesMoved"] == 2 * size
    # a push: the provider's pushed bytes, the consumer's received bytes
    pushed = transfer(consumer, agree(consumer, provider, "open"), fmt="HttpData-PUSH", expect="COMPLETED")
    csv_size = len((provider.directory / "data" / "visits.csv").read_bytes())
    assert wait_bytes(consumer, pushed["id"], csv_size)["bytesMoved"] == csv_size
    assert wait_bytes(provider, pushed["providerPid"], csv_size)["bytesMoved"] == csv_size
    # refused (no purpose declared): nothing moved
    research = transfer(consumer, agree(consumer, provider, "research"))
    assert data(consumer, research["id"]).status_code == 403
    assert provider.api("GET", f"/transfers/{research['providerPid']}", expect=200)["bytesMoved"] == 0
    # the engine's reasons are kept as message ids beside their text, for the console's languages
    refusal = next(a for a in provider.api("GET", f"/access-log?agreementId={research['agreementId']}", expect=200)
                   if not a["permitted"])
    assert len(refusal["reasonMessages"]) == len(refusal["reasons"]) >= 1
    assert any("declared no purpose" in r for r in refusal["reasons"])


def test_an_asset_edited_through_the_api_is_checked_and_in_the_next_catalog_page(nodes):
    provider, consumer = nodes
    provider.api("POST", "/assets", {"id": "editable", "title": "Before"}, expect=201)
    provider.api("POST", "/offers", {"id": "offer-editable", "assetIds": ["editable"], "accessPolicyId": "open",
                                     "contractPolicyId": "open"}, expect=201)

    def formats() -> list[str]:
        datasets = consumer.catalog(provider)["catalog"]["dataset"]
        found = next(d for d in datasets if d["@id"] == "editable")
        return sorted(d["format"] for d in found["distribution"])

    assert formats() == ["HttpData-PULL"]
    changed = provider.api("PATCH", "/assets/editable", {
        "title": "After", "description": "visits, as CSV", "contentType": "text/csv",
        "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=200)
    assert changed == {"id": "editable", "title": "After", "description": "visits, as CSV", "contentType": "text/csv",
                       "properties": {}, "dataAddress": {"type": "file", "path": "visits.csv"}}
    assert formats() == ["HKS-Compute", "HttpData-PULL"]  # a CSV file: now computable, at the very next page
    assert provider.api("PATCH", "/assets/editable", {"title": ""}, expect=200)["title"] == "editable"
    # refused as at creation, and nothing changed
    for body, needle in [({"dataAddress": {"type": "file", "path": "../outside.csv"}}, "outside the data root"),
                         ({"dataAddress": {"type": "http", "url": "http://example.com/data"}},
                          "not on the allowed upstream"),
                         ({"dataAddress": {"type": "ftp", "url": "x"}}, "'type' must be"),
                         ({"dataAddress": {}}, "cannot be removed"), ({}, "at least one"),
                         ({"id": "other"}, "Additional properties"), ({"title": "x" * 1001}, "too long")]:
        resp = httpx.patch(provider.url + "/api/v1/assets/editable", headers=provider.headers(), json=body)
        assert resp.status_code == 400 and needle in resp.json()["error"], (body, resp.text)
    assert provider.api("GET", "/assets/editable", expect=200)["dataAddress"] == {"type": "file", "path": "visits.csv"}
    missing = httpx.patch(provider.url + "/api/v1/assets/nothing-here", headers=provider.headers(), json={"title": "x"})
    assert missing.status_code == 404
    # the data plane reads the new address at the next access
    row = transfer(consumer, agree(consumer, provider, "editable", dataset="editable"))
    assert data(consumer, row["id"]).content == (provider.directory / "data" / "visits.csv").read_bytes()
