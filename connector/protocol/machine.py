"""One transition-table type for the DSP state machines (negotiation and transfer).

Like h11, a machine does not know which side it runs on: every event names the
party that sends it, and the same table judges a message we are about to send and
a message a peer sent us. A table maps ``(state before, sender, event)`` to the
state after; ``None`` as the state before is "no process yet".
"""
from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Generic, Mapping, TypeVar

from .errors import InvalidTransition

__all__ = ["Role", "TransitionTable"]


class Role(str, Enum):
    CONSUMER = "consumer"
    PROVIDER = "provider"


S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


class TransitionTable(Generic[S, E]):
    """An immutable table of legal transitions, and the terminal states it never leaves.

    ``what`` names the state in refusals ("state", "transfer state").
    """

    def __init__(self, transitions: Mapping[tuple[S | None, Role, E], S], terminal: frozenset[S], *, what: str):
        leaving = sorted({s.value for (s, _, _) in transitions if s in terminal})
        if leaving:
            raise ValueError(f"terminal states must be absorbing: {leaving}")
        self.transitions: Mapping[tuple[S | None, Role, E], S] = MappingProxyType(dict(transitions))
        self.terminal = terminal
        self.what = what

    def next(self, state: S | None, sender: Role, event: E) -> S:
        """The state after ``sender`` sends ``event`` in ``state``, or InvalidTransition."""
        try:
            return self.transitions[(state, sender, event)]
        except KeyError:
            where = state.value if state else "no process"
            raise InvalidTransition(
                f"{event.value} from the {sender.value} is not allowed in {self.what} {where}"
            ) from None

    def allowed(self, state: S | None, sender: Role, event: E) -> bool:
        return (state, sender, event) in self.transitions
