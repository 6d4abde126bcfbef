"""The registry's search index in the station's database (issue 16, item 4).

Each registration rewrites the participant's rows in ``station_registry_offers`` (one per offer,
in the self-description's order, with the finished search result, the lower-case words a query
matches and the provider's jurisdiction) and ``station_registry_themes``. A search is then one
ordered query over indexed tables (participant id, then position: the order the registry always
answered in), joined to the participants' status, read by every station process alike: what one
process registers, the next request at any other finds, with no copy of the registry in memory.

Whether an offer is usable (``purpose`` / ``usableBy``) is decided by the policy engine, as
before, but per *decision key* instead of per offer: offers whose policies differ only in what
the decision cannot depend on share one key and one evaluation. The key is the hash of the policy
without its own id, uid and assigner (names, not terms: the engine never decides on them), plus
the dataset id and data categories when the compiled policy reads them (a target, an asset
collection, a data-category constraint or anything not classified as claims or time; see
:func:`connector.node.access_cache.classify`). A policy the engine cannot read gets no key: never
usable. A key's decision for a (purpose, usableBy, searcher's claims) is cached across requests
when it depends on nothing else, and within the request when it also depends on the time.

A search with a policy filter reads the candidates' keys in order, in growing batches, and stops
at ``limit`` usable offers."""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Iterable, Mapping

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..identity import Caller
from ..node.access_cache import PER_OFFER, STATIC, classify, claims_key
from ..policy import CompiledPolicy
from .registry import Query, compile_offer_policy, permits
from .store import participants, registry_offers, registry_policies, registry_themes

Json = dict[str, Any]
#: what an offer's policy names without the decision reading it
UNDECIDED_NAMES = ("@id", "uid", "assigner")
FIRST_BATCH, MAX_BATCH = 256, 8192
UNREADABLE = "unreadable"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def search_text(entry: Mapping[str, Any], offer: Mapping[str, Any]) -> str:
    """The words a query's `q` matches, lower case. A query word has no white space, so a NUL
    (which PostgreSQL's text refuses) can be a space without changing any match."""
    return " ".join([entry["organisation"], offer["title"], offer["description"], offer["dataset_id"],
                     *offer["keywords"]]).lower().replace("\x00", " ")


def result(entry: Mapping[str, Any], offer: Mapping[str, Any]) -> Json:
    return {
        "participantId": entry["participantId"], "organisation": entry["organisation"],
        "jurisdiction": entry["jurisdiction"], "connector": entry["connector"], "dspEndpoints": entry["endpoints"],
        "counterPartyAddress": entry["connector"].rstrip("/"),
        "datasetId": offer["dataset_id"], "offerId": offer["offer_id"], "title": offer["title"],
        "description": offer["description"], "keywords": offer["keywords"], "themes": offer["themes"],
    }


class Decisions:
    """Compiled policies by decision key, their kinds, and decisions that hold across requests.
    Bounded: each map is emptied when full (read again from the database when needed)."""

    def __init__(self, size: int = 65536) -> None:
        self.size = size
        self.compiled: dict[str, tuple[CompiledPolicy, str, str, list[str]]] = {}
        self.static: dict[tuple[str, str | None, str | None, str], bool] = {}
        self.kinds: dict[bytes, str] = {}  # by policy content, for making keys at registration

    def key(self, policy: Json | None, dataset_id: str, categories: list[str]) -> tuple[str | None, Json | None]:
        """(decision key, policy as stored for it); (None, None) when the policy cannot be read."""
        if not isinstance(policy, dict):
            return None, None
        named_only = {k: v for k, v in policy.items() if k not in UNDECIDED_NAMES}
        content = orjson.dumps(named_only, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(content).digest()
        kind = self.kinds.get(digest)
        if kind is None:
            compiled = compile_offer_policy(named_only)
            if compiled is None:
                kind = UNREADABLE
            else:
                try:
                    kind = classify(compiled)
                except Exception:  # noqa: BLE001 - unclassifiable: decided per offer
                    kind = PER_OFFER
            if len(self.kinds) >= self.size:
                self.kinds.clear()
            self.kinds[digest] = kind
        if kind == UNREADABLE:
            return None, None
        if kind == PER_OFFER:
            content += b"\x00" + orjson.dumps([dataset_id, categories])
        return hashlib.sha256(content).hexdigest(), named_only

    def load(self, conn: Connection, keys: Iterable[str]) -> dict[str, tuple[CompiledPolicy, str, str, list[str]]]:
        """The compiled policy, its kind and its dataset and categories of each key (absent: no policy)."""
        found = {k: self.compiled[k] for k in keys if k in self.compiled}
        missing = [k for k in keys if k not in found]
        for start in range(0, len(missing), 500):
            rows = conn.execute(sa.select(registry_policies)
                                .where(registry_policies.c.decision_key.in_(missing[start:start + 500]))).mappings()
            for row in rows:
                compiled = compile_offer_policy(row["policy"])
                if compiled is None:  # (keys are made only for readable policies)
                    continue
                try:
                    kind = classify(compiled)
                except Exception:  # noqa: BLE001
                    kind = PER_OFFER
                if len(self.compiled) >= self.size:
                    self.compiled.clear()
                entry = (compiled, kind, row["dataset_id"], row["data_categories"])
                self.compiled[row["decision_key"]] = found[row["decision_key"]] = entry
        return found


class RequestDecisions:
    """The decisions of one search: one query, one searcher, one `now`."""

    def __init__(self, owner: Decisions, query: Query, searcher: Caller, now: dt.datetime) -> None:
        self.owner, self.query, self.searcher, self.now = owner, query, searcher, now
        self.claims = claims_key(searcher)
        self.memo: dict[str, bool] = {}

    def usable(self, conn: Connection, keys: set[str]) -> dict[str, bool]:
        owner, memo = self.owner, self.memo
        undecided = []
        for key in keys:
            if key not in memo:
                hit = owner.static.get((key, self.query.purpose, self.query.usable_by, self.claims))
                if hit is None:
                    undecided.append(key)
                else:
                    memo[key] = hit
        if undecided:
            policies = owner.load(conn, undecided)
            for key in undecided:
                entry = policies.get(key)
                if entry is None:  # no policy under that key: fail closed
                    memo[key] = False
                    continue
                compiled, kind, dataset_id, categories = entry
                hit = memo[key] = permits(compiled, dataset_id, categories, self.query, self.searcher, self.now)
                if kind == STATIC:
                    if len(owner.static) >= owner.size:
                        owner.static.clear()
                    owner.static[(key, self.query.purpose, self.query.usable_by, self.claims)] = hit
        return memo


# ------------------------------------------------------------------- writes
def _insert_ignoring_duplicates(conn: Connection, table: sa.Table, rows: list[Json]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).on_conflict_do_nothing(), rows)


def rows_for(entry: Mapping[str, Any], decisions: Decisions) -> tuple[list[Json], list[Json], list[Json]]:
    """The index rows of one registry entry (``Index.to_dict()``): offers, themes, policies."""
    pid = entry["participantId"]
    offers, themes, policies = [], [], {}
    for position, offer in enumerate(entry["offers"]):
        key, stored = decisions.key(offer.get("policy"), offer["dataset_id"], offer["data_categories"])
        if key is not None and key not in policies:
            policies[key] = {"decision_key": key, "policy": stored, "dataset_id": offer["dataset_id"],
                             "data_categories": offer["data_categories"]}
        offers.append({"participant_id": pid, "position": position, "jurisdiction": entry["jurisdiction"],
                       "search_text": search_text(entry, offer), "decision_key": key, "result": result(entry, offer)})
        themes.extend({"theme_sha256": sha256(t), "participant_id": pid, "position": position}
                      for t in sorted(set(offer["themes"])))
    return offers, themes, list(policies.values())


def delete_entry(conn: Connection, participant_id: str) -> None:
    old_keys = {k for (k,) in conn.execute(sa.select(registry_offers.c.decision_key).distinct()
                                           .where(registry_offers.c.participant_id == participant_id)) if k}
    conn.execute(sa.delete(registry_themes).where(registry_themes.c.participant_id == participant_id))
    conn.execute(sa.delete(registry_offers).where(registry_offers.c.participant_id == participant_id))
    if old_keys:  # policies no offer is under any more
        used = sa.select(registry_offers.c.decision_key).where(
            registry_offers.c.decision_key == registry_policies.c.decision_key).exists()
        conn.execute(sa.delete(registry_policies).where(registry_policies.c.decision_key.in_(sorted(old_keys)), ~used))


def write_entry(conn: Connection, rows: tuple[list[Json], list[Json], list[Json]]) -> None:
    """Insert an entry's rows (from :func:`rows_for`) after :func:`delete_entry`."""
    write_entries(conn, [rows])


def write_entries(conn: Connection, entries: list[tuple[list[Json], list[Json], list[Json]]]) -> None:
    """Insert several entries' rows at once (each participant's old rows deleted before)."""
    offers = [r for rows in entries for r in rows[0]]
    themes = [r for rows in entries for r in rows[1]]
    policies = list({r["decision_key"]: r for rows in entries for r in rows[2]}.values())
    _insert_ignoring_duplicates(conn, registry_policies, policies)
    if offers:
        conn.execute(sa.insert(registry_offers), offers)
    if themes:
        conn.execute(sa.insert(registry_themes), themes)


# ------------------------------------------------------------------- search
def _contains(conn: Connection, column: Any, word: str) -> Any:
    """`word in column` (a substring, as Python's `in`; no LIKE wildcards to escape)."""
    fn = sa.func.strpos if conn.dialect.name == "postgresql" else sa.func.instr
    return fn(column, word) > 0


def _candidates(conn: Connection, query: Query) -> list[Any]:
    o = registry_offers.c
    where = [participants.c.status == "active"]
    if query.jurisdictions:
        where.append(o.jurisdiction.in_(sorted(query.jurisdictions)))
    if query.themes:
        t = registry_themes.c
        where.append(sa.select(t.theme_sha256).where(
            t.participant_id == o.participant_id, t.position == o.position,
            t.theme_sha256.in_(sorted(sha256(x) for x in query.themes))).exists())
    for word in (query.text or "").split():
        where.append(_contains(conn, o.search_text, word))
    return where


def _joined(*columns: Any) -> Any:
    return sa.select(*columns).select_from(
        registry_offers.join(participants, participants.c.id == registry_offers.c.participant_id))


def search(conn: Connection, query: Query, searcher: Caller, decisions: Decisions, now: dt.datetime) -> list[Json]:
    o = registry_offers.c
    where = _candidates(conn, query)
    order = (o.participant_id, o.position)
    if not (query.purpose or query.usable_by):
        return [row[0] for row in conn.execute(_joined(o.result).where(*where).order_by(*order).limit(query.limit))]
    request = RequestDecisions(decisions, query, searcher, now)
    chosen: list[tuple[str, int]] = []
    after: tuple[str, int] | None = None
    batch = FIRST_BATCH
    while len(chosen) < query.limit:
        stmt = _joined(o.participant_id, o.position, o.decision_key).where(*where, o.decision_key.is_not(None))
        if after is not None:
            stmt = stmt.where(sa.or_(o.participant_id > after[0],  # (row values would not use the index)
                                     sa.and_(o.participant_id == after[0], o.position > after[1])))
        rows = conn.execute(stmt.order_by(*order).limit(batch)).all()
        if not rows:
            break
        usable = request.usable(conn, {r.decision_key for r in rows})
        for row in rows:
            if usable[row.decision_key]:
                chosen.append((row.participant_id, row.position))
                if len(chosen) >= query.limit:
                    break
        if len(rows) < batch:
            break
        after = (rows[-1].participant_id, rows[-1].position)
        batch = min(batch * 4, MAX_BATCH)
    if not chosen:
        return []
    wanted = set(chosen)
    pids = sorted({pid for pid, _ in chosen})
    found = {}
    for start in range(0, len(pids), 250):  # by participant (its index), not by (participant, position) pairs
        for row in conn.execute(sa.select(o.participant_id, o.position, o.result)
                                .where(o.participant_id.in_(pids[start:start + 250]))):
            if (row.participant_id, row.position) in wanted:
                found[(row.participant_id, row.position)] = row.result
    recipient = query.usable_by or searcher.claims.get("jurisdiction")
    out = []
    for pk in chosen:
        item = found[pk]
        item["usable"] = {"purpose": query.purpose, "recipientJurisdiction": recipient}
        out.append(item)
    return out
