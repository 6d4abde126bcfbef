"""What a refused requester is told about an offer's access policy: which of its own attributes
refused, never the values the policy admits (the access policy decides who even sees an offer, so
its contents are the provider's). Our own record keeps the engine's full sentences."""
from __future__ import annotations

import time

from connector.identity import Caller
from connector.node.usage import AccessDenied, AccessRefusal, PolicyCache, access_denied_text, access_refusal

ADMITTED = "urn:hks:participant:admitted-partner"


def _policy(*constraints: dict) -> dict:
    return {"permission": [{"action": "use", "constraint": list(constraints)}]}


def _refuse(policy: dict, caller: Caller) -> AccessRefusal | None:
    return access_refusal(PolicyCache(), policy, caller=caller, target="ds-1", now=time.time(), asset_properties={})


def test_the_requester_learns_its_own_value_not_the_admitted_ones():
    policy = _policy({"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf", "rightOperand": ["HK", "MO"]},
                     {"leftOperand": "hks:organisation", "operator": "isAnyOf", "rightOperand": [{"@id": ADMITTED}]})
    denied = _refuse(policy, Caller("urn:hks:participant:merlion", {"jurisdiction": "SG"}))
    assert denied is not None
    full, told = access_denied_text(denied), " ".join(denied.peer)
    assert "HK" in full and ADMITTED in full  # our access log: the whole rule
    assert "SG" in told and "urn:hks:participant:merlion" in told  # the requester's own values
    assert "HK" not in told and "MO" not in told and ADMITTED not in told and "(not disclosed)" in told
    error = AccessDenied(denied, offer_id="o-1")
    assert str(error) == "Refused by the offer's access policy: " + told  # the DSP error the requester gets
    assert ADMITTED in " ".join(error.reasons)


def test_other_refusals_name_the_attribute_or_the_rule_only():
    before = _policy({"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2001-01-01T00:00:00Z"})
    denied = _refuse(before, Caller("urn:hks:participant:late", {}))
    assert denied is not None and "2001" in " ".join(denied)
    assert "2001" not in " ".join(denied.peer) and denied.peer
    assert _refuse(_policy(), Caller("urn:hks:participant:any", {})) is None


def test_a_gone_offer_and_a_broken_policy_refuse_and_say_only_that():
    gone = access_refusal(PolicyCache(), None, caller=Caller("urn:x", {}), target="ds-1", now=0.0,
                          asset_properties={}, offer_id="o-9")
    assert gone is not None and gone.peer == list(gone) and "no longer offered" in gone.peer[0]
