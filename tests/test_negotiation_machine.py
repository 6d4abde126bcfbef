"""The contract-negotiation transition table (pure core). The table against the DSP diagram: test_state_machines.py."""
import pytest

from connector.protocol.errors import InvalidTransition
from connector.protocol.negotiation import TERMINAL, TRANSITIONS, Event, Role, State, allowed, next_state

C, P = Role.CONSUMER, Role.PROVIDER


@pytest.mark.parametrize("path", [
    [(C, Event.REQUEST), (P, Event.AGREE), (C, Event.VERIFY), (P, Event.FINALIZE)],
    [(C, Event.REQUEST), (P, Event.OFFER), (C, Event.ACCEPT), (P, Event.AGREE), (C, Event.VERIFY), (P, Event.FINALIZE)],
    [(P, Event.OFFER), (C, Event.REQUEST), (P, Event.OFFER), (C, Event.ACCEPT), (P, Event.AGREE), (C, Event.VERIFY), (P, Event.FINALIZE)],
])
def test_happy_paths_reach_finalized(path):
    state = None
    for sender, event in path:
        state = next_state(state, sender, event)
    assert state is State.FINALIZED


@pytest.mark.parametrize("state,sender,event", [
    (State.REQUESTED, C, Event.REQUEST),     # TCK CN:03-04: a second counter-request
    (State.OFFERED, C, Event.VERIFY),        # CN:03-02
    (State.ACCEPTED, C, Event.VERIFY),       # CN:03-03
    (State.REQUESTED, P, Event.FINALIZE),    # CN_C:03-01
    (State.OFFERED, P, Event.AGREE),         # CN_C:03-02
    (State.ACCEPTED, P, Event.FINALIZE),     # CN_C:03-04
    (State.ACCEPTED, P, Event.OFFER),        # CN_C:03-05
    (State.AGREED, P, Event.FINALIZE),       # CN_C:03-06
    (State.FINALIZED, C, Event.TERMINATE),   # CN:03-01
    (State.OFFERED, P, Event.ACCEPT),        # a provider never sends ACCEPTED
    (State.VERIFIED, C, Event.FINALIZE),     # a consumer never sends FINALIZED
    (None, P, Event.AGREE),
])
def test_tck_negative_cases_are_invalid(state, sender, event):
    with pytest.raises(InvalidTransition) as err:
        next_state(state, sender, event)
    assert err.value.status == 400
    assert event.value in err.value.reason


def test_termination_from_every_open_state_by_either_party():
    for state in State:
        for role in Role:
            assert allowed(state, role, Event.TERMINATE) == (state not in TERMINAL)


def test_terminal_states_are_absorbing():
    for (state, _, _), _ in TRANSITIONS.items():
        assert state not in TERMINAL
