"""Crash points for recovery tests: CONNECTOR_FAILPOINTS="committed:ContractAgreementMessage"
makes the process SIGKILL itself right after committing a transition that queued
that message, before anything is sent. Unset in normal operation."""
from __future__ import annotations

import os
import signal

_ACTIVE = frozenset(filter(None, os.environ.get("CONNECTOR_FAILPOINTS", "").split(",")))


def hit(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
