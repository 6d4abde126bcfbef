"""Usage control: ODRL 2.2 policies parsed once, compiled, and evaluated.

Pure: no I/O, no clock. Typical use::

    from connector.policy import compile_policy, Request, Context

    policy = compile_policy(offer_json, contexts=connector.vocab.policy_contexts())  # once; PolicyError if invalid
    decision = policy.evaluate(
        Request(action="use", target=dataset_id, assignee=consumer_id),
        Context(now=now, purpose="hks:MedicalResearch", recipient_jurisdiction="HK",
                use_count=3, agreement_time=agreed_at, data_categories={"pd:HealthRecord"}),
    )
    decision.permitted, decision.reasons, decision.duties, decision.explain()

``policy.report(request, context)`` evaluates every rule and explains each.
"""

from .compiled import CompiledPolicy
from .compiler import CompileOptions, compile_policy, parse_policy
from .errors import PolicyError
from .model import (
    ConstraintReport,
    Context,
    Decision,
    Duty,
    DutyReport,
    Effect,
    PolicyReport,
    Reason,
    Request,
    RuleReport,
)
from .values import Duration

__all__ = [
    "CompileOptions",
    "CompiledPolicy",
    "ConstraintReport",
    "Context",
    "Decision",
    "Duration",
    "Duty",
    "DutyReport",
    "Effect",
    "PolicyError",
    "PolicyReport",
    "Reason",
    "Request",
    "RuleReport",
    "compile_policy",
    "evaluate",
    "parse_policy",
]


def evaluate(policy: CompiledPolicy, request: Request, context: Context) -> Decision:
    """Decide ``request`` under ``policy`` in ``context`` (same as policy.evaluate)."""
    return policy.evaluate(request, context)
