"""An outbox owner that records nothing, for tests that drive the dispatcher's flush alone."""
from connector.node.durable import DurableOwner


class QuietOwner(DurableOwner):
    """What the dispatcher calls back when a row is marked sent, refused or dead: nothing to record."""
    name = "test"
    kinds = frozenset({"test"})

    def on_sent(self, conn, entry, response):  # noqa: ANN001, ANN201
        return None

    def on_refused(self, conn, entry, error):  # noqa: ANN001, ANN201
        return None

    def on_dead(self, conn, entry, cause):  # noqa: ANN001, ANN201
        return None
