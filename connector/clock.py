"""The one clock a node reads, injected where time decides something (the outbox's deadlines,
leases and backoff; the data plane's token expiry, policy decisions, revocation checks and
delete duties), so that tests can drive time instead of sleeping on the wall clock.

`now()` is wall-clock time in seconds since the epoch (what is stored and compared with stored
times); `monotonic()` measures intervals in this process only. Calling the clock is `now()`,
so it can be passed wherever a `Callable[[], float]` clock is taken."""
from __future__ import annotations

import time


class Clock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def __call__(self) -> float:
        return self.now()


SYSTEM_CLOCK = Clock()
