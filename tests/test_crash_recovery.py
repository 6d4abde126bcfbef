"""Kill the provider with SIGKILL in the middle of a negotiation, restart it, and the
negotiation still reaches FINALIZED with each message applied once."""
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine

from support.nodes import NodeProcess

pytestmark = pytest.mark.slow


def sync_url(node):
    return node.settings.database_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg") \
        if "sqlite" in node.settings.database_url else None


def rows(node, query):
    engine = create_engine(sync_url(node))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def wait_outbox_drained(node, timeout=30.0):
    deadline = time.monotonic() + timeout
    while rows(node, "SELECT id FROM outbox WHERE status = 'pending'") and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.parametrize("crash_point", [
    # after committing REQUESTED->AGREED with the agreement queued, before answering the consumer
    "committed:ContractAgreementMessage",
    # after committing VERIFIED->FINALIZED with the event queued, before sending it
    "committed:ContractNegotiationEventMessage",
])
def test_provider_killed_mid_negotiation_recovers(tmp_path, crash_point):
    provider = NodeProcess(tmp_path / "provider", "Provider")
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    provider.start()
    provider.publish()
    provider.stop()
    provider.start(extra_env={"CONNECTOR_FAILPOINTS": crash_point})
    try:
        started = consumer.negotiate(provider)
        assert provider.wait_exit(20) == -9  # it really died by SIGKILL at the crash point
        provider.start()  # restarted without the crash point
        neg = consumer.wait_state(started["id"], timeout=60)
        assert neg["state"] == "FINALIZED", neg
        theirs = [n for n in provider.api("GET", "/negotiations") if n["consumerPid"] == neg["consumerPid"]]
        assert len(theirs) == 1 and theirs[0]["state"] == "FINALIZED"
        assert theirs[0]["agreement"]["@id"] == neg["agreement"]["@id"]
        # a message that hit the dead provider is retried with backoff; the replay is answered idempotently
        wait_outbox_drained(consumer)
        wait_outbox_drained(provider)
    finally:
        provider.stop()
        consumer.stop()
    # Applied once: every transition bumps the row version exactly once.
    # provider: created with its agreement (1), verification + finalize (2)
    # consumer: created (1), agreement + verification (2), finalized (3)
    [p] = rows(provider, "SELECT version, state FROM negotiations")
    [c] = rows(consumer, "SELECT version, state FROM negotiations")
    assert (p["version"], c["version"]) == (2, 3)
    assert len(rows(provider, "SELECT id FROM agreements")) == 1
    assert len(rows(consumer, "SELECT id FROM agreements")) == 1
    # every queued message was delivered, none is left behind or failed
    for node, kinds in ((provider, 2), (consumer, 2)):
        out = rows(node, "SELECT kind, status FROM outbox")
        assert len(out) == kinds and {o["status"] for o in out} == {"sent"}, out


def test_consumer_down_while_provider_sends_then_recovers(tmp_path):
    """The provider's agreement cannot be delivered while the consumer is dead: the
    outbox keeps it and retries with backoff until the consumer is back."""
    provider = NodeProcess(tmp_path / "provider", "Provider").start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer")
    consumer.start(extra_env={"CONNECTOR_FAILPOINTS": "committed:ContractAgreementVerificationMessage"})
    try:
        provider.publish()
        started = consumer.negotiate(provider)
        assert consumer.wait_exit(20) == -9
        time.sleep(1.0)
        consumer.start()
        neg = consumer.wait_state(started["id"], timeout=60)
        assert neg["state"] == "FINALIZED"
    finally:
        provider.stop()
        consumer.stop()
    [c] = rows(consumer, "SELECT version FROM negotiations")
    assert c["version"] == 3
