"""connector.policy: parsing, refusal of bad input, ODRL semantics, explanations."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from connector.policy import (
    CompileOptions,
    Context,
    Duration,
    Effect,
    PolicyError,
    Request,
    evaluate,
)
from connector.policy.values import add_duration
from connector.vocab import policy_contexts
from support.policies import compile_policy, parse_policy
from support.reference import reference_dir

HKS_CONTEXT = policy_contexts()["https://w3id.org/hks/context.jsonld"]["@context"]

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]
SHARED = reference_dir()
needs_shared = pytest.mark.needs_reference("dsp/dsp-2025-1/example", "dsp/dsp-2024-1/example")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def policy(*permissions, prohibitions=(), obligations=(), conflict=None, **extra):
    doc = {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Set", "uid": "urn:test:p"}
    if permissions:
        doc["permission"] = list(permissions)
    if prohibitions:
        doc["prohibition"] = list(prohibitions)
    if obligations:
        doc["obligation"] = list(obligations)
    if conflict:
        doc["conflict"] = conflict
    doc.update(extra)
    return doc


def c(lo, op, ro):
    return {"leftOperand": lo, "operator": op, "rightOperand": ro}


def refused(doc, **kw) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as e:
        compile_policy(doc, **kw)
    return e.value.errors


# ---------------------------------------------------------------------------
# parsing: forms and contexts
# ---------------------------------------------------------------------------


def test_compact_with_no_context_uses_the_station_context():
    p = compile_policy({"@type": "Set", "uid": "urn:x", "permission": [{"action": "read"}]})
    assert p.evaluate(Request("read"), Context()).permitted


def test_text_input_and_bad_json():
    assert compile_policy('{"@type": "Set", "permission": [{"action": "use"}]}').evaluate(Request("use"), Context()).permitted
    errs = refused('{"@type": "Set", "permission": [')
    assert "not valid JSON" in errs[0][1] and errs[0][0].startswith("line 1")


@needs_shared
def test_dsp_2025_1_agreement_taken_out_of_its_message():
    msg = json.loads((SHARED / "dsp" / "dsp-2025-1" / "example" / "contract-agreement-message-full.json").read_text())
    agreement = msg["agreement"]
    agreement["permission"] = agreement["permission"][:1]
    p = compile_policy(agreement, context=msg["@context"])
    assert p.policy_type == "Agreement" and p.uid == "urn:uuid:e8dc8655-44c2-46ef-b701-4cffdc2faa44"
    req = Request("use", "urn:uuid:3dd1add4-4d2d-569e-d634-8394a8836d23", "http://example.com/Consumer")
    assert p.evaluate(req, Context(now=datetime(2023, 12, 31, 6, 0, tzinfo=UTC))).permitted
    assert p.evaluate(req, Context(now=datetime(2023, 12, 31, 6, 1, tzinfo=UTC))).effect is Effect.DENY
    other = Request("use", "urn:uuid:3dd1add4-4d2d-569e-d634-8394a8836d23", "http://example.com/Someone")
    assert p.evaluate(other, Context(now=datetime(2023, 1, 1, tzinfo=UTC))).effect is Effect.NOT_APPLICABLE


@needs_shared
def test_dsp_2025_1_example_with_unknown_left_operands_is_refused_everywhere():
    msg = json.loads((SHARED / "dsp" / "dsp-2025-1" / "example" / "contract-agreement-message-full.json").read_text())
    errs = refused(msg["agreement"], context=msg["@context"])
    assert len(errs) == 12
    assert errs[0] == ("permission[1].constraint[0].and[0].leftOperand",
                       "unknown left operand 'partner'; the engine understands ODRL 2.2, the station profile (hks:) and IDS operands")


@needs_shared
def test_dsp_2024_1_offer_and_its_operand_typo():
    msg = json.loads((SHARED / "dsp" / "dsp-2024-1" / "example" / "contract-offer-message.json").read_text())
    errs = refused(msg["dspace:offer"], context=msg["@context"])
    assert errs[0][0] == "permission[0].constraint[0].operand"
    assert "did you mean 'operator'" in errs[0][1]
    con = msg["dspace:offer"]["odrl:permission"][0]["odrl:constraint"][0]
    con["odrl:operator"] = con.pop("odrl:operand")
    p = compile_policy(msg["dspace:offer"], context=msg["@context"])
    assert p.policy_type == "Offer"
    req = Request("odrl:use", "urn:uuid:3dd1add8-4d2d-569e-d634-8394a8836a88", "urn:jashd766")
    assert p.evaluate(req, Context(now=datetime(2023, 6, 1, tzinfo=UTC))).permitted


def test_odrl_context_with_the_neq_typo_is_read_as_neq():
    doc = {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "urn:x",
           "permission": [{"action": "use", "constraint": [c("dateTime", "neq", {"@value": "2025-01-01T00:00:00Z", "@type": "xsd:dateTime"})]}]}
    p = compile_policy(doc)
    assert p.evaluate(Request("use"), Context(now=T0 + timedelta(seconds=1))).permitted
    assert p.evaluate(Request("use"), Context(now=T0)).effect is Effect.DENY
    expanded = {"@type": ["http://www.w3.org/ns/odrl/2/Set"], "@id": "urn:x",
                "http://www.w3.org/ns/odrl/2/permission": [{
                    "http://www.w3.org/ns/odrl/2/action": [{"@id": "http://www.w3.org/ns/odrl/2/use"}],
                    "http://www.w3.org/ns/odrl/2/constraint": [{
                        "http://www.w3.org/ns/odrl/2/leftOperand": [{"@id": "http://www.w3.org/ns/odrl/2/dateTime"}],
                        "http://www.w3.org/ns/odrl/2/operator": [{"@id": "http://www.w3.org/ns/odrl/2/neg"}],
                        "http://www.w3.org/ns/odrl/2/rightOperand": [{"@value": "2025-01-01T00:00:00Z"}]}]}]}
    p2 = compile_policy(expanded)
    assert p2.warnings and "neg" in p2.warnings[0][1]
    assert p2.evaluate(Request("use"), Context(now=T0)).effect is Effect.DENY


def test_pyld_default_base_trap_is_undone():
    expanded = [{"@type": ["http://www.w3.org/ns/odrl/2/Set"], "@id": "urn:x",
                 "http://www.w3.org/ns/odrl/2/permission": [{
                     "http://www.w3.org/ns/odrl/2/action": [{"@id": "http://example.org/base/use"}],
                     "http://www.w3.org/ns/odrl/2/constraint": [{
                         "http://www.w3.org/ns/odrl/2/leftOperand": [{"@id": "http://example.org/base/count"}],
                         "http://www.w3.org/ns/odrl/2/operator": [{"@id": "http://example.org/base/lteq"}],
                         "http://www.w3.org/ns/odrl/2/rightOperand": [{"@value": 2}]}]}]}]
    p = compile_policy(expanded)
    assert p.evaluate(Request("read"), Context(use_count=1)).permitted
    assert not p.evaluate(Request("read"), Context(use_count=2)).permitted


def test_unknown_remote_context_is_an_error_not_a_fetch():
    errs = refused({"@context": "https://example.com/ctx.jsonld", "@type": "Set", "permission": [{"action": "use"}]})
    assert "never fetches" in errs[0][1]
    doc = {"@context": "https://example.com/ctx.jsonld", "@type": "Set", "permission": [{"action": "use"}]}
    assert compile_policy(doc, contexts={**policy_contexts(), "https://example.com/ctx.jsonld": HKS_CONTEXT}).evaluate(Request("use"), Context()).permitted


def test_parse_policy_returns_expanded_nodes():
    nodes = parse_policy({"@type": "Set", "uid": "urn:x", "permission": [{"action": "use"}]})
    assert nodes[0]["@id"] == "urn:x"
    assert nodes[0]["http://www.w3.org/ns/odrl/2/permission"][0]["http://www.w3.org/ns/odrl/2/action"] == [{"@id": "http://www.w3.org/ns/odrl/2/use"}]


def test_station_context_repairs_the_odrl_neq_typo():
    assert HKS_CONTEXT["neq"] == "odrl:neq"


def test_a_policy_without_the_vocab_contexts_is_refused_naming_the_missing_context():
    # the policy package holds no context: without contexts=, even the default one is unknown
    from connector.policy import compile_policy as bare_compile

    with pytest.raises(PolicyError) as exc:
        bare_compile({"@type": "Set", "permission": [{"action": "use"}]})
    assert "https://w3id.org/hks/context.jsonld" in exc.value.errors[0][1]


def test_the_odrl_context_the_engine_reads_carries_the_industry_repair():
    # equality of every context with its vocab/ file: tests/test_vocab_contexts.py
    assert policy_contexts()["http://www.w3.org/ns/odrl.jsonld"]["@context"]["industry"] == "odrl:industry"


def test_flattened_form_with_references():
    nodes = [
        {"@id": "urn:p", "@type": ["http://www.w3.org/ns/odrl/2/Agreement"],
         "http://www.w3.org/ns/odrl/2/permission": [{"@id": "urn:r"}]},
        {"@id": "urn:r", "http://www.w3.org/ns/odrl/2/action": [{"@id": "http://www.w3.org/ns/odrl/2/read"}],
         "http://www.w3.org/ns/odrl/2/constraint": [{"@id": "urn:c"}]},
        {"@id": "urn:c", "http://www.w3.org/ns/odrl/2/leftOperand": [{"@id": "http://www.w3.org/ns/odrl/2/purpose"}],
         "http://www.w3.org/ns/odrl/2/operator": [{"@id": "http://www.w3.org/ns/odrl/2/eq"}],
         "http://www.w3.org/ns/odrl/2/rightOperand": [{"@id": "https://w3id.org/dpv#ScientificResearch"}]},
    ]
    p = compile_policy(nodes)
    d = p.evaluate(Request("read"), Context(purpose="dpv:AcademicResearch"))
    assert d.effect is Effect.DENY and d.reasons[0].rule == "urn:r" and d.reasons[0].path == "permission[0].constraint[0]"
    assert p.evaluate(Request("read"), Context(purpose="dpv:ScientificResearch")).permitted


# ---------------------------------------------------------------------------
# refusal at creation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("doc,path,needle", [
    ([], "", "no policy"),
    ({"@type": "Set"}, "policy", "no permission, prohibition or obligation"),
    ({"@type": "Set", "permission": [{}]}, "permission[0].action", "must name an action"),
    ({"@type": "Set", "permission": [{"action": "useit"}]}, "permission[0].action", "unknown action"),
    ({"@type": "Set", "permision": [{"action": "use"}]}, "permision", "did you mean 'permission'"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("colour", "eq", "red")]}]},
     "permission[0].constraint[0].leftOperand", "unknown left operand 'colour'"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("purpose", "equals", "x")]}]},
     "permission[0].constraint[0].operator", "unknown operator 'equals'"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("dateTime", "lt", "tomorrow")]}]},
     "permission[0].constraint[0].rightOperand", "xsd:dateTime"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("dateTime", "lt", {"@value": "5", "@type": "xsd:integer"})]}]},
     "permission[0].constraint[0].rightOperand", "typed xsd:integer"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("count", "lteq", "ten")]}]},
     "permission[0].constraint[0].rightOperand", "needs an integer"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("count", "lteq", {"@value": "2.5", "@type": "xsd:decimal"})]}]},
     "permission[0].constraint[0].rightOperand", "needs an integer"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("elapsedTime", "lteq", "1 year")]}]},
     "permission[0].constraint[0].rightOperand", "xsd:duration"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("purpose", "lt", "x")]}]},
     "permission[0].constraint[0].operator", "not defined for declared purpose"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("purpose", "eq", ["a", "b"])]}]},
     "permission[0].constraint[0].rightOperand", "did you mean isAnyOf"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("hks:recipientJurisdiction", "eq", "Hong Kong")]}]},
     "permission[0].constraint[0].rightOperand", "not a jurisdiction code"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("hks:dataCategory", "isAnyOf", [{"@id": "pd:Helth"}])]}]},
     "permission[0].constraint[0].rightOperand", "did you mean 'Health'"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("hks:securityProfile", "eq", {"@id": "idsc:SUPER"})]}]},
     "permission[0].constraint[0].rightOperand", "not an IDS security profile"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lt"}]}]},
     "permission[0].constraint[0].rightOperand", "needs a rightOperand"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lt",
                                                                        "rightOperandReference": "http://x/y"}]}]},
     "permission[0].constraint[0].rightOperandReference", "never does"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [{"and": [c("count", "lt", 3)], "or": [c("count", "lt", 3)]}]}]},
     "permission[0].constraint[0]", "exactly one of"),
    ({"@type": "Set", "permission": [{"action": "use", "duty": [{"action": "hks:drop"}]}]},
     "permission[0].duty[0].action", "naming the fields"),
    ({"@type": "Set", "permission": [{"action": "use", "constraint": [c("hks:field", "eq", "name")]}]},
     "permission[0].constraint[0].leftOperand", "duty parameter"),
    ({"@type": "Set", "permission": [{"action": "use", "remedy": [{"action": "inform"}]}]},
     "permission[0].remedy", "not allowed on a permission"),
    ({"@type": "Set", "inheritFrom": "urn:parent", "permission": [{"action": "use"}]},
     "policy.inheritFrom", "not supported"),
    ({"@type": "Set", "conflict": "maybe", "permission": [{"action": "use"}]}, "policy.conflict", "perm, prohibit or invalid"),
])
def test_bad_policies_are_refused_with_the_offending_part(doc, path, needle):
    errs = refused(doc)
    assert any(p == path and needle in m for p, m in errs), errs


def test_all_errors_are_reported_together():
    doc = {"@type": "Set", "permission": [{"action": "use", "constraint": [c("colour", "eq", "red"), c("count", "lteq", "x")]}]}
    with pytest.raises(PolicyError) as e:
        compile_policy(doc)
    assert [p for p, _ in e.value.errors] == ["permission[0].constraint[0].leftOperand", "permission[0].constraint[1].rightOperand"]
    assert str(e.value).startswith("invalid policy:\n  permission[0].constraint[0].leftOperand: unknown left operand")


def test_self_contradiction_under_invalid_is_refused():
    doc = policy({"action": "use"}, prohibitions=[{"action": "distribute"}])
    errs = refused(doc)
    assert errs[0][0] == "prohibition[0]"
    assert "conflict strategy 'invalid'" in errs[0][1] and "\"prohibit\"" in errs[0][1]
    assert compile_policy(policy({"action": "use"}, prohibitions=[{"action": "distribute"}], conflict="prohibit"))


def accepted_with_both_rules(doc) -> None:
    """Compiles (no PolicyError under the default 'invalid' strategy) and keeps both rules."""
    lines = compile_policy(doc).describe()
    assert "conflict strategy 'invalid'" in lines[0]
    assert any(line.startswith("permission[0] PERMITS") for line in lines), lines
    assert any(line.startswith("prohibition[0] PROHIBITS") for line in lines), lines


@pytest.mark.parametrize("perm_c,prohib_c", [
    (c("dateTime", "lt", "2025-01-01T00:00:00Z"), c("dateTime", "gteq", "2025-01-01T00:00:00Z")),
    (c("count", "lteq", 5), c("count", "gt", 5)),
    (c("hks:recipientJurisdiction", "isAnyOf", ["HK", "MO"]), c("hks:recipientJurisdiction", "isNoneOf", ["HK", "MO"])),
    (c("hks:recipientJurisdiction", "isPartOf", [{"@id": "hks:GBA"}]), c("hks:recipientJurisdiction", "eq", "SG")),
    (c("purpose", "eq", {"@id": "hks:MedicalResearch"}), c("purpose", "isA", {"@id": "dpv:Marketing"})),
    (c("elapsedTime", "lteq", "P1Y"), c("elapsedTime", "gt", "P1Y")),
])
def test_exclusive_rules_are_accepted_under_invalid(perm_c, prohib_c):
    accepted_with_both_rules(policy({"action": "use", "constraint": [perm_c]},
                                    prohibitions=[{"action": "use", "constraint": [prohib_c]}]))


def test_overlapping_but_exclusive_parties_or_actions_are_accepted():
    accepted_with_both_rules(policy({"action": "use", "assignee": "urn:a"},
                                    prohibitions=[{"action": "use", "assignee": "urn:b"}]))
    accepted_with_both_rules(policy({"action": "read"}, prohibitions=[{"action": "sell"}]))


# ---------------------------------------------------------------------------
# ODRL semantics
# ---------------------------------------------------------------------------


def test_action_inclusion():
    p = compile_policy(policy({"action": "use"}))
    for a in ("use", "read", "odrl:distribute", "display", "http://www.w3.org/ns/odrl/2/print", "write", "extract"):
        assert p.evaluate(Request(a), Context()).permitted, a
    for a in ("transfer", "sell", "give"):
        assert p.evaluate(Request(a), Context()).effect is Effect.NOT_APPLICABLE, a
    narrow = compile_policy(policy({"action": "play"}))
    assert narrow.evaluate(Request("display"), Context()).permitted
    assert narrow.evaluate(Request("use"), Context()).effect is Effect.NOT_APPLICABLE


def test_deprecated_actions_match_their_replacement():
    p = compile_policy(policy({"action": "modify"}))
    assert p.evaluate(Request("write"), Context()).permitted
    assert compile_policy(policy({"action": "write"})).evaluate(Request("modify"), Context()).permitted


@pytest.mark.parametrize("strategy,expect", [("perm", Effect.PERMIT), ("prohibit", Effect.DENY)])
def test_conflict_strategies(strategy, expect):
    p = compile_policy(policy({"action": "use"}, prohibitions=[{"action": "distribute"}], conflict=strategy))
    d = p.evaluate(Request("distribute"), Context())
    assert d.effect is expect
    assert p.evaluate(Request("read"), Context()).permitted
    if strategy == "perm":
        assert any(r.code == "prohibition-overridden" for r in d.reasons)


def test_invalid_strategy_voids_the_policy_when_rules_collide_at_runtime():
    # constraints the static check cannot separate (logical constraints)
    perm = {"action": "use", "constraint": [{"or": [c("count", "lteq", 1), c("purpose", "eq", "x")]}]}
    prohib = {"action": "use", "constraint": [{"or": [c("count", "gt", 5), c("purpose", "eq", "x")]}]}
    with pytest.raises(PolicyError):
        compile_policy(policy(perm, prohibitions=[prohib]))


def test_logical_constraints():
    lt3, gt5 = c("count", "lt", 3), c("count", "gt", 5)
    expect = {
        "and": {0: False, 4: False, 7: False},
        "or": {0: True, 4: False, 7: True},
        "xone": {0: True, 4: False, 7: True},
        "andSequence": {0: False, 4: False, 7: False},
    }
    for op, cases in expect.items():
        p = compile_policy(policy({"action": "use", "constraint": [{op: [lt3, gt5]}]}))
        for used, ok in cases.items():
            assert p.evaluate(Request("use"), Context(use_count=used)).permitted is ok, (op, used)
    both = compile_policy(policy({"action": "use", "constraint": [{"xone": [c("count", "lt", 9), c("count", "gt", 0)]}]}))
    assert not both.evaluate(Request("use"), Context(use_count=3)).permitted
    assert both.evaluate(Request("use"), Context(use_count=9)).permitted
    nested = compile_policy(policy({"action": "use", "constraint": [
        {"or": [{"and": [c("purpose", "eq", {"@id": "hks:MedicalResearch"}), c("count", "lteq", 2)]}, c("hks:organisation", "eq", "urn:boss")]}]}))
    assert nested.evaluate(Request("use"), Context(purpose="hks:MedicalResearch", use_count=1)).permitted
    d = nested.evaluate(Request("use"), Context(purpose="hks:MedicalResearch", use_count=5, organisation="urn:x"))
    assert d.effect is Effect.DENY
    paths = [r.path for r in d.reasons]
    assert "permission[0].constraint[0].or[0].and[1]" in paths and "permission[0].constraint[0].or[1]" in paths


def test_three_valued_or_and_xone():
    p = compile_policy(policy({"action": "use", "constraint": [{"or": [c("purpose", "eq", "x"), c("count", "lt", 3)]}]}))
    assert p.evaluate(Request("use"), Context(use_count=0)).permitted  # unknown purpose, but the other branch holds
    d = p.evaluate(Request("use"), Context(use_count=5))
    assert d.effect is Effect.DENY and {r.code for r in d.reasons} >= {"operand-missing"}
    x = compile_policy(policy({"action": "use", "constraint": [{"xone": [c("purpose", "eq", "x"), c("count", "lt", 3)]}]}))
    assert not x.evaluate(Request("use"), Context(use_count=0)).permitted  # cannot know that only one holds


@pytest.mark.parametrize("op,ro,value,ok", [
    ("eq", "HK", "HK", True), ("eq", "HK", "MO", False), ("neq", "HK", "MO", True), ("neq", "HK", "HK", False),
    ("isA", {"@id": "hks:GBA"}, "CN-GD-ZH", True), ("isA", {"@id": "hks:GBA"}, "SG", False),
    ("isPartOf", [{"@id": "hks:GBA-Mainland"}], "CN-GD-FS", True), ("isPartOf", [{"@id": "hks:GBA-Mainland"}], "HK", False),
    ("isAnyOf", ["HK", "MO"], "MO", True), ("isAnyOf", ["CN-GD"], "CN-GD-GZ", True), ("isNoneOf", ["CN"], "CN-GD-GZ", False),
    ("hasPart", ["CN-GD-GZ"], "CN-GD", True), ("hasPart", ["HK"], "CN-GD", False),
    ("isAllOf", [{"@id": "hks:GBA"}, "CN-GD"], "CN-GD-DG", True), ("isAllOf", [{"@id": "hks:GBA"}, "CN-GD"], "HK", False),
])
def test_nominal_operators_on_jurisdictions(op, ro, value, ok):
    p = compile_policy(policy({"action": "use", "constraint": [c("hks:recipientJurisdiction", op, ro)]}))
    assert p.evaluate(Request("use"), Context(recipient_jurisdiction=value)).permitted is ok


@pytest.mark.parametrize("op,ro,cats,ok", [
    ("isAnyOf", ["pd:MedicalHealth"], {"pd:HealthRecord", "pd:Name"}, True),
    ("isAnyOf", ["pd:Biometric"], {"pd:Name"}, False),
    ("isNoneOf", ["pd:Biometric"], {"pd:FacialPrint"}, False),
    ("isNoneOf", ["pd:Biometric"], {"pd:Name"}, True),
    ("isAllOf", ["pd:Name", "pd:MedicalHealth"], {"pd:Name", "pd:Prescription"}, True),
    ("isAllOf", ["pd:Name", "pd:MedicalHealth"], {"pd:Name"}, False),
    ("hasPart", ["pd:Name"], {"pd:Name", "pd:Age"}, True),
    ("isPartOf", ["pd:Identifying", "pd:Contact"], {"pd:Name", "pd:EmailAddress"}, True),
    ("isPartOf", ["pd:Identifying"], {"pd:Name", "pd:EmailAddress"}, False),
    ("isA", "dpv:SpecialCategoryPersonalData", {"pd:HealthRecord", "pd:Genetic"}, True),
    ("isA", "dpv:SpecialCategoryPersonalData", {"pd:HealthRecord", "pd:Name"}, False),
    ("eq", ["pd:Name"], {"pd:Name"}, True),
    ("neq", ["pd:Name"], {"pd:Name", "pd:Age"}, True),
])
def test_set_operators_on_data_categories(op, ro, cats, ok):
    ro = [{"@id": x} for x in ro] if isinstance(ro, list) else {"@id": ro}
    p = compile_policy(policy({"action": "use", "constraint": [c("dpv:hasPersonalData", op, ro)]}))
    assert p.evaluate(Request("use"), Context(data_categories=cats)).permitted is ok


def test_date_and_datetime_right_operands():
    day = compile_policy(policy({"action": "use", "constraint": [c("dateTime", "lteq", {"@value": "2025-01-01", "@type": "xsd:date"})]}))
    assert day.evaluate(Request("use"), Context(now=datetime(2025, 1, 1, 23, 59, 59, 999999, tzinfo=UTC))).permitted
    assert not day.evaluate(Request("use"), Context(now=datetime(2025, 1, 2, tzinfo=UTC))).permitted
    hk = timezone(timedelta(hours=8))
    p = compile_policy(policy({"action": "use", "constraint": [c("dateTime", "lt", "2025-01-01T08:00:00+08:00")]}))
    assert not p.evaluate(Request("use"), Context(now=datetime(2025, 1, 1, 0, 0, tzinfo=UTC))).permitted
    assert p.evaluate(Request("use"), Context(now=datetime(2025, 1, 1, 7, 59, tzinfo=hk))).permitted
    assert p.evaluate(Request("use"), Context(now=datetime(2024, 12, 31, 23, 59))).permitted  # naive = UTC


def test_count_reading_counts_the_use_being_decided():
    p = compile_policy(policy({"action": "use", "constraint": [c("count", "lteq", 3)]}))
    assert [p.evaluate(Request("use"), Context(use_count=n)).permitted for n in range(5)] == [True, True, True, False, False]
    d = p.evaluate(Request("use"), Context(use_count=3))
    assert d.reasons[0].actual == "4" and d.reasons[0].expected == "3"


def test_security_profile_order_and_spellings():
    p = compile_policy(policy({"action": "use", "constraint": [c("idsc:SECURITY_LEVEL", "gt", {"@id": "idsc:BASE_SECURITY_PROFILE"})]}))
    assert p.evaluate(Request("use"), Context(security_profile="TRUSTED_CONNECTOR_SECURITY_PROFILE")).permitted
    assert not p.evaluate(Request("use"), Context(security_profile="idsc:BASE_CONNECTOR_SECURITY_PROFILE")).permitted
    assert not p.evaluate(Request("use"), Context(security_profile="gold")).permitted


def test_retention_event_and_generic_operands():
    p = compile_policy(policy({"action": "use", "constraint": [c("hks:retentionPeriod", "lteq", "P6M")]}))
    assert p.evaluate(Request("use"), Context(retention_period="P180D")).permitted  # 180 days <= 6 months, always
    assert not p.evaluate(Request("use"), Context(retention_period=timedelta(days=185))).permitted
    assert not p.evaluate(Request("use"), Context(retention_period="P182D")).permitted  # indeterminate vs P6M: fail closed
    e = compile_policy(policy({"action": "use", "constraint": [c("event", "gt", {"@id": "urn:event:publication"})]}))
    assert e.evaluate(Request("use"), Context(events={"urn:event:publication": "ended"})).permitted
    assert not e.evaluate(Request("use"), Context(events={"urn:event:publication": "ongoing"})).permitted
    d = e.evaluate(Request("use"), Context(events={}))
    assert d.reasons[0].code == "operand-missing"
    g = compile_policy(policy({"action": [{"rdf:value": {"@id": "odrl:print"},
                                           "refinement": [c("resolution", "lteq", {"@value": "1200", "@type": "xsd:integer"})]}]}))
    assert g.evaluate(Request("print"), Context(operands={"resolution": 600})).permitted
    d = g.evaluate(Request("print"), Context(operands={"odrl:resolution": "1300"}))
    assert d.effect is Effect.DENY and d.reasons[0].code == "refinement-not-satisfied"
    money = compile_policy(policy({"action": "use", "constraint": [c("payAmount", "gteq", {"@value": "5.00", "@type": "xsd:decimal"})]}))
    assert money.evaluate(Request("use"), Context(operands={"payAmount": Decimal("5")})).permitted
    assert not money.evaluate(Request("use"), Context(operands={"payAmount": "4.99"})).permitted


def test_extension_left_operands_by_option():
    doc = policy({"action": "use", "constraint": [c("ex:tier", "eq", "gold")]}, **{"@context": ["https://w3id.org/hks/context.jsonld", {"ex": "urn:ex:"}]})
    assert "unknown left operand" in refused(doc)[0][1]
    p = compile_policy(doc, options=CompileOptions(extra_left_operands=("urn:ex:tier",)))
    assert p.evaluate(Request("use"), Context(operands={"urn:ex:tier": "gold"})).permitted
    assert not p.evaluate(Request("use"), Context(operands={"urn:ex:tier": "silver"})).permitted


def test_party_and_asset_collections_with_refinements():
    doc = policy({"action": "use",
                  "target": {"@type": "AssetCollection", "source": "urn:coll:health",
                             "refinement": [c("hks:dataCategory", "isNoneOf", [{"@id": "pd:Genetic"}])]},
                  "assignee": {"@type": "PartyCollection", "uid": "urn:coll:hospitals",
                               "refinement": [c("hks:role", "isAnyOf", ["researcher"])]}})
    p = compile_policy(doc)
    ok = Context(asset_collections={"urn:coll:health"}, membership={"urn:coll:hospitals"}, roles={"researcher"},
                 data_categories={"pd:HealthRecord"})
    assert p.evaluate(Request("use", "urn:asset:1", "urn:org:1"), ok).permitted
    d = p.evaluate(Request("use", "urn:asset:1", "urn:org:1"), Context(**{**_fields(ok), "roles": {"clerk"}}))
    assert d.effect is Effect.NOT_APPLICABLE and d.reasons[0].code == "party-mismatch"
    d = p.evaluate(Request("use", "urn:asset:1", "urn:org:1"), Context(**{**_fields(ok), "data_categories": {"pd:Genetic"}}))
    assert d.reasons[0].code == "target-mismatch"
    d = p.evaluate(Request("use", "urn:asset:2", "urn:org:1"), Context(**{**_fields(ok), "asset_collections": set()}))
    assert d.effect is Effect.NOT_APPLICABLE


def _fields(ctx: Context) -> dict:
    return {k: getattr(ctx, k) for k in ctx.__dataclass_fields__}


def test_policy_level_target_and_assignee_are_inherited():
    doc = {"@type": "Agreement", "uid": "urn:a", "target": "urn:asset:1", "assignee": "urn:org:1",
           "permission": [{"action": "use"}]}
    p = compile_policy(doc)
    assert p.evaluate(Request("use", "urn:asset:1", "urn:org:1"), Context()).permitted
    assert p.evaluate(Request("use", "urn:asset:2", "urn:org:1"), Context()).effect is Effect.NOT_APPLICABLE
    assert p.evaluate(Request("use", "urn:asset:1", "urn:org:2"), Context()).effect is Effect.NOT_APPLICABLE
    assert p.evaluate(Request("use", "urn:asset:1", None), Context()).effect is Effect.NOT_APPLICABLE


# ---------------------------------------------------------------------------
# duties
# ---------------------------------------------------------------------------


def test_conditions_must_be_fulfilled_by_default_and_may_be_deferred():
    doc = policy({"action": "use", "duty": [{"@id": "urn:duty:pay", "action": [{"rdf:value": {"@id": "odrl:compensate"},
                  "refinement": [{"leftOperand": "payAmount", "operator": "eq", "rightOperand": {"@value": "5.00", "@type": "xsd:decimal"},
                                  "unit": "http://dbpedia.org/resource/Euro"}]}]}]})
    strict = compile_policy(doc)
    d = strict.evaluate(Request("use"), Context())
    assert d.effect is Effect.DENY and d.reasons[0].code == "duty-not-fulfilled"
    assert strict.evaluate(Request("use"), Context(duty_states={"urn:duty:pay": "fulfilled"})).permitted
    eventual = compile_policy(doc, options=CompileOptions(duty_reading="eventual"))
    d = eventual.evaluate(Request("use"), Context())
    assert d.permitted and d.duties[0].kind == "compensate" and d.duties[0].param("amount") == Decimal("5.00")
    assert eventual.evaluate(Request("use"), Context(duty_states={"urn:duty:pay": "Violated"})).effect is Effect.DENY


def test_consent_reference_duty():
    doc = policy({"action": "use", "duty": [{"action": "obtainConsent", "hks:consentReference": "urn:consent:batch-7",
                                             "consentingParty": "urn:subjects:batch-7"}]})
    p = compile_policy(doc)
    assert p.evaluate(Request("use"), Context(consents={"urn:consent:batch-7"})).permitted
    d = p.evaluate(Request("use"), Context(consents={"urn:consent:other"}))
    assert d.effect is Effect.DENY and "urn:consent:batch-7" in d.reasons[0].message


def test_duty_constraint_makes_a_duty_conditional():
    doc = policy({"action": "use", "duty": [{"action": "hks:log", "constraint": [c("hks:recipientJurisdiction", "neq", "HK")]}]})
    p = compile_policy(doc)
    assert p.evaluate(Request("use"), Context(recipient_jurisdiction="HK")).duties == ()
    assert [d.kind for d in p.evaluate(Request("use"), Context(recipient_jurisdiction="MO")).duties] == ["log"]
    assert [d.kind for d in p.evaluate(Request("use"), Context()).duties] == ["log"]  # unknown: duty applies


def test_violated_duty_triggers_its_consequences_and_remedies_are_reported():
    doc = policy({"action": "use", "duty": [{"action": "attribute", "consequence": [{"action": "compensate"}]}]},
                 prohibitions=[{"action": "sell", "remedy": [{"action": "delete"}]}], conflict="prohibit")
    p = compile_policy(doc)
    d = p.evaluate(Request("use"), Context(duty_states={"permission[0].duty[0]": "violated"}))
    assert d.effect is Effect.DENY and [x.kind for x in d.consequences] == ["compensate"]
    s = p.evaluate(Request("sell"), Context())
    assert s.effect is Effect.DENY and [x.kind for x in s.consequences] == ["delete"]


def test_modification_in_transit_ids_style_and_next_policy():
    doc = policy({"action": "distribute", "duty": [
        {"action": [{"rdf:value": {"@id": "idsc:REPLACE"}, "refinement": [c("idsc:REPLACE_WITH", "eq", "xxxx"), c("idsc:JSON_PATH", "eq", "$.name")]}],
         "constraint": [c("event", "lt", {"@id": "odrl:policyUsage"})]},
        {"action": "nextPolicy", "target": "urn:policy:downstream"},
        {"action": [{"rdf:value": {"@id": "idsc:log"}, "refinement": [c("systemDevice", "eq", {"@value": "https://ch.example", "@type": "xsd:anyURI"})]}]},
        {"action": "inform", "informedParty": "urn:org:provider"},
        {"action": [{"rdf:value": {"@id": "odrl:delete"}, "refinement": [c("dateTime", "lteq", "2026-01-01T00:00:00Z")]}]},
    ]})
    p = compile_policy(doc)
    d = p.evaluate(Request("distribute"), Context(now=T0))
    by = {x.kind: x for x in d.duties}
    assert by["replace"].param("json_path") == "$.name" and by["replace"].param("replace_with") == "xxxx"
    assert by["next-policy"].param("policy") == "urn:policy:downstream"
    assert by["log"].param("clearing_house") == "https://ch.example"
    assert by["notify"].param("informed_party") == "urn:org:provider"
    assert by["delete"].deadline == datetime(2026, 1, 1, tzinfo=UTC)
    assert p.evaluate(Request("distribute"), Context(now=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))).effect is Effect.DENY


def test_policy_level_obligations_are_returned_with_a_permit():
    doc = policy({"action": "use"}, obligations=[{"action": "inform", "assignee": "urn:org:1"}])
    p = compile_policy(doc)
    assert [x.kind for x in p.evaluate(Request("use", None, "urn:org:1"), Context()).duties] == ["notify"]
    assert p.evaluate(Request("use", None, "urn:org:2"), Context()).duties == ()


def test_several_granting_permissions_return_all_their_duties():
    p = compile_policy(policy({"action": "use", "duty": [{"action": "hks:log"}]}, {"action": "read", "duty": [{"action": "inform"}]}))
    assert sorted(x.kind for x in p.evaluate(Request("read"), Context()).duties) == ["log", "notify"]


# ---------------------------------------------------------------------------
# decisions, explanations, robustness
# ---------------------------------------------------------------------------


def test_decision_serialises_and_explains():
    p = compile_policy((ROOT / "policies" / "gba-cross-border-personal-information.jsonld").read_text())
    d = evaluate(p, Request("use", "urn:x", "urn:org"), Context(now=T0, agreement_time=T0, use_count=0, purpose="hks:MedicalResearch",
                                                                 recipient_jurisdiction="SG", data_categories={"pd:Name"}))
    out = d.to_dict()
    assert out["decision"] == "deny" and out["reasons"][0]["left_operand"] == "hks:recipientJurisdiction"
    json.dumps(out)
    assert d.explain().startswith("DENY under policy urn:hks:policy-template:gba-cross-border-personal-information:1")
    ok = p.evaluate(Request("use", "urn:x", "urn:org"), Context(now=T0, agreement_time=T0, use_count=0, purpose="hks:MedicalResearch",
                                                                 recipient_jurisdiction="HK", data_categories={"pd:Name"}))
    json.dumps(ok.to_dict())
    assert "Pseudonymise the field patient_id" in ok.explain()


def test_report_and_fast_path_agree_on_the_templates():
    for path in sorted((ROOT / "policies").glob("*.jsonld")):
        p = compile_policy(path.read_text())
        for ctx in (Context(), Context(now=T0, agreement_time=T0, use_count=0, purpose="hks:MedicalResearch", recipient_jurisdiction="HK",
                                       membership={"hks:StationMember"}, security_profile="idsc:TRUST_SECURITY_PROFILE",
                                       organisation="did:web:harbour-lab.example.hk", data_categories={"pd:Name"})):
            for a in ("use", "distribute", "sell"):
                r = Request(a, "urn:x", "urn:org")
                assert p.evaluate(r, ctx).effect is p.report(r, ctx).decision.effect


def test_context_normalisation():
    ctx = Context(now="2025-01-01T08:00:00+08:00", purpose="hks:MedicalResearch", recipient_jurisdiction="hks:CN-GD-GZ",
                  membership=["hks:StationMember"], retention_period="P1Y", duty_states={"d": "report:NonSet"})
    assert ctx.now == T0 and ctx.purpose == frozenset({"https://w3id.org/hks/ns#MedicalResearch"})  # one purpose is a set of one
    assert ctx.recipient_jurisdiction == "CN-GD-GZ" and ctx.membership == frozenset({"https://w3id.org/hks/ns#StationMember"})
    assert ctx.retention_period == Duration(12, 0) and ctx.duty_states == {"d": "not-set"}
    assert Context.from_dict({"now": "2025-01-01T00:00:00Z"}).now == T0
    with pytest.raises(ValueError):
        Context.from_dict({"colour": "red"})


def test_durations_follow_xsd():
    assert add_duration(datetime(2024, 1, 31, tzinfo=UTC), Duration.parse("P1M")) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_duration(datetime(2024, 2, 29, tzinfo=UTC), Duration.parse("P1Y")) == datetime(2025, 2, 28, tzinfo=UTC)
    assert Duration.parse("P1M").compare(Duration.parse("P30D")) is None
    assert Duration.parse("P1Y").compare(Duration.parse("P364D")) == 1
    assert Duration.parse("P1Y").compare(Duration.parse("P365D")) is None  # 365 or 366 days
    assert Duration.parse("PT36H").compare(Duration.parse("P1DT12H")) == 0
    with pytest.raises(ValueError):
        Duration.parse("P")


def test_evaluation_never_raises_on_odd_contexts():
    p = compile_policy((ROOT / "policies" / "gba-cross-border-personal-information.jsonld").read_text())
    odd = [Context(), Context(now=datetime.max.replace(tzinfo=UTC), agreement_time=datetime.max.replace(tzinfo=UTC), use_count=-5),
           Context(recipient_jurisdiction="not a code", purpose="", data_categories=set(), operands={"x": object()}),
           Context(agreement_time=datetime(9999, 12, 31, tzinfo=UTC), now=datetime(1, 1, 1, tzinfo=UTC), use_count=10**30)]
    for ctx in odd:
        for a in ("use", "distribute", "unknownAction", "urn:odd"):
            d = p.evaluate(Request(a, None, None), ctx)
            assert d.effect in (Effect.DENY, Effect.NOT_APPLICABLE, Effect.PERMIT)
            assert d.effect is not Effect.PERMIT or ctx.purpose


def test_station_vocabulary_defines_every_hks_term_the_engine_uses():
    from connector.policy import taxonomy, vocab

    ttl = (ROOT / "vocab" / "hks" / "hks.ttl").read_text()
    defined = {line.split()[0][4:] for line in ttl.splitlines() if line.startswith("hks:")}
    used = {iri[len(vocab.HKS):] for iri in list(vocab.LEFT_OPERANDS) + list(vocab.ACTION_PARENT) + list(taxonomy.LABELS)
            if iri.startswith(vocab.HKS)}
    used |= {code for code in taxonomy.JURISDICTION_LABELS}
    assert used <= defined, used - defined
    ctx_terms = {v[4:] for v in HKS_CONTEXT.values() if isinstance(v, str) and v.startswith("hks:")}
    assert ctx_terms <= defined
