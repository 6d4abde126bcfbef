"""The DSP transfer-process state machine: one transition table for both roles (a
:class:`~connector.protocol.machine.TransitionTable`, like negotiation.py). Source: the DSP state diagram, same in 2024-1 and
2025-1; the TCK enforces that there is no SUSPENDED -> COMPLETED and no
REQUESTED -> COMPLETED/SUSPENDED (reference DIGEST §5.3)."""
from __future__ import annotations

from enum import Enum

from .machine import Role, TransitionTable


class TransferState(str, Enum):
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


class TransferEvent(str, Enum):
    REQUEST = "TransferRequestMessage"
    START = "TransferStartMessage"
    SUSPEND = "TransferSuspensionMessage"
    COMPLETE = "TransferCompletionMessage"
    TERMINATE = "TransferTerminationMessage"


TRANSFER_TERMINAL = frozenset({TransferState.COMPLETED, TransferState.TERMINATED})

C, P = Role.CONSUMER, Role.PROVIDER
S, E = TransferState, TransferEvent

_TABLE: dict[tuple[TransferState | None, Role, TransferEvent], TransferState] = {
    (None, C, E.REQUEST): S.REQUESTED,
    (S.REQUESTED, P, E.START): S.STARTED,  # only the provider starts
    (S.REQUESTED, C, E.TERMINATE): S.TERMINATED,
    (S.REQUESTED, P, E.TERMINATE): S.TERMINATED,
}
for _role in Role:
    _TABLE[(S.STARTED, _role, E.COMPLETE)] = S.COMPLETED
    _TABLE[(S.STARTED, _role, E.SUSPEND)] = S.SUSPENDED
    _TABLE[(S.STARTED, _role, E.TERMINATE)] = S.TERMINATED
    _TABLE[(S.SUSPENDED, _role, E.START)] = S.STARTED  # resumption, by either side
    _TABLE[(S.SUSPENDED, _role, E.TERMINATE)] = S.TERMINATED


TRANSFER: TransitionTable[TransferState, TransferEvent] = TransitionTable(
    _TABLE, TRANSFER_TERMINAL, what="transfer state")
TRANSFER_TRANSITIONS = TRANSFER.transitions  # read-only

#: the state after `sender` sends `event` in `state`, or InvalidTransition
next_transfer_state = TRANSFER.next
transfer_allowed = TRANSFER.allowed
