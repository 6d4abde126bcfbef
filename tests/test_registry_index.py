"""The registry's search in the station's database (issue 16, item 4) gives the same results as
the search it replaced (a scan of every self-description in memory, kept here verbatim as the
reference), on a generated registry of participants with realistic self-descriptions, for the
README's queries and more, several searchers, both databases; and after re-registrations and
revocations. Bad search parameters are refused with the rule."""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Mapping

import orjson
import pytest
import sqlalchemy as sa

from conftest import BACKENDS, database_url
from connector.identity import Caller
from connector.identity.sd import Index, IndexedOffer
from connector.policy import CompiledPolicy, Context, PolicyError, Request, compile_policy
from connector.station import registry as reg
from connector.station import registry_index, shared
from connector.station.store import participants, registry_offers, registry_policies
from connector.store.db import Database
from connector.vocab import policy_contexts
from support.registry_data import generate

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
N = 600


# ------------------------------------------------- the previous search, verbatim (the reference)
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


def usable(offer: IndexedOffer, query: reg.Query, searcher: Caller, cache: PolicyCache, now: dt.datetime) -> tuple[bool, list[str]]:
    if offer.policy is None:
        return False, ["the offer's policy is missing"]
    compiled = cache.get(offer.policy)
    if compiled is None:
        return False, ["the offer's policy cannot be read by the station's policy engine"]
    claims = searcher.claims or {}
    membership = claims.get("membership")
    membership = {membership} if isinstance(membership, str) else set(membership or ())
    deferred = set(reg.DECIDED_AT_USE)
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


def reference_search(entries: list[Index], query: reg.Query, searcher: Caller, cache: PolicyCache,
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


def index_from_dict(doc: dict) -> Index:
    return Index(connector=doc["connector"], participant_id=doc["participantId"], organisation=doc["organisation"],
                 jurisdiction=doc["jurisdiction"], membership=doc["membership"],
                 membership_status=doc["membershipStatus"], station=doc["station"],
                 security_profile=doc["securityProfile"], endpoints=doc["endpoints"],
                 offers=[IndexedOffer(**o) for o in doc["offers"]])


# ------------------------------------------------------------------------ setup
def participant_rows(records: list[dict]) -> list[dict]:
    return [{**r, "certificate_pem": "pem", "certificate_sha256": hashlib.sha256(r["id"].encode()).hexdigest(),
             "public_key_sha256": hashlib.sha256(b"k" + r["id"].encode()).hexdigest(), "enrolled_at": 1.0}
            for r in records]


def register_all(conn: sa.Connection, indexes: list[dict], decisions: registry_index.Decisions) -> None:
    for index in indexes:
        registry_index.delete_entry(conn, index["participantId"])
        registry_index.write_entry(conn, registry_index.rows_for(index, decisions))


@pytest.fixture(params=BACKENDS)
async def registry(request, tmp_path):
    records, indexes = generate(N, seed=7, now=NOW)
    async with database_url(request.param, tmp_path, "station") as url:
        db = Database(url)
        await db.migrate(shared.MIGRATIONS)
        await db.transaction(lambda conn: conn.execute(sa.insert(participants), participant_rows(records)))
        decisions = registry_index.Decisions()
        await db.transaction(lambda conn: registry_index.write_entries(  # (a new database: nothing to delete)
            conn, [registry_index.rows_for(i, decisions) for i in indexes]))
        try:
            yield db, records, indexes
        finally:
            await db.dispose()


QUERIES = [
    {"jurisdiction": "CN-GD-GZ", "theme": "health"},            # the README's examples
    {"purpose": "hks:MedicalResearch", "usableBy": "HK"},
    {"purpose": "hks:MedicalResearch", "usableBy": "SG", "limit": "500"},
    {"purpose": "research", "limit": "500"},
    {"usableBy": "HK", "limit": "500"},
    {"purpose": "hks:Evaluation", "limit": "500"},
    {"purpose": "dpv:ResearchAndDevelopment", "usableBy": "JP", "theme": "HEAL,TECH", "limit": "500"},
    {"jurisdiction": "SG", "purpose": "hks:MedicalResearch", "theme": "HEAL", "limit": "500"},
    {"q": "diabetes", "limit": "500"},
    {"q": "harbour traffic"},
    {"q": "2024 De-identified", "jurisdiction": "HK,SG", "limit": "500"},
    {"q": "zzz-nothing"},
    {"theme": "transport,ENVI", "limit": "500"},
    {"limit": "1"},
    {},
    {"limit": "500"},
    {"q": "records", "purpose": "hks:MedicalResearch", "usableBy": "CN-GD-SZ", "limit": "3"},
]


def searchers(records: list[dict], indexes: list[dict]) -> list[Caller]:
    """The station's administrator, an HK member, an SG non-member, and a participant that
    several participant-specific (named partners) policies admit."""
    named = {}
    for index in indexes:
        for offer in index["offers"]:
            for part in (offer["policy"] or {}).get("permission", []):
                for c in part.get("constraint", []):
                    if c.get("leftOperand") == "hks:organisation":
                        for p in c["rightOperand"]:
                            named[p["@id"]] = named.get(p["@id"], 0) + 1
    partner = max(named, key=named.get)
    hk = next(r for r in records if r["jurisdiction"] == "HK" and r["status"] == "active")
    sg = next(r for r in records if r["jurisdiction"] == "SG" and r["status"] == "active")
    return [Caller("station-admin", {}),
            Caller(hk["id"], {"jurisdiction": "HK", "membership": ["hks:StationMember"],
                              "referringConnector": hk["connector_url"], "securityProfile": "idsc:BASE_SECURITY_PROFILE"}),
            Caller(sg["id"], {"jurisdiction": "SG", "membership": [], "referringConnector": sg["connector_url"]}),
            Caller(partner, {"jurisdiction": "CN-GD-GZ", "membership": "hks:StationMember"})]


COMPILED = PolicyCache(size=1_000_000)  # (a cache changes no result; one for all: faster tests)


def reference(records, indexes, params, caller) -> list[dict]:
    active = {r["id"] for r in records if r["status"] == "active"}
    entries = [index_from_dict(i) for i in sorted(indexes, key=lambda i: i["participantId"]) if i["participantId"] in active]
    return reference_search(entries, reg.parse_query(params), caller, COMPILED, NOW)


async def test_the_indexed_search_answers_as_the_previous_search(registry):
    db, records, indexes = registry
    decisions = registry_index.Decisions()
    for caller in searchers(records, indexes):
        for params in QUERIES:
            expected = reference(records, indexes, params, caller)
            for _ in range(2):  # and again from the decisions cached by the first
                got = await db.read(registry_index.search, reg.parse_query(params), caller, decisions, NOW)
                assert got == expected, (caller.participant_id, params)
    # the data are realistic enough to tell searches apart
    admin = searchers(records, indexes)[1]
    sizes = [len(reference(records, indexes, p, admin)) for p in QUERIES]
    assert len(set(sizes)) > 5 and max(sizes) == 500 and min(sizes) == 0


async def test_re_registration_and_removal_keep_the_search_equal_and_the_policies_tidy(registry):
    db, records, indexes = registry
    decisions = registry_index.Decisions()
    changed = indexes[: N // 3]
    later = generate(N // 3, seed=8, now=NOW)[1]  # other offers under the same participant ids
    for old, new in zip(changed, later):
        new.update(participantId=old["participantId"], organisation=old["organisation"],
                   jurisdiction=old["jurisdiction"], connector=old["connector"], endpoints=old["endpoints"])
        for offer in new["offers"]:
            if offer["policy"]:
                offer["policy"]["assigner"] = old["participantId"]
    await db.transaction(register_all, later, decisions)
    removed = indexes[N // 3: N // 3 + 20]
    await db.transaction(lambda conn: [registry_index.delete_entry(conn, i["participantId"]) for i in removed])
    now_registered = later + indexes[N // 3 + 20:]
    caller = searchers(records, indexes)[1]
    for params in QUERIES:
        got = await db.read(registry_index.search, reg.parse_query(params), caller, decisions, NOW)
        assert got == reference(records, now_registered, params, caller), params

    def tidy(conn):
        keys = {k for (k,) in conn.execute(sa.select(registry_policies.c.decision_key))}
        used = {k for (k,) in conn.execute(sa.select(registry_offers.c.decision_key).distinct()) if k}
        return keys, used
    keys, used = await db.read(tidy)
    assert keys == used


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_decision_that_reads_the_time_is_kept_for_its_second_only(backend, tmp_path):
    """Decisions that do not read the time last across searches; one that does (here: usable until
    00:00:01) is shared by the searches of one whole second and decided again in the next."""
    records, indexes = generate(6, seed=11, now=NOW)
    entry = next(i for i, r in zip(indexes, records) if r["status"] == "active" and i["offers"])
    entry["offers"] = entry["offers"][:1]
    entry["offers"][0]["policy"] = {
        "@id": "urn:test:until-one-second-past", "assigner": entry["participantId"],
        "permission": [{"action": "use", "constraint": [{
            "leftOperand": "dateTime", "operator": "lt",
            "rightOperand": {"@value": "2026-06-01T00:00:01Z", "@type": "xsd:dateTime"}}]}]}
    async with database_url(backend, tmp_path, "station") as url:
        db = Database(url)
        await db.migrate(shared.MIGRATIONS)
        decisions = registry_index.Decisions()
        await db.transaction(lambda conn: (conn.execute(sa.insert(participants), participant_rows(records)),
                                           registry_index.write_entry(conn, registry_index.rows_for(entry, decisions))))
        searcher = Caller(records[-1]["id"], {"jurisdiction": "HK", "membership": ["hks:StationMember"]})
        query = reg.parse_query({"usableBy": "HK"})

        async def found(seconds: float) -> int:
            return len(await db.read(registry_index.search, query, searcher, decisions,
                                     NOW + dt.timedelta(seconds=seconds)))
        try:
            assert [await found(0), await found(0.9), await found(1), await found(1.5), await found(0)] == [1, 1, 0, 0, 1]
        finally:
            await db.dispose()


@pytest.mark.parametrize("params, refusal", [
    ({"q": "x" * 501}, "over 500 characters"),
    ({"q": " ".join(["w"] * 17)}, "more than 16 words"),
    ({"jurisdiction": ",".join(["HK"] * 21)}, "more than 20"),
    ({"jurisdiction": "HK'; DROP TABLE station_participants; --"}, "not a jurisdiction code"),
    ({"theme": ",".join(["HEAL"] * 21)}, "more than 20"),
    ({"q": "a\x00b"}, "control character"),
    ({"purpose": "hks:Medical Research"}, "purpose"),
    ({"usableBy": "hong kong"}, "not a jurisdiction code"),
    ({"limit": "0"}, "between 1 and 500"),
    ({"where": "1=1"}, "unknown search parameter"),
])
def test_bad_search_parameters_are_refused_with_the_rule(params, refusal):
    with pytest.raises(reg.QueryError, match=refusal):
        reg.parse_query(params)


async def test_a_query_s_text_is_data_not_sql(registry):
    db, records, indexes = registry
    caller = Caller("station-admin", {})
    for text in ["%", "_", "' or '1'='1", "\\", "records%"]:
        got = await db.read(registry_index.search, reg.parse_query({"q": text, "limit": "500"}), caller,
                            registry_index.Decisions(), NOW)
        assert got == reference(records, indexes, {"q": text, "limit": "500"}, caller), text
