"""The station registry (pure parts): a registered self-description is checked against the
station's own record of the participant, and searched by keyword, jurisdiction, data theme
and policy features. "Usable for medical research by an HK organisation" is decided by the
station's policy engine on each offer's own ODRL policy, fail closed."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from ..identity import Caller
from ..identity.sd import Index, IndexedOffer, connector_iri, theme_iri
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


def parse_query(params: Mapping[str, str]) -> Query:
    known = {"q", "jurisdiction", "theme", "purpose", "usableBy", "limit"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise QueryError(f"unknown search parameter {echo(unknown[0])} (known: {', '.join(sorted(known))})")
    for name, value in params.items():
        if len(value) > 500:
            raise QueryError(f"search parameter {echo(name)} is over 500 characters")
    themes = set()
    for raw in filter(None, (t.strip() for t in params.get("theme", "").split(","))):
        iri = theme_iri(raw)
        if iri is None:
            raise QueryError(f"unknown theme {echo(raw)}: give an EU data-theme code (HEAL, TRAN, ...), a word "
                             f"such as health or transport, or a theme IRI")
        themes.add(iri)
    jurisdictions = frozenset(j.strip().upper() for j in params.get("jurisdiction", "").split(",") if j.strip())
    purpose = params.get("purpose") or None
    if purpose:
        purpose = PURPOSE_ALIASES.get(purpose.lower(), purpose)
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise QueryError("limit must be an integer") from None
    if not 1 <= limit <= 500:
        raise QueryError("limit must be between 1 and 500")
    usable_by = (params.get("usableBy") or "").strip().upper() or None
    return Query(text=(params.get("q") or "").strip().lower() or None, jurisdictions=jurisdictions,
                 themes=frozenset(themes), purpose=purpose, usable_by=usable_by, limit=limit)


class PolicyCache:
    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._compiled: dict[str, CompiledPolicy | None] = {}

    def get(self, policy: Mapping[str, Any]) -> CompiledPolicy | None:
        key = hashlib.sha256(orjson.dumps(policy, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if key in self._compiled:
            return self._compiled[key]
        doc = dict(policy)
        doc.setdefault("@type", "Offer")
        if "uid" not in doc and "@id" not in doc:
            doc["uid"] = "urn:hks:policy:unnamed"
        try:
            compiled: CompiledPolicy | None = compile_policy(doc, contexts=policy_contexts())
        except (PolicyError, Exception):  # noqa: BLE001 - a policy the engine cannot read is never "usable"
            compiled = None
        if len(self._compiled) >= self.size:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = compiled
        return compiled


def usable(offer: IndexedOffer, query: Query, searcher: Caller, cache: PolicyCache, now: dt.datetime) -> tuple[bool, list[str]]:
    """Would the offer's policy permit `use` by the searcher (or an organisation in
    `usable_by`) for the declared purpose? Unknown facts fail closed, as in the node."""
    if offer.policy is None:
        return False, ["the offer's policy is missing"]
    compiled = cache.get(offer.policy)
    if compiled is None:
        return False, ["the offer's policy cannot be read by the station's policy engine"]
    claims = searcher.claims or {}
    membership = claims.get("membership")
    membership = {membership} if isinstance(membership, str) else set(membership or ())
    deferred = set(DECIDED_AT_USE)
    if query.purpose:
        deferred.discard("purpose")
    categories = frozenset(offer.data_categories) if offer.data_categories else None
    if categories is None:
        deferred.add("data_categories")
    try:
        context = Context(
            now=now, purpose=query.purpose, recipient_jurisdiction=query.usable_by or claims.get("jurisdiction"),
            organisation=searcher.participant_id, connector=claims.get("referringConnector"),
            membership=frozenset(membership) or None, security_profile=claims.get("securityProfile"),
            use_count=0, agreement_time=now, data_categories=categories, deferred=frozenset(deferred),
        )
        decision = compiled.evaluate(Request(action="use", target=offer.dataset_id, assignee=searcher.participant_id),
                                     context)
    except Exception as exc:  # noqa: BLE001 - fail closed
        return False, [f"the policy could not be evaluated: {type(exc).__name__}"]
    reasons = [r.message for r in decision.reasons if getattr(r, "code", "") != "constraint-deferred"]
    return bool(decision.permitted), reasons


def search(entries: list[Index], query: Query, searcher: Caller, cache: PolicyCache,
           now: dt.datetime) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    policy_filter = bool(query.purpose or query.usable_by)
    for entry in entries:
        if query.jurisdictions and entry.jurisdiction not in query.jurisdictions:
            continue
        for offer in entry.offers:
            if query.themes and not (set(offer.themes) & query.themes):
                continue
            if query.text:
                haystack = " ".join([entry.organisation, offer.title, offer.description, offer.dataset_id,
                                     *offer.keywords]).lower()
                if not all(word in haystack for word in query.text.split()):
                    continue
            result = {
                "participantId": entry.participant_id, "organisation": entry.organisation,
                "jurisdiction": entry.jurisdiction, "connector": entry.connector, "dspEndpoints": entry.endpoints,
                "counterPartyAddress": entry.connector.rstrip("/"),
                "datasetId": offer.dataset_id, "offerId": offer.offer_id, "title": offer.title,
                "description": offer.description, "keywords": offer.keywords, "themes": offer.themes,
            }
            if policy_filter:
                ok, reasons = usable(offer, query, searcher, cache, now)
                if not ok:
                    continue
                result["usable"] = {"purpose": query.purpose,
                                    "recipientJurisdiction": query.usable_by or searcher.claims.get("jurisdiction")}
            results.append(result)
            if len(results) >= query.limit:
                return results
    return results
