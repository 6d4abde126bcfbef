"""Messages a real Eclipse EDC (0.15.1, iam-mock) sent to our node in the interop tests
(tests/interop/test_edc.py), recorded byte for byte and replayed against a real node process in
the test-only `edc-iam-mock-test-only` identity mode, so what our node once mishandled stays fixed
without Java. Also the mode's configuration rules."""
import asyncio
import json

import httpx
import pytest
from aiohttp import web

from connector import config as config_mod
from support.interop import edc_mode_node
from support.nodes import free_port

pytestmark = pytest.mark.slow

# Recorded: EDC's `POST /v3/catalog/request` (management API) made EDC send this to our
# /dsp/2025-1/catalog/request; our node answered 400 FilterNotSupported before it honoured
# EDC's first-page QuerySpec.
EDC_CATALOG_REQUEST = (b'{"@type":"CatalogRequestMessage","filter":[{"@type":"QuerySpec","limit":50,"offset":0,'
                       b'"sortOrder":"ASC","filterExpression":[]}],"@context":["https://w3id.org/dspace/2025/1/context.jsonld",'
                       b'"https://w3id.org/edc/dspace/v0.0.1"]}')
EDC_TOKEN = '{"region":"eu","audience":"%s/dsp/2025-1","clientId":"edc-consumer"}'


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = edc_mode_node(tmp_path_factory.mktemp("edcmode")).start()
    for i in range(3):
        node.publish(f"dataset-{i}", f"offer-{i}")
    yield node
    node.stop()


def post_catalog(node, body: bytes, token: str | None = None):
    return httpx.post(f"{node.url}/dsp/2025-1/catalog/request", content=body, timeout=20,
                      headers={"Content-Type": "application/json", "Authorization": token or EDC_TOKEN % node.url})


def test_edc_catalog_request_with_its_first_page_queryspec_gets_the_catalog(node):
    resp = post_catalog(node, EDC_CATALOG_REQUEST)
    assert resp.status_code == 200, resp.text
    assert {d["@id"] for d in resp.json()["dataset"]} == {"dataset-0", "dataset-1", "dataset-2"}


def test_edc_queryspec_limit_is_honoured(node):
    resp = post_catalog(node, EDC_CATALOG_REQUEST.replace(b'"limit":50', b'"limit":2'))
    assert resp.status_code == 200 and len(resp.json()["dataset"]) == 2


@pytest.mark.parametrize("change", [(b'"offset":0', b'"offset":1'),
                                    (b'"filterExpression":[]', b'"filterExpression":[{"operandLeft":"id","operator":"=","operandRight":"x"}]')])
def test_edc_queryspec_we_cannot_honour_is_refused_by_name(node, change):
    resp = post_catalog(node, EDC_CATALOG_REQUEST.replace(*change))
    assert resp.status_code == 400
    assert resp.json()["@type"] == "CatalogError" and resp.json()["code"] == "FilterNotSupported"


def test_edc_mock_token_without_client_id_is_refused(node):
    resp = post_catalog(node, EDC_CATALOG_REQUEST, token='{"region":"eu","audience":"x"}')
    assert resp.status_code == 401 and "clientId" in " ".join(resp.json()["reason"])


def test_edc_mock_mode_is_refused_when_only_the_environment_asks_for_it(tmp_path):
    config_mod.init_directory(tmp_path, name="Org", shared_secret="s" * 20)
    with pytest.raises(config_mod.ConfigError, match="edc-iam-mock-test-only"):
        config_mod.load(tmp_path, environ={"CONNECTOR_IDENTITY_MODE": "edc-iam-mock-test-only"})
    config = tmp_path / "connector.toml"
    config.write_text(config.read_text().replace('mode = "dev-shared-secret"', 'mode = "edc-iam-mock-test-only"'))
    assert config_mod.load(tmp_path, environ={}).identity_mode == "edc-iam-mock-test-only"


# Recorded: what EDC's provider sent our consumer (tests/interop/test_edc.py, our node as consumer).
# It sent this ContractAgreementMessage twice, 24 ms apart, each with a new message @id; our node
# answered the second with 400 InvalidStateTransition (it had already verified), and EDC, taking
# that as fatal, terminated the negotiation.
EDC_AGREEMENT = {
    "@id": "0287cf2d-c190-404f-891d-18d32159f0e7", "@type": "ContractAgreementMessage",
    "providerPid": "996b4404-cd6b-4313-aa8b-a90dce046d31", "consumerPid": "CONSUMER_PID",
    "agreement": {"@id": "d7c81366-7670-4eb2-8e31-e226d484a10d", "@type": "Agreement", "permission": [{"action": "use"}],
                  "assignee": "OUR_ID", "assigner": "edc-provider", "target": "edc-asset",
                  "timestamp": "2026-12-02T04:36:48Z"},
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld", "https://w3id.org/edc/dspace/v0.0.1"]}
EDC_FINALIZED = {
    "@id": "1ffd5bee-bab7-4684-a207-5c12c7943c62", "@type": "ContractNegotiationEventMessage",
    "consumerPid": "CONSUMER_PID", "providerPid": "996b4404-cd6b-4313-aa8b-a90dce046d31", "eventType": "FINALIZED",
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld", "https://w3id.org/edc/dspace/v0.0.1"]}
# EDC gives the pull endpoint only as an endpointProperty with an EDC IRI name (no "endpoint" key), and
# its data plane cannot decode "Bearer <token>": our consumer answered 409 "the provider gave no
# endpoint", then EDC answered 403 "Failed to decode token".
EDC_TRANSFER_START = {
    "@id": "64920b87-088d-4a94-b793-a24f7749b562", "@type": "TransferStartMessage",
    "providerPid": "b266ee66-3f69-46da-baf1-c65ff4288ef2", "consumerPid": "CONSUMER_PID",
    "dataAddress": {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP", "endpointProperties": [
        {"@type": "EndpointProperty", "name": "https://w3id.org/edc/v0.0.1/ns/endpoint", "value": "ORIGIN/public"},
        {"@type": "EndpointProperty", "name": "https://w3id.org/edc/v0.0.1/ns/authType", "value": "bearer"},
        {"@type": "EndpointProperty", "name": "https://w3id.org/edc/v0.0.1/ns/endpointType",
         "value": "https://w3id.org/idsa/v4.1/HTTP"},
        {"@type": "EndpointProperty", "name": "https://w3id.org/edc/v0.0.1/ns/authorization",
         "value": "eyJraWQiOiJ0cC12ZXJpZmllciIsImFsZyI6IkVTMjU2In0.eyJpc3MiOiJlZGMtcHJvdmlkZXIifQ.waWUujQ3cPg4xPKs"}]},
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld", "https://w3id.org/edc/dspace/v0.0.1"]}
EDC_DATA = b"x,y\n" + b"1,2\n" * 100


class EdcLikeProvider:
    """Answers our consumer's DSP requests as EDC's provider did (ids from the recording) and serves
    the pull endpoint as EDC's data plane does: the Authorization header must be the token verbatim."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.received: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(request.path)
        doc = json.loads(await request.read())
        ctx = {"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"]}
        if request.path.endswith("/transfers/request"):
            return web.json_response({**ctx, "@type": "TransferProcess", "providerPid": EDC_TRANSFER_START["providerPid"],
                                      "consumerPid": doc["consumerPid"], "state": "REQUESTED"}, status=201)
        return web.json_response({**ctx, "@type": "ContractNegotiation", "providerPid": EDC_AGREEMENT["providerPid"],
                                  "consumerPid": doc.get("consumerPid"), "state": "REQUESTED"},
                                 status=201 if request.path.endswith("/negotiations/request") else 200)

    async def data(self, request: web.Request) -> web.Response:
        token = EDC_TRANSFER_START["dataAddress"]["endpointProperties"][3]["value"]
        if request.headers.get("Authorization") != token:
            return web.json_response({"errors": ["Failed to decode token"]}, status=403)
        return web.Response(body=EDC_DATA, content_type="text/csv")

    async def well_known(self, request: web.Request) -> web.Response:
        return web.json_response({"protocolVersions": [{"version": "2025-1", "path": "/protocol/2025-1", "binding": "HTTPS"}]})

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.add_routes([web.get("/.well-known/dspace-version", self.well_known), web.get("/public", self.data),
                        web.post("/{tail:.*}", self.handle)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(self.url.rsplit(":", 1)[1])).start()
        return runner


def replayed(message: dict, consumer_pid: str, our_id: str, origin: str, new_id: str | None = None) -> bytes:
    text = json.dumps(message).replace("CONSUMER_PID", consumer_pid).replace("OUR_ID", our_id).replace("ORIGIN", origin)
    doc = json.loads(text)
    if new_id:
        doc["@id"] = new_id
    return json.dumps(doc).encode()


async def test_edc_provider_recorded_agreement_twice_then_start_with_endpoint_property(node):
    peer = EdcLikeProvider()
    runner = await peer.start()
    token = {"Authorization": '{"region":"eu","audience":"x","clientId":"edc-provider"}',
             "Content-Type": "application/json"}
    api = {"X-Api-Key": node.settings.management_api_key}
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            offer = {"@id": "Y2Qx:ZWRjLWFzc2V0:MWMw", "@type": "Offer", "permission": [{"action": "use"}], "target": "edc-asset"}
            resp = await client.post(f"{node.url}/api/v1/negotiations", headers=api, json={
                "counterPartyAddress": peer.url, "counterPartyId": "edc-provider", "datasetId": "edc-asset", "offer": offer})
            assert resp.status_code == 201, resp.text
            cpid = resp.json()["id"]
            for _ in range(100):
                if (await client.get(f"{node.url}/api/v1/negotiations/{cpid}", headers=api)).json()["providerPid"]:
                    break
                await asyncio.sleep(0.05)
            url = f"{node.url}/dsp/2025-1/negotiations/{cpid}"
            first = await client.post(url + "/agreement", headers=token,
                                      content=replayed(EDC_AGREEMENT, cpid, node.participant_id, peer.url))
            assert first.status_code == 200, first.text
            again = await client.post(url + "/agreement", headers=token, content=replayed(
                EDC_AGREEMENT, cpid, node.participant_id, peer.url, new_id="1b7c0e55-5f7a-4f57-9d25-0a4f1b7e9c3d"))
            assert again.status_code == 200, again.text
            done = await client.post(url + "/events", headers=token,
                                     content=replayed(EDC_FINALIZED, cpid, node.participant_id, peer.url))
            assert done.status_code == 200, done.text
            neg = (await client.get(f"{node.url}/api/v1/negotiations/{cpid}?waitFor=FINALIZED&timeout=10", headers=api)).json()
            assert neg["state"] == "FINALIZED", neg

            resp = await client.post(f"{node.url}/api/v1/transfers", headers=api, json={
                "agreementId": EDC_AGREEMENT["agreement"]["@id"], "format": "HttpData-PULL"})
            assert resp.status_code == 201, resp.text
            tpid = resp.json()["id"]
            for _ in range(100):
                if (await client.get(f"{node.url}/api/v1/transfers/{tpid}", headers=api)).json()["providerPid"]:
                    break
                await asyncio.sleep(0.05)
            start = await client.post(f"{node.url}/dsp/2025-1/transfers/{tpid}/start", headers=token,
                                      content=replayed(EDC_TRANSFER_START, tpid, node.participant_id, peer.url))
            assert start.status_code == 200, start.text
            data = await client.get(f"{node.url}/api/v1/transfers/{tpid}/data", headers=api)
            assert data.status_code == 200 and data.content == EDC_DATA, data.text[:300]
    finally:
        await runner.cleanup()
