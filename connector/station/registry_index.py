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
when the policy does not read the time (the key already holds the policy, and the dataset and its
categories when the policy reads them; nothing else goes into the decision), and for the rest of
the second when it does: the registry decides at whole seconds (``now`` without its fraction, less
than the clock skew a token's leeway allows), so every search within one second shares them.

A search with a policy filter reads the candidates' keys in order, in growing batches, and stops
at ``limit`` usable offers. Results are read as the JSON text stored at registration and joined
into the answer as they are (:func:`search_json`): no parse and no re-serialisation per request."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from typing import Any, Iterable, Mapping

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..identity import Caller
from ..node.access_cache import PER_OFFER, classify, claims_key, reads
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
    """Compiled policies by decision key (with whether their decisions last across requests), and
    the decisions that do. Bounded: each map is emptied when full (read again when needed)."""

    def __init__(self, size: int = 65536) -> None:
        self.size = size
        self.compiled: dict[str, tuple[CompiledPolicy, bool, str, list[str]]] = {}
        self.lasting: dict[tuple[str, str | None, str | None, str], bool] = {}
        #: decisions that read the time, of the newest second decided (the second is in the key: a
        #: search of an earlier second that finishes later adds entries no other search reads)
        self.second: dt.datetime | None = None
        self.this_second: dict[tuple[str, str | None, str | None, str, dt.datetime], bool] = {}
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

    def load(self, conn: Connection, keys: Iterable[str]) -> dict[str, tuple[CompiledPolicy, bool, str, list[str]]]:
        """The compiled policy of each key, whether its decisions last across requests (it does not read
        the time), and its dataset and categories (absent: no policy)."""
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
                    lasting = "time" not in reads(compiled)
                except Exception:  # noqa: BLE001 - unclassifiable: decided anew in each request
                    lasting = False
                if len(self.compiled) >= self.size:
                    self.compiled.clear()
                entry = (compiled, lasting, row["dataset_id"], row["data_categories"])
                self.compiled[row["decision_key"]] = found[row["decision_key"]] = entry
        return found


class RequestDecisions:
    """The decisions of one search: one query, one searcher, one `now` (a whole second)."""

    def __init__(self, owner: Decisions, query: Query, searcher: Caller, now: dt.datetime) -> None:
        self.owner, self.query, self.searcher, self.now = owner, query, searcher, now.replace(microsecond=0)
        self.claims = claims_key(searcher)
        self.memo: dict[str, bool] = {}
        if owner.second is None or self.now > owner.second:
            owner.second, owner.this_second = self.now, {}

    def usable(self, conn: Connection, keys: set[str]) -> dict[str, bool]:
        owner, memo, query = self.owner, self.memo, self.query
        undecided = []
        for key in keys:
            if key not in memo:
                hit = owner.lasting.get((key, query.purpose, query.usable_by, self.claims))
                if hit is None:
                    hit = owner.this_second.get((key, query.purpose, query.usable_by, self.claims, self.now))
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
                compiled, lasting, dataset_id, categories = entry
                hit = memo[key] = permits(compiled, dataset_id, categories, self.query, self.searcher, self.now)
                if lasting:
                    if len(owner.lasting) >= owner.size:
                        owner.lasting.clear()
                    owner.lasting[(key, query.purpose, query.usable_by, self.claims)] = hit
                else:
                    if len(owner.this_second) >= owner.size:
                        owner.this_second.clear()
                    owner.this_second[(key, query.purpose, query.usable_by, self.claims, self.now)] = hit
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
# A search's statements are built once per shape (which filters, how many words, which step) with
# their values as parameters: building a statement and its cache key cost more of a search's time
# than running it (CPU profile of bench/registry.py), and a statement object keeps its key.
RESULTS, KEYS, KEYS_AFTER, BY_PARTICIPANTS = "results", "keys", "keys-after", "by-participants"


@functools.lru_cache(maxsize=512)
def _statement(dialect: str, step: str, jurisdictions: bool = False, themes: bool = False, words: int = 0) -> Any:
    o = registry_offers.c
    stored = sa.cast(o.result, sa.Text)  # the JSON text as stored, not parsed (json::text on PostgreSQL)
    if step == BY_PARTICIPANTS:  # (by participant, its index; not by (participant, position) pairs)
        return sa.select(o.participant_id, o.position, stored).where(
            o.participant_id.in_(sa.bindparam("pids", expanding=True)))
    where = [participants.c.status == "active"]
    if jurisdictions:
        where.append(o.jurisdiction.in_(sa.bindparam("jurisdictions", expanding=True)))
    if themes:
        t = registry_themes.c
        where.append(sa.select(t.theme_sha256).where(
            t.participant_id == o.participant_id, t.position == o.position,
            t.theme_sha256.in_(sa.bindparam("themes", expanding=True))).exists())
    # a word is a substring, as Python's `in` (no LIKE wildcards to escape)
    contains = sa.func.strpos if dialect == "postgresql" else sa.func.instr
    for i in range(words):
        where.append(contains(o.search_text, sa.bindparam(f"w{i}", type_=sa.Text)) > 0)
    if step == RESULTS:
        columns: tuple[Any, ...] = (stored,)
    else:
        columns = (o.participant_id, o.position, o.decision_key)
        where.append(o.decision_key.is_not(None))
        if step == KEYS_AFTER:  # (row values would not use the index)
            after_pid = sa.bindparam("after_pid", type_=o.participant_id.type)
            where.append(sa.or_(o.participant_id > after_pid,
                                sa.and_(o.participant_id == after_pid, o.position > sa.bindparam("after_position"))))
    return (sa.select(*columns).select_from(registry_offers.join(participants, participants.c.id == o.participant_id))
            .where(*where).order_by(o.participant_id, o.position).limit(sa.bindparam("limit")))


def _candidates(conn: Connection, query: Query, step: str) -> tuple[Any, Json]:
    """The statement of one step of a search, and its parameters."""
    words = (query.text or "").split()
    params: Json = {f"w{i}": word for i, word in enumerate(words)}
    if query.jurisdictions:
        params["jurisdictions"] = sorted(query.jurisdictions)
    if query.themes:
        params["themes"] = sorted(sha256(x) for x in query.themes)
    return _statement(conn.dialect.name, step, bool(query.jurisdictions), bool(query.themes), len(words)), params


def search(conn: Connection, query: Query, searcher: Caller, decisions: Decisions, now: dt.datetime) -> list[Json]:
    """The results of a search, parsed (see :func:`search_json`)."""
    return [orjson.loads(text) for text in search_json(conn, query, searcher, decisions, now)]


def answer(results: list[str]) -> bytes:
    """The search's answer, ``{"count": N, "results": [...]}``, joined from the results' JSON texts."""
    return b'{"count":%d,"results":[%s]}' % (len(results), ",".join(results).encode())


def search_json(conn: Connection, query: Query, searcher: Caller, decisions: Decisions,
                now: dt.datetime) -> list[str]:
    """The search's results in order, each the JSON text of one result object."""
    if not (query.purpose or query.usable_by):
        stmt, params = _candidates(conn, query, RESULTS)
        return [row[0] for row in conn.execute(stmt, {**params, "limit": query.limit})]
    request = RequestDecisions(decisions, query, searcher, now)
    chosen: list[tuple[str, int]] = []
    after: tuple[str, int] | None = None
    batch = FIRST_BATCH
    while len(chosen) < query.limit:
        stmt, params = _candidates(conn, query, KEYS if after is None else KEYS_AFTER)
        if after is not None:
            params.update(after_pid=after[0], after_position=after[1])
        rows = conn.execute(stmt, {**params, "limit": batch}).all()
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
    by_participants = _statement(conn.dialect.name, BY_PARTICIPANTS)
    for start in range(0, len(pids), 250):
        for row in conn.execute(by_participants, {"pids": pids[start:start + 250]}):
            if (row.participant_id, row.position) in wanted:
                found[(row.participant_id, row.position)] = row[2]
    recipient = query.usable_by or searcher.claims.get("jurisdiction")
    usable = orjson.dumps({"purpose": query.purpose, "recipientJurisdiction": recipient}).decode()
    # (a result is a JSON object as written at registration: its text ends with its closing brace)
    return [found[pk].rstrip()[:-1] + ',"usable":' + usable + "}"
            for pk in chosen if pk in found]  # (absent: re-registered meanwhile, on PostgreSQL)
