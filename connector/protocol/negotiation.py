"""The DSP contract-negotiation state machine: one transition table for both roles.

Like h11, the machine does not know which side it runs on. Every event names the
party that sends it, and the same table judges a message we are about to send and
a message a peer sent us. Table source: the DSP state diagram (same in 2024-1 and
2025-1), with the TCK's reading of the ambiguous cases (see reference DIGEST §4.2).
"""
from __future__ import annotations

from enum import Enum

from .errors import InvalidTransition


class Role(str, Enum):
    CONSUMER = "consumer"
    PROVIDER = "provider"


class State(str, Enum):
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class Event(str, Enum):
    REQUEST = "ContractRequestMessage"
    OFFER = "ContractOfferMessage"
    ACCEPT = "ACCEPTED"  # ContractNegotiationEventMessage eventType ACCEPTED
    AGREE = "ContractAgreementMessage"
    VERIFY = "ContractAgreementVerificationMessage"
    FINALIZE = "FINALIZED"  # ContractNegotiationEventMessage eventType FINALIZED
    TERMINATE = "ContractNegotiationTerminationMessage"


TERMINAL = frozenset({State.FINALIZED, State.TERMINATED})

C, P = Role.CONSUMER, Role.PROVIDER

# (state before, sender, event) -> state after. `None` is "no process yet".
TRANSITIONS: dict[tuple[State | None, Role, Event], State] = {
    (None, C, Event.REQUEST): State.REQUESTED,
    (None, P, Event.OFFER): State.OFFERED,
    (State.REQUESTED, P, Event.OFFER): State.OFFERED,
    (State.REQUESTED, P, Event.AGREE): State.AGREED,
    (State.OFFERED, C, Event.REQUEST): State.REQUESTED,
    (State.OFFERED, C, Event.ACCEPT): State.ACCEPTED,
    # A provider may replace its own open offer (the TCK's model allows OFFERED -> OFFERED).
    (State.OFFERED, P, Event.OFFER): State.OFFERED,
    (State.ACCEPTED, P, Event.AGREE): State.AGREED,
    (State.AGREED, C, Event.VERIFY): State.VERIFIED,
    (State.VERIFIED, P, Event.FINALIZE): State.FINALIZED,
}
# Termination: either party, from any state that is not terminal.
for _state in State:
    if _state not in TERMINAL:
        for _role in Role:
            TRANSITIONS[(_state, _role, Event.TERMINATE)] = State.TERMINATED


def next_state(state: State | None, sender: Role, event: Event) -> State:
    """The state after `sender` sends `event` in `state`, or InvalidTransition."""
    try:
        return TRANSITIONS[(state, sender, event)]
    except KeyError:
        where = state.value if state else "no process"
        raise InvalidTransition(
            f"{event.value} from the {sender.value} is not allowed in state {where}"
        ) from None


def allowed(state: State | None, sender: Role, event: Event) -> bool:
    return (state, sender, event) in TRANSITIONS
