"""Optional mTLS between nodes with certificates from the station CA: the peer certificate's
SHA-256 must be in the DAT's transportCertsSha256. Real station and node processes."""
import ssl
import time

import httpx
import orjson
import pytest

from connector.identity.dat import client_assertion, token_request_form
from connector.identity.keys import load_private_key
from support.nodes import NodeProcess, StationProcess

pytestmark = pytest.mark.slow
CTX25 = ["https://w3id.org/dspace/2025/1/context.jsonld"]


@pytest.fixture(scope="module")
def tls_net(tmp_path_factory):
    base = tmp_path_factory.mktemp("mtls")
    station = StationProcess(base / "station").start()
    provider = NodeProcess(base / "provider", "Pearl River Medical Centre", station=station, jurisdiction="CN-GD-GZ",
                           tls=True).start()
    consumer = NodeProcess(base / "consumer", "Harbour University Research Lab", station=station, tls=True).start()
    # enrolled, never started: only its certificate is used, by someone holding the consumer's token
    other = NodeProcess(base / "other", "Merlion Analytics", station=station, jurisdiction="SG", tls=True)
    provider.publish("dataset-1", "offer-1")
    try:
        yield station, provider, consumer, other
    finally:
        for process in (consumer, provider, station):
            process.stop()


def client_ctx(node=None, ca_of=None):
    ctx = ssl.create_default_context(cafile=str((ca_of or node).directory / "keys" / "station-ca.crt"))
    if node is not None:
        ctx.load_cert_chain(str(node.directory / "keys" / "node.crt"), str(node.directory / "keys" / "node.key"))
    return ctx


def token_of(station, node, recipient):
    key = load_private_key(node.directory / "keys" / "node.key")
    assertion = client_assertion(node.participant_id, key, station.url + "/token", now=time.time())
    resp = httpx.post(station.url + "/token", data=token_request_form(assertion, recipient.participant_id), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def catalog_request(node, token, ctx):
    return httpx.post(f"{node.url}/dsp/2025-1/catalog/request", verify=ctx, timeout=10,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                      content=orjson.dumps({"@context": CTX25, "@type": "CatalogRequestMessage"}))


def test_two_nodes_negotiate_over_mtls(tls_net):
    station, provider, consumer, _ = tls_net
    assert provider.url.startswith("https://")
    for version in ("2025-1", "2024-1"):
        started = consumer.negotiate(provider, version=version)
        assert consumer.wait_state(started["id"])["state"] == "FINALIZED"


def test_the_peer_certificate_must_be_in_the_token(tls_net):
    station, provider, consumer, other = tls_net
    token = token_of(station, consumer, provider)
    assert catalog_request(provider, token, client_ctx(consumer)).status_code == 200
    wrong = catalog_request(provider, token, client_ctx(other))  # a station certificate, but not the token's
    assert wrong.status_code == 401
    assert "not in the token's transportCertsSha256" in " ".join(wrong.json()["reason"])
    bare = catalog_request(provider, token, client_ctx(ca_of=consumer))  # TLS without a client certificate
    assert bare.status_code == 401 and "no client certificate" in " ".join(bare.json()["reason"])
    log = provider.log_path.read_text()
    assert "transportCertsSha256" in log and "no client certificate" in log


def test_a_client_certificate_from_another_ca_is_refused_by_tls(tls_net, tmp_path):
    import datetime as dt

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from connector.identity.pki import cert_pem, load_csr, make_ca, make_csr, sign_csr

    station, provider, consumer, _ = tls_net
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca = make_ca(rogue_ca_key, "Rogue", now=dt.datetime.now(dt.timezone.utc), serial=7)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = sign_csr(load_csr(make_csr(key, "Rogue Org").decode()), rogue_ca_key, rogue_ca, organisation="Rogue Org",
                    now=dt.datetime.now(dt.timezone.utc), serial=8)
    (tmp_path / "rogue.crt").write_text(cert_pem(cert))
    (tmp_path / "rogue.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    ctx = client_ctx(ca_of=consumer)
    ctx.load_cert_chain(str(tmp_path / "rogue.crt"), str(tmp_path / "rogue.key"))
    with pytest.raises(httpx.HTTPError):
        catalog_request(provider, token_of(station, consumer, provider), ctx)
