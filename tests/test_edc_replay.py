"""Messages a real Eclipse EDC (0.15.1, iam-mock) sent to our node in the interop tests
(tests/interop/test_edc.py), recorded byte for byte and replayed against a real node process in
the test-only `edc-iam-mock-test-only` identity mode, so what our node once mishandled stays fixed
without Java. Also the mode's configuration rules."""
import httpx
import pytest

from connector import config as config_mod
from support.interop import edc_mode_node

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
