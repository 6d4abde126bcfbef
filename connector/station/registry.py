"""The station registry (pure parts): a registered self-description is checked against the
station's own record of the participant, and a search (keyword, jurisdiction, data theme and
policy features) is read from a participant's query, bounded. "Usable for medical research by an
HK organisation" is decided by the station's policy engine on each offer's own ODRL policy, fail
closed (:func:`permits`); the search itself runs on the database's index
(:mod:`connector.station.registry_index`)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..identity import Caller
from ..identity.sd import JURISDICTION_RE, Index, connector_iri, theme_iri
from ..protocol.errors import echo
from ..policy import CompiledPolicy, Context, PolicyError, Request, compile_policy
from ..vocab import policy_contexts
from ..errors import StationError

#: how the data will be used: not known when searching unless the query says (the node decides
#: these at each use); everything else about the requester comes from the query or its claims
DECIDED_AT_USE = frozenset({"purpose", "processing_location", "retention_period", "events", "duty_states", "consents"})
PURPOSE_ALIASES = {
    "research": "dpv:ResearchAndDevelopment",
    "scientific-research": "dpv:ScientificResearch",
    "medical-research": "hks:MedicalResearch",
    "evaluation": "hks:Evaluation",
}


#: a purpose as a compact (prefix:Name) or absolute IRI, without space or characters IRIs exclude
_PURPOSE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]{1,300}$")


class RegistrationRefused(StationError, ValueError):
    """The self-description contradicts the station's record (or the caller's token)."""


def check_against_record(index: Index, record: Mapping[str, Any], caller: Caller, issuer: str) -> None:
    """The claims a self-description makes must be the station's: same participant as the
    token, same organisation, jurisdiction, membership and status as the record, same
    connector as the token's referringConnector, and this station as the authority."""
    if index.participant_id != caller.participant_id:
        raise RegistrationRefused(f"the self-description is for participant {echo(index.participant_id)}, "
                                  f"but the token is {echo(caller.participant_id)}'s")
    if index.organisation != record["name"]:
        raise RegistrationRefused(f"the self-description names the organisation {echo(index.organisation)}; "
                                  f"the station's record says {echo(record['name'])}")
    if index.jurisdiction != record["jurisdiction"]:
        raise RegistrationRefused(f"the self-description claims jurisdiction {echo(index.jurisdiction)}; "
                                  f"the station's record says {echo(record['jurisdiction'])}")
    if index.membership_status != record["status"]:
        raise RegistrationRefused(f"the self-description claims membership status {echo(index.membership_status)}; "
                                  f"the station's record says {echo(record['status'])}")
    extra = set(index.membership) - set(record["membership"])
    if extra:
        raise RegistrationRefused(f"the self-description claims memberships the station did not certify: {sorted(extra)}")
    if (index.station or "").rstrip("/") != issuer.rstrip("/"):
        raise RegistrationRefused(f"the self-description names the station {echo(index.station)}, not {echo(issuer)}")
    referring = caller.claims.get("referringConnector") or record.get("connector_url")
    if referring and connector_iri(str(referring)) != index.connector:
        raise RegistrationRefused(f"the self-description describes the connector {echo(index.connector)}, "
                                  f"but the participant's connector is {echo(connector_iri(str(referring)))}")


@dataclass
class Query:
    text: str | None = None
    jurisdictions: frozenset[str] = frozenset()   # of the provider
    themes: frozenset[str] = frozenset()          # theme IRIs
    purpose: str | None = None                    # declared purpose (compact or full IRI)
    usable_by: str | None = None                  # recipient jurisdiction
    limit: int = 50


class QueryError(StationError, ValueError):
    pass


#: bounds on what a searcher may ask (every value is also at most 500 characters)
MAX_WORDS, MAX_CODES = 16, 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _codes(name: str, raw: str) -> frozenset[str]:
    codes = [j.strip().upper() for j in raw.split(",") if j.strip()]
    if len(codes) > MAX_CODES:
        raise QueryError(f"search parameter {name} lists more than {MAX_CODES} jurisdictions")
    for code in codes:
        if not JURISDICTION_RE.match(code):
            raise QueryError(f"{echo(code)} in {name} is not a jurisdiction code (ISO 3166: HK, CN-GD-GZ, ...)")
    return frozenset(codes)


def parse_query(params: Mapping[str, str]) -> Query:
    """A search from a participant's query string: known parameters only, each bounded in length,
    in the number of words or codes it lists and in its characters; values are data, never SQL."""
    known = {"q", "jurisdiction", "theme", "purpose", "usableBy", "limit"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise QueryError(f"unknown search parameter {echo(unknown[0])} (known: {', '.join(sorted(known))})")
    for name, value in params.items():
        if len(value) > 500:
            raise QueryError(f"search parameter {echo(name)} is over 500 characters")
        if _CONTROL.search(value):
            raise QueryError(f"search parameter {echo(name)} has a control character")
    text = (params.get("q") or "").strip().lower() or None
    if text and len(text.split()) > MAX_WORDS:
        raise QueryError(f"search parameter q has more than {MAX_WORDS} words")
    raw_themes = [t.strip() for t in params.get("theme", "").split(",") if t.strip()]
    if len(raw_themes) > MAX_CODES:
        raise QueryError(f"search parameter theme lists more than {MAX_CODES} themes")
    themes = set()
    for raw in raw_themes:
        iri = theme_iri(raw)
        if iri is None:
            raise QueryError(f"unknown theme {echo(raw)}: give an EU data-theme code (HEAL, TRAN, ...), a word "
                             f"such as health or transport, or a theme IRI")
        themes.add(iri)
    jurisdictions = _codes("jurisdiction", params.get("jurisdiction", ""))
    purpose = params.get("purpose") or None
    if purpose:
        purpose = PURPOSE_ALIASES.get(purpose.lower(), purpose)
        if not _PURPOSE_RE.match(purpose):
            raise QueryError(f"purpose {echo(purpose)} is not a purpose: give a compact or full IRI "
                             f"(hks:MedicalResearch, dpv:ResearchAndDevelopment) or {', '.join(PURPOSE_ALIASES)}")
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise QueryError("limit must be an integer") from None
    if not 1 <= limit <= 500:
        raise QueryError("limit must be between 1 and 500")
    usable_by = sorted(_codes("usableBy", params.get("usableBy") or ""))
    if len(usable_by) > 1:
        raise QueryError("usableBy names one jurisdiction")
    return Query(text=text, jurisdictions=jurisdictions, themes=frozenset(themes), purpose=purpose,
                 usable_by=usable_by[0] if usable_by else None, limit=limit)


def compile_offer_policy(policy: Mapping[str, Any]) -> CompiledPolicy | None:
    """An offer's policy as the station's engine reads it; None if it cannot (never usable)."""
    doc = dict(policy)
    doc.setdefault("@type", "Offer")
    if "uid" not in doc and "@id" not in doc:
        doc["uid"] = "urn:hks:policy:unnamed"
    try:
        return compile_policy(doc, contexts=policy_contexts())
    except (PolicyError, Exception):  # noqa: BLE001 - a policy the engine cannot read is never "usable"
        return None


def permits(compiled: CompiledPolicy, dataset_id: str, data_categories: list[str], query: Query, searcher: Caller,
            now: dt.datetime) -> bool:
    """Would the policy permit `use` of the dataset by the searcher (or an organisation in
    `usable_by`) for the declared purpose? Unknown facts fail closed, as in the node."""
    claims = searcher.claims or {}
    membership = claims.get("membership")
    membership = {membership} if isinstance(membership, str) else set(membership or ())
    deferred = set(DECIDED_AT_USE)
    if query.purpose:
        deferred.discard("purpose")
    categories = frozenset(data_categories) if data_categories else None
    if categories is None:
        deferred.add("data_categories")
    try:
        context = Context(
            now=now, purpose=query.purpose, recipient_jurisdiction=query.usable_by or claims.get("jurisdiction"),
            organisation=searcher.participant_id, connector=claims.get("referringConnector"),
            membership=frozenset(membership) or None, security_profile=claims.get("securityProfile"),
            use_count=0, agreement_time=now, data_categories=categories, deferred=frozenset(deferred),
        )
        decision = compiled.evaluate(Request(action="use", target=dataset_id, assignee=searcher.participant_id),
                                     context)
    except Exception:  # noqa: BLE001 - fail closed
        return False
    return bool(decision.permitted)
