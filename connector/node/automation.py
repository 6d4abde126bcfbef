"""What the node does by itself after a negotiation event: pure decisions.

The service applies a message, then asks the strategy what to send next; the
answer is applied in the same transaction, so a crash never leaves a decision
half made. The TCK profile swaps in a scripted strategy (tck.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.errors import echo
from ..protocol.negotiation import Event, Role, State
from ..protocol.policies import same_terms

Json = dict[str, Any]


@dataclass(frozen=True)
class Action:
    event: Event
    reason: str | None = None
    code: str | None = None  # for terminations: why, machine-readable (e.g. PolicyDenied)
    details: Any = None  # e.g. the policy decision behind a refusal


@dataclass(frozen=True)
class View:
    """What a strategy may look at."""

    role: Role
    state: State
    dataset_id: str | None
    offer: Json | None  # current offer (provider: its own copy)
    requested_offer: Json | None  # consumer: the offer it asked for; provider: the consumer's last proposal
    agreement: Json | None
    own_participant_id: str
    counter_requests: int = 0


class DefaultStrategy:
    """Provider: agree when the consumer asks for exactly the offered terms; answer
    different terms once with the provider's own offer, then terminate. Consumer:
    verify an agreement that carries the terms it asked for; leave a counter-offer
    for the user to accept or terminate through the management API."""

    def after_received(self, view: View, received: Event) -> list[Action]:
        if view.role is Role.PROVIDER:
            return self._provider(view, received)
        return self._consumer(view, received)

    def after_started(self, view: View) -> list[Action]:  # consumer created a request
        return []

    def _provider(self, view: View, received: Event) -> list[Action]:
        if received is Event.REQUEST:
            proposal, offer = view.requested_offer, view.offer
            if proposal is not None and offer is not None and same_terms(proposal, offer):
                return [Action(Event.AGREE)]
            if view.counter_requests == 0:
                return [Action(Event.OFFER)]
            return [Action(Event.TERMINATE, "the requested terms differ from the provider's offer")]
        if received is Event.ACCEPT:
            return [Action(Event.AGREE)]
        if received is Event.VERIFY:
            return [Action(Event.FINALIZE)]
        return []

    def _consumer(self, view: View, received: Event) -> list[Action]:
        if received is Event.AGREE:
            problem = agreement_problem(view)
            if problem:
                return [Action(Event.TERMINATE, problem)]
            return [Action(Event.VERIFY)]
        if received is Event.OFFER:
            if view.requested_offer is not None and view.offer is not None and same_terms(view.requested_offer, view.offer):
                return [Action(Event.ACCEPT)]
            return []  # a counter-offer waits for the user
        return []


def agreement_problem(view: View) -> str | None:
    agreement = view.agreement or {}
    if view.dataset_id and agreement.get("target") != view.dataset_id:
        return f"agreement target {echo(agreement.get('target'))} is not the requested dataset {echo(view.dataset_id)}"
    if agreement.get("assignee") != view.own_participant_id:
        return f"agreement assignee {echo(agreement.get('assignee'))} is not this participant"
    expected = view.offer or view.requested_offer
    if expected is not None and not same_terms(agreement, expected):
        return "agreement terms differ from the offer"
    return None
