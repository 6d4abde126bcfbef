"""Real processes for the cross-border compliance tests (issue 14): a clearing house, a provider in
Guangzhou and a consumer in Hong Kong, both logging there, and an offer under the GBA template."""
from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from connector.clearinghouse.testing import ClearingHouseProcess
from support.nodes import SHARED_SECRET, NodeProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
GBA = json.loads((ROOT / "policies" / "gba-cross-border-personal-information.jsonld").read_text())
CATEGORIES = ["pd:Name", "pd:TelephoneNumber", "pd:Identifier", "pd:Age", "pd:Gender", "pd:MedicalHealth"]
OPEN = {"permission": [{"action": "use"}]}


@contextlib.contextmanager
def gba_parties(base: Path, *, provider_name: str = "Pearl River Medical Centre", consumer_name: str = "Harbour Lab",
                offers: dict[str, dict] | None = None, provider_database_url: str | None = None,
                ) -> Iterator[tuple[ClearingHouseProcess, NodeProcess, NodeProcess]]:
    """Started and stopped; the provider offers asset "visits" under the GBA template (offer
    "offer-visits") and any of `offers` (asset id -> contract policy) the same way."""
    port = free_port()
    ch = ClearingHouseProcess(base / "ch", shared_secret=SHARED_SECRET, port=port)
    env = {"CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{port}", "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key,
           "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch.audience}
    provider = NodeProcess(base / "pearl", provider_name, jurisdiction="CN-GD-GZ", env=env,
                           database_url=provider_database_url, participant_id=f"urn:hks:participant:pearl-{secrets.token_hex(3)}")
    consumer = NodeProcess(base / "harbour", consumer_name, jurisdiction="HK", env=env,
                           participant_id=f"urn:hks:participant:harbour-{secrets.token_hex(3)}")
    for node in (provider, consumer):
        subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(ch.directory),
                        "--node", str(node.directory)], check=True, capture_output=True)
    (provider.directory / "data").mkdir(exist_ok=True)
    (provider.directory / "data" / "visits.csv").write_text("patient_id,name,phone,age\nP1,Li,91234567,40\n")
    try:
        ch.start()
        provider.start()
        consumer.start()
        provider.api("POST", "/policies", {"id": "open", "policy": OPEN}, expect=201)
        for asset, policy in {"visits": GBA, **(offers or {})}.items():
            provider.api("POST", "/policies", {"id": f"contract-{asset}", "policy": policy}, expect=201)
            provider.api("POST", "/assets", {"id": asset, "contentType": "text/csv",
                                             "dataAddress": {"type": "file", "path": "visits.csv"},
                                             "properties": {"dataCategories": CATEGORIES}}, expect=201)
            provider.api("POST", "/offers", {"id": f"offer-{asset}", "assetIds": [asset], "accessPolicyId": "open",
                                             "contractPolicyId": f"contract-{asset}"}, expect=201)
        yield ch, provider, consumer
    finally:
        for process in (consumer, provider, ch):
            process.stop()


def agree(consumer: NodeProcess, provider: NodeProcess, asset: str) -> str:
    neg = consumer.wait_state(consumer.negotiate(provider, asset, f"offer-{asset}")["id"])
    assert neg["state"] == "FINALIZED", neg
    return neg["agreement"]["@id"]
