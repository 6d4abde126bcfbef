"""The DSP contract-negotiation state machine: one transition table for both roles
(a :class:`~connector.protocol.machine.TransitionTable`, the type the transfer machine
uses too). Table source: the DSP state diagram (same in 2024-1 and
2025-1), with the TCK's reading of the ambiguous cases (see reference DIGEST §4.2).
"""
from __future__ import annotations

from enum import Enum

from .machine import Role, TransitionTable

__all__ = ["Role", "State", "Event", "TERMINAL", "TRANSITIONS", "NEGOTIATION", "next_state", "allowed"]


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
_TABLE: dict[tuple[State | None, Role, Event], State] = {
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
            _TABLE[(_state, _role, Event.TERMINATE)] = State.TERMINATED


NEGOTIATION: TransitionTable[State, Event] = TransitionTable(_TABLE, TERMINAL, what="state")
TRANSITIONS = NEGOTIATION.transitions  # read-only

#: the state after `sender` sends `event` in `state`, or InvalidTransition
next_state = NEGOTIATION.next
allowed = NEGOTIATION.allowed
