"""The cross-border record of an agreement (pure: no I/O, no clock; times are passed in).

An agreement made under a cross-border policy (the station's GBA template, or any policy that
names the station's cross-border profile) gets a record on both sides: the parties with the
jurisdiction and registration the station verified, the categories of personal information and
the purposes (DPV terms, from the agreed policy), the legal basis, the consent-evidence and
PIPIA references, the retention and the agreement id. The record is canonical JSON (RFC 8785)
and its SHA-256 is what the clearing house logs.

The GBA Standard Contract's conditions this module encodes (../shared/reference/ids/NOTES.md §5):
the PIPIA is done before the transfer (its reference and date must be on record before the first
one); consent evidence where the policy asks for it (an ``obtainConsent`` duty); a change of
purpose or of the categories of personal information needs a supplemental or new contract, so a
record can be narrowed but never widened.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping

import rfc8785

from ..policy import CompiledPolicy
from ..policy.compiled import Atom, Logic
from ..policy.taxonomy import covers, known_concept, unknown_in_namespace
from ..policy.vocab import DPV, HKS, ODRL, PD, compact, expand_curie
from ..errors import ComplianceError

Json = dict[str, Any]

#: the station's cross-border profile: a policy naming it in `profile` is cross-border
CROSS_BORDER_PROFILE = "https://w3id.org/hks/ns/cross-border"
#: the station's GBA Standard Contract template (any version)
GBA_TEMPLATE = "urn:hks:policy-template:gba-cross-border-personal-information:"
RECORD_TYPE = "hks:CrossBorderRecord"
MAX_REFERENCE = 255
_REF_RE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,%d}$" % MAX_REFERENCE)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_CATEGORY = HKS + "dataCategory"
_PURPOSE = ODRL + "purpose"
_RECIPIENT = HKS + "recipientJurisdiction"


class RecordError(ComplianceError, ValueError):
    """Bad input for a record: refused, nothing changes. `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_cross_border(policy: CompiledPolicy) -> bool:
    return CROSS_BORDER_PROFILE in policy.profile or (policy.uid or "").startswith(GBA_TEMPLATE)


@dataclass(frozen=True)
class Terms:
    """What the agreed policy says about personal information."""

    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    recipient_jurisdictions: tuple[str, ...]
    retention: str | None
    consent_required: bool
    consent_reference: str | None
    legal_basis: str


def _atoms(node: Any) -> Iterable[Atom]:
    if isinstance(node, Atom):
        yield node
    elif isinstance(node, Logic):
        for c in node.children:
            yield from _atoms(c)


def policy_terms(policy: CompiledPolicy) -> Terms:
    """The categories, purposes, recipients, retention and consent the permissions of `policy` state."""
    cats: list[str] = []
    purposes: list[str] = []
    where: list[str] = []
    retention = None
    consent_required, consent_ref = False, None
    for rule in policy.permissions:
        for c in rule.constraints:
            for a in _atoms(c):
                values = a.right if isinstance(a.right, tuple) else (a.right,)
                if a.lo.iri == _CATEGORY and a.op in ("isPartOf", "isAnyOf", "eq", "isAllOf", "hasPart", "isA"):
                    cats += [v for v in values if isinstance(v, str)]
                elif a.lo.iri == _PURPOSE and a.op in ("isPartOf", "isAnyOf", "eq", "isAllOf", "hasPart", "isA"):
                    purposes += [v for v in values if isinstance(v, str)]
                elif a.lo.iri == _RECIPIENT and a.op in ("isPartOf", "isAnyOf", "eq", "isA"):
                    where += [v for v in values if isinstance(v, str)]
                elif a.lo.kind == "elapsed" and a.op in ("lt", "lteq") and retention is None:
                    retention = a.right.text
        for d in rule.duties:
            if d.kind == "delete" and d.deadline_dur is not None:
                retention = d.deadline_dur.text
            if d.kind == "obtain-consent":
                consent_required = True
                consent_ref = consent_ref or d.consent_ref
    basis = DPV + "Consent" if consent_required else DPV + "Contract"
    return Terms(tuple(dict.fromkeys(compact(x) for x in cats)), tuple(dict.fromkeys(compact(x) for x in purposes)),
                 tuple(dict.fromkeys(where)), retention, consent_required,
                 compact(consent_ref) if consent_ref else None, compact(basis))


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def party(participant_id: str, claims: Mapping[str, Any] | None, verified_by: str) -> Json:
    """A party as the station verified it (its token's claims), or marked unverified."""
    claims = claims or {}
    jurisdiction = claims.get("jurisdiction")
    organisation = claims.get("organisation")
    return {"participantId": participant_id,
            "organisation": organisation if isinstance(organisation, str) else None,
            "jurisdiction": jurisdiction if isinstance(jurisdiction, str) and jurisdiction else None,
            "verifiedBy": verified_by if isinstance(jurisdiction, str) and jurisdiction else None}


def build_record(*, agreement_id: str, negotiation_id: str, role: str, asset_id: str, policy: CompiledPolicy,
                 agreed_at: float, provider: Json, consumer: Json) -> Json:
    t = policy_terms(policy)
    return {
        "@type": RECORD_TYPE, "agreementId": agreement_id, "negotiationId": negotiation_id, "role": role,
        "assetId": asset_id, "policyUid": policy.uid, "agreedAt": iso_utc(agreed_at),
        "regime": "GBA Standard Contract (cross-boundary flow of personal information, mainland GBA to Hong Kong)"
        if (policy.uid or "").startswith(GBA_TEMPLATE) else "station cross-border profile",
        "provider": provider, "consumer": consumer,
        "categories": list(t.categories), "purposes": list(t.purposes),
        "recipientJurisdictions": list(t.recipient_jurisdictions),
        "legalBasis": t.legal_basis, "consentRequired": t.consent_required,
        "consentPolicyReference": t.consent_reference, "consentEvidence": None,
        "pipia": None, "retention": t.retention, "contractEffectiveOn": None,
    }


def digest(record: Json) -> str:
    """SHA-256 (hex) of the record's RFC 8785 canonical form: what the clearing house logs."""
    return hashlib.sha256(rfc8785.dumps(record)).hexdigest()


# ------------------------------------------------------------------ changes (validated)

def reference(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _REF_RE.match(value.strip() or "\x00"):
        raise RecordError(f"{what} must be a reference of 1 to {MAX_REFERENCE} characters without control characters")
    return value.strip()


def past_date(value: Any, what: str, today: date, thing: str = "a PIPIA") -> str:
    """An ISO date (YYYY-MM-DD) not after `today`."""
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise RecordError(f"{what} must be a date written YYYY-MM-DD, got {str(value)[:40]!r}")
    try:
        d = date.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{what} {value!r} is not a calendar date") from None
    if d > today:
        raise RecordError(f"{what} {value} is in the future (today is {today.isoformat()}): {thing} is recorded "
                          "once it has happened")
    return d.isoformat()


def with_pipia(record: Json, body: Any, today: date) -> Json:
    if record["role"] != "provider":
        raise RecordError("the PIPIA is recorded by the provider (the party that transfers the personal information)",
                          409)
    if not isinstance(body, dict) or set(body) - {"reference", "date"}:
        raise RecordError('the body must be {"reference": "...", "date": "YYYY-MM-DD"}')
    return {**record, "pipia": {"reference": reference(body.get("reference"), "reference"),
                                "date": past_date(body.get("date"), "date", today)}}


def with_effective_date(record: Json, body: Any, today: date) -> Json:
    """The day the signed Standard Contract took effect, when it is not the day of the agreement."""
    if not isinstance(body, dict) or set(body) != {"date"}:
        raise RecordError('the body must be {"date": "YYYY-MM-DD"}')
    return {**record, "contractEffectiveOn": past_date(body["date"], "date", today, "the contract's effective date")}


CONSENT_BY_PROVIDER = ("the consent evidence is recorded by the provider (the party that collected the personal "
                       "information and transfers it; its data plane decides each access)")


def with_consent(record: Json, body: Any) -> Json:
    if record["role"] != "provider":
        raise RecordError(CONSENT_BY_PROVIDER, 409)
    if not isinstance(body, dict) or set(body) != {"reference"}:
        raise RecordError('the body must be {"reference": "..."}')
    return {**record, "consentEvidence": reference(body["reference"], "reference")}


def without_consent(record: Json) -> Json:
    """The consent evidence withdrawn (the data subjects withdrew their consent, PIPL art. 15): no data
    access under the agreement until new evidence is recorded. Earlier versions keep what was on record."""
    if record["role"] != "provider":
        raise RecordError(CONSENT_BY_PROVIDER, 409)
    if not record["consentEvidence"]:
        raise RecordError(f"no consent evidence is on record for agreement {record['agreementId'][:100]}", 409)
    return {**record, "consentEvidence": None}


def consent_facts(policy: CompiledPolicy, record: Json | None) -> tuple[frozenset[str] | None, dict[str, str] | None]:
    """What the policy engine reads about consent, from the provider's own record: with consent evidence on
    record, the consent references the policy's ``obtainConsent`` duties name (`Context.consents`) and, for
    such a duty naming none, its state "fulfilled" (`Context.duty_states`). Nothing without a record, on the
    consumer's side, or once the evidence is withdrawn: the duty then blocks (fail closed)."""
    if not record or record.get("role") != "provider" or not record.get("consentEvidence"):
        return None, None
    refs: set[str] = set()
    states: dict[str, str] = {}
    for rule in policy.permissions:
        for d in rule.duties:
            if d.kind != "obtain-consent":
                continue
            if d.consent_ref is not None:
                refs.add(d.consent_ref)
            else:
                states[d.key] = "fulfilled"
    return (frozenset(refs) or None), (states or None)


def dpv_terms(values: Any, what: str, namespace: str) -> list[str]:
    """A list of known DPV terms of `namespace` (pd: categories or dpv:/hks: purposes), compact."""
    if not isinstance(values, list) or not values or len(values) > 100:
        raise RecordError(f"{what} must be a list of 1 to 100 DPV terms")
    out = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise RecordError(f"{what} must hold DPV terms (strings), got {str(v)[:60]!r}")
        iri = expand_curie(v.strip())
        problem = unknown_in_namespace(iri)
        if problem or not known_concept(iri) or (namespace == PD and not iri.startswith(PD)):
            raise RecordError(f"{what}: {problem or (compact(iri)[:100] + ' is not a known DPV term here')}")
        out.append(compact(iri))
    return list(dict.fromkeys(out))


def narrowed(record: Json, body: Any) -> Json:
    """The record with fewer purposes or categories. Widening is refused (409): under the GBA Standard
    Contract a change of purpose or of the categories of personal information needs a supplemental or new
    contract, i.e. a new negotiation."""
    if not isinstance(body, dict) or not body or set(body) - {"purposes", "categories"}:
        raise RecordError('the body may change "purposes" and "categories" only')
    out = dict(record)
    for key, ns in (("purposes", DPV), ("categories", PD)):
        if key not in body:
            continue
        new = dpv_terms(body[key], key, ns)
        old = [expand_curie(x) for x in record[key]]
        wider = [x for x in new if not any(covers(o, expand_curie(x)) for o in old)]
        if wider:
            raise RecordError(
                f"{key} {', '.join(wider)[:200]} would widen agreement {record['agreementId'][:100]}: a change of purpose "
                "or of the categories of personal information needs a supplemental or new contract (GBA Standard "
                "Contract), so negotiate a new agreement for it", 409)
        out[key] = new
    return out


def asset_widening(record: Json, asset_categories: Any) -> list[str]:
    """Categories the asset now has that the record (the agreement) does not cover."""
    if not isinstance(asset_categories, list) or not record["categories"]:
        return []
    old = [expand_curie(x) for x in record["categories"]]
    return [compact(expand_curie(c)) for c in asset_categories
            if isinstance(c, str) and not any(covers(o, expand_curie(c)) for o in old)]


def preconditions(record: Json) -> list[str]:
    """Why the first transfer may not start yet ([] when it may)."""
    problems = []
    if record["pipia"] is None:
        problems.append(f"no personal-information protection impact assessment (PIPIA) is on record for agreement "
                        f"{record['agreementId'][:100]}: the GBA Standard Contract requires it before the transfer")
    if record["consentRequired"] and not record["consentEvidence"]:
        problems.append(f"the policy requires the data subjects' consent and no consent evidence is on record for "
                        f"agreement {record['agreementId'][:100]}")
    for side in ("provider", "consumer"):
        if not record[side]["jurisdiction"]:
            problems.append(f"the {side}'s jurisdiction was not verified when the agreement was made")
    return problems


# ------------------------------------------------------------------ export

CSV_COLUMNS = ("agreementId", "role", "version", "sha256", "agreedAt", "assetId", "policyUid",
               "providerId", "providerOrganisation", "providerJurisdiction",
               "consumerId", "consumerOrganisation", "consumerJurisdiction",
               "categories", "purposes", "legalBasis", "consentEvidence", "pipiaReference", "pipiaDate", "retention")


def csv_row(view: Json) -> list[str]:
    r = view["record"]
    p, c = r["provider"], r["consumer"]
    pipia = r["pipia"] or {}
    values = [r["agreementId"], r["role"], view["version"], view["sha256"], r["agreedAt"], r["assetId"],
              r["policyUid"], p["participantId"], p["organisation"], p["jurisdiction"],
              c["participantId"], c["organisation"], c["jurisdiction"], " ".join(r["categories"]),
              " ".join(r["purposes"]), r["legalBasis"], r["consentEvidence"], pipia.get("reference"),
              pipia.get("date"), r["retention"]]
    return ["" if v is None else str(v) for v in values]
