"""The DSP transfer-process state machine: one transition table for both roles (h11
style, like negotiation.py). Source: the DSP state diagram, same in 2024-1 and
2025-1; the TCK enforces that there is no SUSPENDED -> COMPLETED and no
REQUESTED -> COMPLETED/SUSPENDED (reference DIGEST §5.3)."""
from __future__ import annotations

from enum import Enum

from .errors import InvalidTransition
from .negotiation import Role


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

TRANSFER_TRANSITIONS: dict[tuple[TransferState | None, Role, TransferEvent], TransferState] = {
    (None, C, E.REQUEST): S.REQUESTED,
    (S.REQUESTED, P, E.START): S.STARTED,  # only the provider starts
    (S.REQUESTED, C, E.TERMINATE): S.TERMINATED,
    (S.REQUESTED, P, E.TERMINATE): S.TERMINATED,
}
for _role in Role:
    TRANSFER_TRANSITIONS[(S.STARTED, _role, E.COMPLETE)] = S.COMPLETED
    TRANSFER_TRANSITIONS[(S.STARTED, _role, E.SUSPEND)] = S.SUSPENDED
    TRANSFER_TRANSITIONS[(S.STARTED, _role, E.TERMINATE)] = S.TERMINATED
    TRANSFER_TRANSITIONS[(S.SUSPENDED, _role, E.START)] = S.STARTED  # resumption, by either side
    TRANSFER_TRANSITIONS[(S.SUSPENDED, _role, E.TERMINATE)] = S.TERMINATED


def next_transfer_state(state: TransferState | None, sender: Role, event: TransferEvent) -> TransferState:
    """The state after `sender` sends `event` in `state`, or InvalidTransition."""
    try:
        return TRANSFER_TRANSITIONS[(state, sender, event)]
    except KeyError:
        where = state.value if state else "no process"
        raise InvalidTransition(
            f"{event.value} from the {sender.value} is not allowed in transfer state {where}"
        ) from None


def transfer_allowed(state: TransferState | None, sender: Role, event: TransferEvent) -> bool:
    return (state, sender, event) in TRANSFER_TRANSITIONS
