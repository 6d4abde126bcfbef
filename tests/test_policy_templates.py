"""Every template in policies/ permits and denies the cases it exists for."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connector.policy import Context, Effect, Request
from support.policies import compile_policy

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
TEMPLATES = sorted(POLICIES.glob("*.jsonld"))
UTC = timezone.utc
AGREED = datetime(2025, 3, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
ASSET = "urn:hks:asset:outpatient-visits-2025.csv"
HARBOUR = "did:web:harbour-lab.example.hk"
MERLION = "did:web:merlion-analytics.example.sg"
PEARL = "did:web:pearl-river-medical.example.cn"


def load(name: str):
    return compile_policy((POLICIES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_template_is_valid_and_listed(path):
    policy = compile_policy(path.read_text(encoding="utf-8"))
    assert policy.uid and policy.uid.startswith("urn:hks:policy-template:")
    assert not policy.warnings
    readme = (POLICIES / "README.md").read_text(encoding="utf-8")
    line = next((ln for ln in readme.splitlines() if f"[{path.name}]" in ln), None)
    assert line is not None, f"{path.name} has no line in policies/README.md"
    assert len(line.split("|")[2].strip()) > 30


def test_six_templates():
    assert len(TEMPLATES) == 7


# --------------------------------------------------------------------------
# GBA cross-border personal information
# --------------------------------------------------------------------------

GBA = "gba-cross-border-personal-information.jsonld"
CATEGORIES = {"pd:Name", "pd:TelephoneNumber", "pd:Identifier", "pd:Age", "pd:Gender", "pd:Location", "pd:HealthRecord"}


def gba_ctx(**kw) -> Context:
    base = dict(now=NOW, purpose="hks:MedicalResearch", recipient_jurisdiction="HK", organisation=HARBOUR,
                use_count=0, agreement_time=AGREED, data_categories=CATEGORIES)
    base.update(kw)
    return Context(**base)


def test_gba_permits_harbour_lab_with_every_duty():
    p = load(GBA)
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(use_count=3))
    assert d.effect is Effect.PERMIT
    kinds = {x.kind: x for x in d.duties}
    assert set(kinds) == {"log", "drop-fields", "pseudonymise-fields", "delete", "next-policy"}
    assert kinds["drop-fields"].param("fields") == ("name", "phone")
    assert kinds["pseudonymise-fields"].param("fields") == ("patient_id",)
    assert kinds["delete"].deadline == datetime(2026, 3, 1, tzinfo=UTC)
    assert kinds["next-policy"].param("policy") == p.uid
    assert kinds["log"].timing == "before-release"


def test_gba_refuses_merlion_in_singapore_with_the_reason():
    p = load(GBA)
    d = p.evaluate(Request("use", ASSET, MERLION), gba_ctx(recipient_jurisdiction="SG", organisation=MERLION))
    assert d.effect is Effect.DENY
    assert len(d.reasons) == 1
    r = d.reasons[0]
    assert r.path == "permission[0].constraint[1]"
    assert r.left_operand == "hks:recipientJurisdiction" and r.operator == "isAnyOf" and r.actual == "SG"
    assert r.message.startswith("Recipient jurisdiction SG is not one of the permitted: HK, CN-GD-GZ, CN-GD-SZ")
    assert not d.duties


@pytest.mark.parametrize("where", ["CN-GD-SZ", "CN-GD-ZQ", "hks:CN-GD-GZ", "https://w3id.org/dpv/loc#HK"])
def test_gba_permits_the_standard_contract_area(where):
    assert load(GBA).evaluate(Request("use", ASSET, HARBOUR), gba_ctx(recipient_jurisdiction=where)).permitted


@pytest.mark.parametrize("where", ["MO", "CN-GD", "CN", "SG", "US"])
def test_gba_refuses_outside_the_standard_contract_area(where):
    assert load(GBA).evaluate(Request("use", ASSET, HARBOUR), gba_ctx(recipient_jurisdiction=where)).effect is Effect.DENY


def test_gba_tenth_retrieval_allowed_eleventh_refused():
    p = load(GBA)
    assert p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(use_count=9)).permitted
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(use_count=10))
    assert d.effect is Effect.DENY
    assert d.reasons[0].left_operand == "odrl:count" and d.reasons[0].actual == "11"
    assert "use number 11" in d.reasons[0].message and "at most 10 uses" in d.reasons[0].message


def test_gba_purpose_must_be_medical_research():
    p = load(GBA)
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(purpose="dpv:Marketing"))
    assert d.effect is Effect.DENY and d.reasons[0].left_operand == "odrl:purpose"
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(purpose=None))
    assert d.effect is Effect.DENY and d.reasons[0].code == "operand-missing"


def test_gba_one_year_then_deleted():
    p = load(GBA)
    last = AGREED.replace(year=2026)
    assert p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(now=last)).permitted
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(now=last + timedelta(microseconds=1)))
    assert d.effect is Effect.DENY
    codes = {r.code for r in d.reasons}
    assert codes == {"constraint-not-satisfied", "duty-deadline-passed"}


def test_gba_data_categories_outside_the_filing_are_refused():
    p = load(GBA)
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(data_categories=CATEGORIES | {"pd:FacialPrint"}))
    assert d.effect is Effect.DENY and d.reasons[0].left_operand == "hks:dataCategory"
    d = p.evaluate(Request("use", ASSET, HARBOUR), gba_ctx(data_categories=None))
    assert d.effect is Effect.DENY and d.reasons[0].code == "operand-missing"


def test_gba_no_onward_transfer_outside_the_area():
    p = load(GBA)
    d = p.evaluate(Request("distribute", ASSET, HARBOUR), gba_ctx(recipient_jurisdiction="SG"))
    assert d.effect is Effect.DENY
    assert d.reasons[0].code == "prohibited" and d.reasons[0].path == "prohibition[0]"
    within = p.evaluate(Request("distribute", ASSET, HARBOUR), gba_ctx(recipient_jurisdiction="CN-GD-FS"))
    assert within.permitted
    assert any(x.kind == "next-policy" for x in within.duties)


def test_gba_unknown_recipient_cannot_distribute():
    d = load(GBA).evaluate(Request("distribute", ASSET, HARBOUR), gba_ctx(recipient_jurisdiction=None))
    assert d.effect is Effect.DENY
    assert any(r.code == "operand-missing" for r in d.reasons)


def test_gba_violated_duty_blocks_further_use():
    d = load(GBA).evaluate(Request("use", ASSET, HARBOUR), gba_ctx(duty_states={"permission[0].duty[3]": "violated"}))
    assert d.effect is Effect.DENY and d.reasons[0].code == "duty-violated"


# --------------------------------------------------------------------------
# HK open data with attribution
# --------------------------------------------------------------------------


def test_open_data_for_station_members_with_attribution():
    p = load("hk-open-data-attribution.jsonld")
    d = p.evaluate(Request("use", "urn:hks:asset:traffic-speed-feed.json", HARBOUR),
                   Context(now=NOW, membership={"hks:StationMember"}))
    assert d.permitted and [x.kind for x in d.duties] == ["attribute"]
    assert p.evaluate(Request("read", "urn:x", HARBOUR), Context(membership={"hks:StationMember"})).permitted
    assert p.evaluate(Request("use", "urn:x", MERLION), Context(membership=set())).effect is Effect.DENY
    assert p.evaluate(Request("use", "urn:x", MERLION), Context()).effect is Effect.DENY


# --------------------------------------------------------------------------
# research only, one year
# --------------------------------------------------------------------------


@pytest.mark.parametrize("purpose,ok", [("dpv:ScientificResearch", True), ("hks:MedicalResearch", True),
                                        ("dpv:AcademicResearch", True), ("dpv:Marketing", False),
                                        ("dpv:CommercialPurpose", False)])
def test_research_only(purpose, ok):
    p = load("research-only-one-year.jsonld")
    d = p.evaluate(Request("use", "urn:x", HARBOUR), Context(now=NOW, agreement_time=AGREED, purpose=purpose))
    assert d.permitted is ok


def test_research_for_one_year_with_deletion_deadline():
    p = load("research-only-one-year.jsonld")
    ctx = dict(agreement_time=AGREED, purpose="dpv:ScientificResearch")
    ok = p.evaluate(Request("use", "urn:x", HARBOUR), Context(now=datetime(2026, 3, 1, tzinfo=UTC), **ctx))
    assert ok.permitted and ok.duties[0].deadline == datetime(2026, 3, 1, tzinfo=UTC)
    late = p.evaluate(Request("use", "urn:x", HARBOUR), Context(now=datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC), **ctx))
    assert late.effect is Effect.DENY


# --------------------------------------------------------------------------
# N-times evaluation licence
# --------------------------------------------------------------------------


def test_evaluation_licence_five_times():
    p = load("n-times-evaluation-licence.jsonld")
    base = dict(now=NOW, agreement_time=NOW - timedelta(days=2), purpose="hks:Evaluation")
    for used in range(5):
        assert p.evaluate(Request("use", "urn:x", HARBOUR), Context(use_count=used, **base)).permitted
    d = p.evaluate(Request("use", "urn:x", HARBOUR), Context(use_count=5, **base))
    assert d.effect is Effect.DENY and "use number 6" in d.reasons[0].message


def test_evaluation_licence_thirty_days_and_purpose():
    p = load("n-times-evaluation-licence.jsonld")
    late = Context(now=NOW, agreement_time=NOW - timedelta(days=30, seconds=1), purpose="hks:Evaluation", use_count=0)
    assert p.evaluate(Request("use", "urn:x", HARBOUR), late).effect is Effect.DENY
    prod = Context(now=NOW, agreement_time=NOW, purpose="dpv:ServiceProvision", use_count=0)
    assert p.evaluate(Request("use", "urn:x", HARBOUR), prod).effect is Effect.DENY


# --------------------------------------------------------------------------
# station members only
# --------------------------------------------------------------------------


@pytest.mark.parametrize("profile,ok", [("idsc:TRUST_SECURITY_PROFILE", True), ("idsc:TRUST_PLUS_SECURITY_PROFILE", True),
                                        ("https://w3id.org/idsa/code/TRUSTED_CONNECTOR_SECURITY_PROFILE", True),
                                        ("idsc:BASE_SECURITY_PROFILE", False), ("idsc:BASE_CONNECTOR_SECURITY_PROFILE", False),
                                        (None, False)])
def test_station_members_only_security_profile(profile, ok):
    p = load("station-members-only.jsonld")
    d = p.evaluate(Request("use", "urn:x", HARBOUR), Context(membership={"hks:StationMember"}, security_profile=profile))
    assert d.permitted is ok
    if ok:
        assert [x.kind for x in d.duties] == ["log"]


def test_station_members_only_refuses_non_members():
    p = load("station-members-only.jsonld")
    d = p.evaluate(Request("use", "urn:x", MERLION), Context(membership=set(), security_profile="idsc:TRUST_SECURITY_PROFILE"))
    assert d.effect is Effect.DENY
    assert "Station membership none is not one of the permitted" in d.reasons[0].message


# --------------------------------------------------------------------------
# partners by name
# --------------------------------------------------------------------------


def test_partners_by_name():
    p = load("partners-by-name.jsonld")
    for org in (HARBOUR, PEARL):
        d = p.evaluate(Request("use", "urn:x", org), Context(organisation=org))
        assert d.permitted and [x.kind for x in d.duties] == ["notify"]
    d = p.evaluate(Request("use", "urn:x", MERLION), Context(organisation=MERLION))
    assert d.effect is Effect.DENY
    assert d.reasons[0].message.startswith(f"Requesting organisation {MERLION} is not one of the permitted")
