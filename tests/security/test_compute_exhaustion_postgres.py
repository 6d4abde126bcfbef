"""Exhausting a computation-only agreement's count concurrently through two provider replicas that
share one PostgreSQL database: the count is reserved under a row lock, so exactly the limit is served."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from support.access import held_token
from support.nodes import NodeProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
LIMIT = 5
POLICY = {"permission": [{"action": "hks:compute",
                          "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": LIMIT}],
                          "duty": [{"action": {"rdf:value": {"@id": "hks:aggregate"}, "refinement": [
                              {"leftOperand": "hks:groupByColumn", "operator": "isAnyOf", "rightOperand": ["district"]},
                              {"leftOperand": "hks:aggregateFunction", "operator": "isAnyOf", "rightOperand": ["count"]},
                              {"leftOperand": "hks:minGroupSize", "operator": "gteq", "rightOperand": 2}]}}]}]}


async def test_concurrent_exhaustion_across_two_replicas_serves_exactly_the_limit(tmp_path, pg_url):
    first = NodeProcess(tmp_path / "a", "Pearl", database_url=pg_url)
    second = NodeProcess(tmp_path / "b", "Pearl", database_url=pg_url, participant_id=first.participant_id)
    consumer = NodeProcess(tmp_path / "c", "Harbour")
    for replica in (first, second):
        (replica.directory / "data").mkdir(exist_ok=True)
        (replica.directory / "data" / "r.csv").write_text("district\n" + "A\n" * 20 + "B\n" * 20)
    first.start()  # applies the migrations before the second replica starts
    second.start()
    consumer.start()
    try:
        first.api("POST", "/assets", {"id": "r", "contentType": "text/csv",
                                      "dataAddress": {"type": "file", "path": "r.csv"}}, expect=201)
        first.api("POST", "/policies", {"id": "p", "policy": POLICY}, expect=201)
        first.api("POST", "/offers", {"id": "o", "assetIds": ["r"], "accessPolicyId": "p", "contractPolicyId": "p"},
                  expect=201)
        neg = consumer.wait_state(consumer.negotiate(first, "r", "o")["id"])
        assert neg["state"] == "FINALIZED", neg
        opened = httpx.post(f"{consumer.url}/api/v1/agreements/{neg['agreement']['@id']}/computations",
                            json={"query": "SELECT district, count(*) FROM data GROUP BY district"},
                            headers=consumer.headers(), timeout=60)
        assert opened.status_code == 200, opened.text  # computation 1 of 5
        tid = opened.json()["transferId"]
        token = held_token(consumer, tid)
        provider_tid = opened.json()["record"]["transfer"]

        def one(i: int) -> int:
            replica = (first, second)[i % 2]
            return httpx.post(f"{replica.url}/data/{provider_tid}", headers={"Authorization": token},
                              json={"query": "SELECT count(*) FROM data"}, timeout=60).status_code

        time.sleep(0.1)
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(one, range(12)))
        assert statuses.count(200) == LIMIT - 1 and statuses.count(403) == 12 - (LIMIT - 1), statuses
    finally:
        for node in (consumer, second, first):
            node.stop()
