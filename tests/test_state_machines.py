"""Both DSP transition tables against the DSP state diagrams, written out here independently.

The diagrams are copied by hand from the specification (contract.negotiation.state.machine.puml
and transfer-process-state-machine.puml, the same in 2024-1 and 2025-1; reference DIGEST §4.2
and §5.3), as text, with the message names the specification uses. Nothing here is read back
from the tables: every (state, sender, message) triple is checked, legal or not.
"""
from __future__ import annotations

import itertools

import pytest

from connector.protocol.errors import InvalidTransition
from connector.protocol.machine import Role, TransitionTable
from connector.protocol.negotiation import NEGOTIATION, next_state
from connector.protocol.transfer import TRANSFER, next_transfer_state

# from -> to | message | sender (C, P or CP); "-" is no process yet
NEGOTIATION_DIAGRAM = """
-          -> REQUESTED  | ContractRequestMessage                 | C
-          -> OFFERED    | ContractOfferMessage                   | P
REQUESTED  -> OFFERED    | ContractOfferMessage                   | P
REQUESTED  -> AGREED     | ContractAgreementMessage               | P
REQUESTED  -> TERMINATED | ContractNegotiationTerminationMessage  | CP
OFFERED    -> REQUESTED  | ContractRequestMessage                 | C
OFFERED    -> ACCEPTED   | ACCEPTED                               | C
OFFERED    -> TERMINATED | ContractNegotiationTerminationMessage  | CP
ACCEPTED   -> AGREED     | ContractAgreementMessage               | P
ACCEPTED   -> TERMINATED | ContractNegotiationTerminationMessage  | P
AGREED     -> VERIFIED   | ContractAgreementVerificationMessage   | C
AGREED     -> TERMINATED | ContractNegotiationTerminationMessage  | C
VERIFIED   -> FINALIZED  | FINALIZED                              | P
VERIFIED   -> TERMINATED | ContractNegotiationTerminationMessage  | P
"""
# Deliberate additions to the diagram, each with its source:
# - the prose: termination "can be sent at any state", so either party, in any non-terminal state;
# - the TCK's own model (ContractNegotiation.java): a provider may replace its open offer.
NEGOTIATION_ADDITIONS = """
ACCEPTED   -> TERMINATED | ContractNegotiationTerminationMessage  | C
AGREED     -> TERMINATED | ContractNegotiationTerminationMessage  | P
VERIFIED   -> TERMINATED | ContractNegotiationTerminationMessage  | C
OFFERED    -> OFFERED    | ContractOfferMessage                   | P
"""
NEGOTIATION_STATES = ["REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED", "TERMINATED"]
NEGOTIATION_MESSAGES = ["ContractRequestMessage", "ContractOfferMessage", "ACCEPTED", "ContractAgreementMessage",
                        "ContractAgreementVerificationMessage", "FINALIZED", "ContractNegotiationTerminationMessage"]

TRANSFER_DIAGRAM = """
-          -> REQUESTED  | TransferRequestMessage      | C
REQUESTED  -> STARTED    | TransferStartMessage        | P
REQUESTED  -> TERMINATED | TransferTerminationMessage  | CP
STARTED    -> COMPLETED  | TransferCompletionMessage   | CP
STARTED    -> SUSPENDED  | TransferSuspensionMessage   | CP
STARTED    -> TERMINATED | TransferTerminationMessage  | CP
SUSPENDED  -> STARTED    | TransferStartMessage        | CP
SUSPENDED  -> TERMINATED | TransferTerminationMessage  | CP
"""
TRANSFER_STATES = ["REQUESTED", "STARTED", "SUSPENDED", "COMPLETED", "TERMINATED"]
TRANSFER_MESSAGES = ["TransferRequestMessage", "TransferStartMessage", "TransferSuspensionMessage",
                     "TransferCompletionMessage", "TransferTerminationMessage"]

SENDERS = {"C": "consumer", "P": "provider"}


def parse(diagram: str) -> dict[tuple[str | None, str, str], str]:
    """(from or None, sender, message) -> to, all as the specification's strings."""
    out = {}
    for line in filter(str.strip, diagram.splitlines()):
        arrow, message, senders = (part.strip() for part in line.split("|"))
        before, after = (s.strip() for s in arrow.split("->"))
        for s in senders:
            key = (None if before == "-" else before, SENDERS[s], message)
            assert key not in out, f"diagram lists {key} twice"
            out[key] = after
    return out


def as_strings(table: TransitionTable) -> dict[tuple[str | None, str, str], str]:
    return {(s.value if s else None, r.value, e.value): after.value for (s, r, e), after in table.transitions.items()}


def every_triple(states, messages):
    return itertools.product([None, *states], ["consumer", "provider"], messages)


def test_the_negotiation_table_is_the_dsp_diagram_plus_the_listed_additions():
    expected = parse(NEGOTIATION_DIAGRAM) | parse(NEGOTIATION_ADDITIONS)
    assert as_strings(NEGOTIATION) == expected


def test_the_transfer_table_is_the_dsp_diagram():
    assert as_strings(TRANSFER) == parse(TRANSFER_DIAGRAM)


@pytest.mark.parametrize("table,diagram,states,messages,step", [
    (NEGOTIATION, NEGOTIATION_DIAGRAM + NEGOTIATION_ADDITIONS, NEGOTIATION_STATES, NEGOTIATION_MESSAGES, next_state),
    (TRANSFER, TRANSFER_DIAGRAM, TRANSFER_STATES, TRANSFER_MESSAGES, next_transfer_state),
], ids=["negotiation", "transfer"])
def test_every_triple_outside_the_diagram_is_refused_with_400(table, diagram, states, messages, step):
    legal = parse(diagram)
    state_type = type(next(iter(table.terminal)))
    event_type = type(next(iter(table.transitions))[2])
    for before, sender, message in every_triple(states, messages):
        state = state_type(before) if before else None
        event, role = event_type(message), Role(sender)
        if (before, sender, message) in legal:
            assert step(state, role, event).value == legal[(before, sender, message)]
            assert table.allowed(state, role, event)
        else:
            assert not table.allowed(state, role, event)
            with pytest.raises(InvalidTransition) as err:
                step(state, role, event)
            assert err.value.status == 400  # not 409: the TCK expects 400 (docs/ARCHITECTURE.md)
            assert message in err.value.reason


def test_terminal_states_are_the_diagrams_and_have_no_way_out():
    assert {s.value for s in NEGOTIATION.terminal} == {"FINALIZED", "TERMINATED"}
    assert {s.value for s in TRANSFER.terminal} == {"COMPLETED", "TERMINATED"}
    for table, diagram in ((NEGOTIATION, NEGOTIATION_DIAGRAM), (TRANSFER, TRANSFER_DIAGRAM)):
        assert not {before for before, _, _ in parse(diagram)} & {s.value for s in table.terminal}


def test_a_table_whose_terminal_state_has_a_way_out_is_refused():
    from connector.protocol.transfer import TransferEvent, TransferState

    with pytest.raises(ValueError, match="absorbing"):
        TransitionTable({(TransferState.COMPLETED, Role.PROVIDER, TransferEvent.START): TransferState.STARTED},
                        frozenset({TransferState.COMPLETED}), what="transfer state")
