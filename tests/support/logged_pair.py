"""Two nodes that log to a clearing house, and a provider offer whose policy has a logging duty
(shared by the clearing-house and telemetry tests)."""
from __future__ import annotations

import subprocess
import sys

LOGGED = {"permission": [{"action": "use", "duty": [{"action": "hks:log"}]}]}


def start_logged_pair(ch, provider, consumer) -> None:  # noqa: ANN001
    """Trust the clearing house from both nodes, start the three, and publish `visits` (a CSV file)
    under the offer `offer` with the logging-duty policy `logged`."""
    for node in (provider, consumer):
        subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(ch.directory),
                        "--node", str(node.directory)], check=True, capture_output=True)
    (provider.directory / "data").mkdir(exist_ok=True)
    (provider.directory / "data" / "visits.csv").write_text("patient_id,age\nP1,40\nP2,51\n")
    ch.start()
    provider.start()
    consumer.start()
    provider.api("POST", "/policies", {"id": "logged", "policy": LOGGED}, expect=201)
    provider.api("POST", "/assets", {"id": "visits", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    provider.api("POST", "/offers", {"id": "offer", "assetIds": ["visits"], "accessPolicyId": "logged",
                                     "contractPolicyId": "logged"}, expect=201)
