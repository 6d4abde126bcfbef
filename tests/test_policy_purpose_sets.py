"""Several purposes at once (issue 14, item 5): a declared set of purposes, the ODRL set
operators on it, and a list where one value is expected refused (never read as text)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.policy import Context, Effect, PolicyError, Request
from support.policies import compile_policy
from connector.cli_policy import app

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]
GBA = ROOT / "policies" / "gba-cross-border-personal-information.jsonld"
MED, MKT, SCI, RND = "hks:MedicalResearch", "dpv:Marketing", "dpv:ScientificResearch", "dpv:ResearchAndDevelopment"


def one_constraint(op: str, right, *, lo: str = "purpose") -> dict:
    ro = [{"@id": x} for x in right] if isinstance(right, list) else {"@id": right}
    return {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Set", "uid": "urn:test:purposes",
            "permission": [{"action": "use", "constraint": [{"leftOperand": lo, "operator": op, "rightOperand": ro}]}]}


@pytest.mark.parametrize("op,right,declared,ok", [
    # isAnyOf: at least one declared purpose is (a kind of) one of the right operand's
    ("isAnyOf", [MED], {MED, MKT}, True),
    ("isAnyOf", [MED], {MKT}, False),
    ("isAnyOf", [SCI], {MED, MKT}, True),  # medical research is scientific research
    # isNoneOf: no declared purpose is (a kind of) any of them
    ("isNoneOf", [MKT], {MED, MKT}, False),
    ("isNoneOf", [MKT], {MED}, True),
    ("isNoneOf", [SCI], {MED}, False),
    # isPartOf: every declared purpose lies within the right operand
    ("isPartOf", [RND], {MED, SCI}, True),
    ("isPartOf", [RND], {MED, MKT}, False),
    # hasPart: the declaration contains each right-operand purpose (itself or a narrower one)
    ("hasPart", [MKT], {MED, MKT}, True),
    ("hasPart", [SCI], {MED}, True),
    ("hasPart", [MED, MKT], {MED}, False),
    ("hasPart", [MED], {SCI}, False),  # a broader declaration does not contain the narrower purpose
    # isAllOf: the declaration is all of them
    ("isAllOf", [MED, MKT], {MED, MKT}, True),
    ("isAllOf", [MED, MKT], {MED}, False),
    # isA: every declared purpose is a kind of it
    ("isA", MED, {MED}, True),
    ("isA", SCI, {MED, SCI}, True),
    ("isA", MED, {MED, MKT}, False),
    # eq / neq compare the declared set with the right operand as sets
    ("eq", MED, {MED}, True),
    ("eq", MED, {MED, MKT}, False),
    ("neq", MED, {MED, MKT}, True),
    ("neq", MED, {MED}, False),
])
def test_set_operators_on_a_declared_set_of_purposes(op, right, declared, ok):
    p = compile_policy(one_constraint(op, right))
    assert p.evaluate(Request("use"), Context(purpose=declared)).permitted is ok
    # the full report agrees with the fast path
    assert (p.report(Request("use"), Context(purpose=declared)).decision.effect is Effect.PERMIT) is ok


def test_one_purpose_declared_as_a_string_or_a_set_of_one_decides_alike():
    p = compile_policy(GBA.read_text())
    base = dict(now=datetime(2025, 3, 10, tzinfo=UTC), agreement_time=datetime(2025, 3, 1, tzinfo=UTC), use_count=0,
                recipient_jurisdiction="HK", data_categories={"pd:Name", "pd:HealthRecord"})
    for purpose in (MED, {MED}, [MED], (MED, "https://w3id.org/hks/ns#MedicalResearch")):
        d = p.evaluate(Request("use"), Context(purpose=purpose, **base))
        assert d.permitted, (purpose, d.explain())


def test_gba_template_refuses_medical_research_declared_together_with_marketing():
    p = compile_policy(GBA.read_text())
    ctx = Context(purpose=[MED, MKT], now=datetime(2025, 3, 10, tzinfo=UTC), agreement_time=datetime(2025, 3, 1, tzinfo=UTC),
                  use_count=0, recipient_jurisdiction="HK", data_categories={"pd:Name"})
    d = p.evaluate(Request("use"), ctx)
    assert d.effect is Effect.DENY
    text = " ".join(r.message for r in d.reasons)
    assert "Marketing" in text and "is not a kind of" in text


def test_an_empty_set_of_purposes_is_no_declaration_and_fails_closed():
    p = compile_policy(one_constraint("isNoneOf", [MKT]))
    d = p.evaluate(Request("use"), Context(purpose=set()))
    assert d.effect is Effect.DENY and {r.code for r in d.reasons} == {"operand-missing"}


@pytest.mark.parametrize("field", ["recipient_jurisdiction", "processing_location", "organisation", "connector",
                                   "security_profile"])
@pytest.mark.parametrize("value", [["HK", "SG"], ("HK",), {"HK"}, {"code": "HK"}])
def test_a_list_where_one_value_is_expected_is_an_error_never_text(field, value):
    with pytest.raises(ValueError, match=f"{field} takes one value"):
        Context(**{field: value})


def test_a_nested_list_in_a_set_of_purposes_is_an_error():
    with pytest.raises(ValueError, match="purpose takes a set of single values"):
        Context(purpose=[MED, [MKT]])
    with pytest.raises(ValueError, match="purpose takes a set of values"):
        Context(purpose={"@id": MED})
    with pytest.raises(ValueError, match="data_categories takes a set of single values"):
        Context(data_categories=[["pd:Name"]])


def test_a_list_of_values_for_a_single_value_operator_is_refused_at_creation():
    doc = one_constraint("eq", [MED, MKT])
    with pytest.raises(PolicyError) as e:
        compile_policy(doc)
    assert "operator eq takes one value, got a list of 2 (did you mean isAnyOf?)" in str(e.value)


def test_conflict_analysis_reads_purposes_as_sets():
    def doc(op_p, op_h, r_p, r_h):
        return {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Set", "uid": "urn:test:c",
                "permission": [{"action": "use", "constraint": [
                    {"leftOperand": "purpose", "operator": op_p, "rightOperand": [{"@id": x} for x in r_p]}]}],
                "prohibition": [{"action": "use", "constraint": [
                    {"leftOperand": "purpose", "operator": op_h, "rightOperand": [{"@id": x} for x in r_h]}]}]}
    # {medical research, marketing} meets both "any of medical research" and "any of marketing":
    # under the default conflict strategy the policy is refused when it is created
    with pytest.raises(PolicyError, match="conflict"):
        compile_policy(doc("isAnyOf", "isAnyOf", [MED], [MKT]))
    # every purpose within medical research vs every purpose within marketing: exclusive
    compile_policy(doc("isPartOf", "isPartOf", [MED], [MKT]))
    # the permission's purposes all lie within medical research, the prohibition needs a marketing one
    compile_policy(doc("isPartOf", "isAnyOf", [MED], [MKT]))
    compile_policy(doc("isAnyOf", "isNoneOf", [MKT], [MKT]))


def test_explain_cli_refuses_a_list_for_the_recipient_jurisdiction(tmp_path):
    f = tmp_path / "ctx.json"
    f.write_text(json.dumps({"context": {"now": "2025-03-10T00:00:00Z", "purpose": [MED],
                                         "recipient_jurisdiction": ["HK", "SG"]}}))
    r = CliRunner().invoke(app, ["explain", str(GBA), "--context", str(f)])
    assert r.exit_code == 2
    assert "recipient_jurisdiction takes one value" in r.output


def test_explain_cli_decides_a_set_of_purposes(tmp_path):
    f = tmp_path / "ctx.json"
    agreed = datetime(2025, 3, 1, tzinfo=UTC)
    f.write_text(json.dumps({"context": {"now": (agreed + timedelta(days=2)).isoformat(), "agreement_time": agreed.isoformat(),
                                         "use_count": 0, "purpose": [MED, MKT], "recipient_jurisdiction": "HK",
                                         "data_categories": ["pd:Name"]}}))
    r = CliRunner().invoke(app, ["explain", str(GBA), "--context", str(f), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["decision"] == "deny"
