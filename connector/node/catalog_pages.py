"""The DSP catalog in pages (issue 16): datasets in id order, read with a keyset over the
`offer_assets` index, only under the access policies that admit the requester, and the `Link`
header (`rel="next"`, `rel="previous"`) of the DSP 2025-1 catalog binding, on both versions.

A request costs one statement when its page was rendered before, two when not:

1. the catalog's version (`catalog_version`: raised by trigger in the transaction of every change to
   what a page is read from, whoever writes, so every replica reads the same number);
2. the requester's decision class: which access policies in use admit it. Static decisions come from
   `access_cache` (once per policy content and claim set); time-dependent ones are decided on every
   request and are part of the class; with a policy in use that is decided per dataset, the class
   also holds the requester's claims. Two requesters share a class only if every policy in use
   admits both or neither, so what they may see is the same;
3. a page rendered under (version, class, position, page size, filter, DSP version, base) is sent as
   it was; otherwise one statement reads the page (the offer index joined to offers, assets and
   certificates), and its bytes are kept (bounded by count and bytes).

A continuation token is opaque to peers: base64url of `[direction, dataset id, page size]`. It
names a position, never a permission: visibility is decided again on every page. A malformed
token is a 400 (`InvalidContinuationToken`)."""
from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import OrderedDict
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ..compute import FORMAT as COMPUTE
from ..certs.certificate import CATALOG_PROPERTY
from ..compute.sql import kind_of  # what compute.sql.computable decides, from two fields
from ..identity import Caller
from ..protocol.errors import MalformedMessage
from ..protocol.ids import id_problem
from ..protocol.policies import catalog_offer
from ..protocol.wire import to_wire
from ..store.prepared import Prepared
from ..store.tables import assets, catalog_version, dataset_certificates, offer_assets, offers, policies
from .access_cache import PER_OFFER, PER_REQUEST, AccessDecisions, RequestDecisions

Json = dict[str, Any]
#: the largest page, and the page a request that asks for none gets (the TCK's and EDC's catalogs
#: are far smaller: one page, as before)
MAX_PAGE = 1000
TOKEN_MAX_CHARS = 1024
#: rendered pages kept per process: at most this many, of at most this many bytes in all
RENDERED_PAGES, RENDERED_BYTES = 4096, 64 * 1024 * 1024
_ANY_TARGET = "urn:hks:catalog:any-dataset"  # static and per-request decisions do not read the target
_VERSION = Prepared(sa.select(catalog_version.c.version).where(catalog_version.c.id == 1))
_ACCESS_IN_USE = Prepared(sa.select(policies.c.id, sa.cast(policies.c.body, sa.Text)).where(
    sa.exists(sa.select(offers.c.id).where(offers.c.access_policy_id == policies.c.id))))


class Page(NamedTuple):
    datasets: list[Json]
    previous: str | None  # continuation tokens
    next: str | None


class Rendered(NamedTuple):
    """A catalog response as sent: its body and its `Link` header."""
    body: bytes
    links: str | None


# Read per row and per dataset of a page: plain tuples (a NamedTuple's constructor cost 7% of a
# page's time in the profile)
#: (offer id, created at, contract policy id, how many assets the offer names: an offer over
#: several names the dataset in its catalog id)
_Row = tuple[str, float, str, int]
#: (dataset id, its visible offers, offered for computation too (HKS-Compute), its registration
#: certificate bundle or None)
_Dataset = tuple[str, list[_Row], bool, Any]


OFFER_ASSET_SEPARATOR = "::"


def catalog_offer_id(offer_id: str, asset_id: str, asset_count: int) -> str:
    """An offer naming one asset keeps its own id in the catalog; an offer over several
    assets is listed per asset as <offer id>::<asset id>."""
    return offer_id if asset_count == 1 else f"{offer_id}{OFFER_ASSET_SEPARATOR}{asset_id}"


def encode_token(direction: str, dataset_id: str, size: int) -> str:
    raw = orjson.dumps([direction, dataset_id, size])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> tuple[str, str, int]:
    """(direction "n" | "p", dataset id, page size); MalformedMessage for anything else."""
    bad = MalformedMessage("the continuationToken is not one this catalog issued", code="InvalidContinuationToken")
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX_CHARS or not token.isascii():
        raise bad
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise bad from None
    if not (isinstance(value, list) and len(value) == 3 and value[0] in ("n", "p") and isinstance(value[1], str)
            and id_problem(value[1]) is None and isinstance(value[2], int) and not isinstance(value[2], bool)
            and 1 <= value[2] <= MAX_PAGE):
        raise bad
    return value[0], value[1], value[2]


def page_size(value: str | None) -> int:
    """The `pageSize` query parameter: 1..MAX_PAGE (absent: MAX_PAGE)."""
    if value is None:
        return MAX_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise MalformedMessage(f"pageSize must be an integer from 1 to {MAX_PAGE}", code="InvalidPageSize")
    return int(value)


class _Class(NamedTuple):
    """What the access policies in use decide for one claim set at one catalog version."""
    static: tuple[str, ...]  # the static policies that admit it
    per_request: tuple[str, ...]  # policies decided on each request (they read the time)
    per_offer: tuple[str, ...]  # policies decided per dataset: candidates, decided row by row


class _Policies:
    """The access policies in use at one catalog version, and what is derived from them (the
    decision classes per claim set, the contract policies' catalog forms)."""

    def __init__(self, version: int | None, access: dict[str, tuple[str, Json]]) -> None:
        self.version = version
        self.access = access  # id -> (content hash, body)
        self.contracts: dict[str, Json] = {}  # id -> body, read as pages name them
        self.templates: dict[tuple[str, str | None], Json] = {}  # (contract id, wire) -> offer without @id
        self.offer_parts: dict[str, list[bytes]] = {}  # contract id -> its 2025-1 offer's bytes around the @id
        self.classes: OrderedDict[str, _Class] = OrderedDict()

    def decision_class(self, decisions: RequestDecisions) -> _Class:
        hit = self.classes.get(decisions.claims)
        if hit is None:
            static, per_request, per_offer = [], [], []
            for policy_id, (digest, body) in self.access.items():
                kind = decisions.kind(digest, body)
                if kind == PER_OFFER:
                    per_offer.append(policy_id)
                elif kind == PER_REQUEST:
                    per_request.append(policy_id)
                elif decisions.admits(digest, body, _ANY_TARGET, None):
                    static.append(policy_id)
            hit = self.classes[decisions.claims] = _Class(tuple(sorted(static)), tuple(sorted(per_request)),
                                                          tuple(sorted(per_offer)))
            if len(self.classes) > 4096:
                self.classes.popitem(last=False)
        return hit


class _RenderedPages:
    """Rendered responses by key, least recently used first out, bounded in count and bytes."""

    def __init__(self, entries: int = RENDERED_PAGES, max_bytes: int = RENDERED_BYTES) -> None:
        self.entries, self.max_bytes = entries, max_bytes
        self._pages: OrderedDict[tuple, Rendered] = OrderedDict()
        self._bytes = 0
        self.version: int | None = None

    def get(self, key: tuple) -> Rendered | None:
        hit = self._pages.get(key)
        if hit is not None:
            self._pages.move_to_end(key)
        return hit

    def put(self, version: int, key: tuple, page: Rendered) -> None:
        if version != self.version:  # pages of an older version are never asked for again
            if self.version is not None and version < self.version:
                return
            self._pages.clear()
            self._bytes, self.version = 0, version
        if len(page.body) > self.max_bytes // 8 or key in self._pages:
            return
        self._pages[key] = page
        self._bytes += len(page.body)
        while len(self._pages) > self.entries or self._bytes > self.max_bytes:
            self._bytes -= len(self._pages.popitem(last=False)[1].body)


class CatalogPages:
    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.decisions = AccessDecisions(catalog.policies)
        self.rendered = _RenderedPages()
        self._policies = _Policies(None, {})
        self._bodies: dict[str, tuple[str, Json]] = {}
        self._statements: dict[tuple, Prepared] = {}
        self._skeletons: dict[tuple, list[bytes]] = {}  # (what, dsp base ...) -> bytes around the markers

    async def response(self, dsp_base: str, caller: Caller, *, dsp_version: str, size: int = MAX_PAGE,
                       token: str | None = None, limit: int | None = None) -> Rendered:
        """The catalog response (body bytes, Link header) for `caller`: a page kept under this catalog
        version and decision class, or read and rendered now. `limit`: EDC's first-N filter (no Link)."""
        direction, key = "n", None
        if token is not None:
            direction, key, size = decode_token(token)
        decisions = self.decisions.request(caller, time.time())
        place = (direction, key, size, dsp_base, dsp_version, limit)
        found = await self.catalog.db.read_committed(self._read, decisions, direction, key, size, None, place)
        if isinstance(found, Rendered):
            return found
        version, cache_key, read = found
        if dsp_version == "2025-1":
            body, page = self._render_2025(dsp_base, read, limit)
        else:
            page = self._render(dsp_base, read, None)
            catalog = self.envelope(dsp_base, page.datasets[:limit] if limit is not None else page.datasets)
            body = orjson.dumps(to_wire(catalog, dsp_version))
        links = page_links(f"{dsp_base}/catalog/request", page) if limit is None else None
        rendered = Rendered(body, links)
        if cache_key is not None:
            self.rendered.put(version, cache_key, rendered)
        return rendered

    async def page(self, dsp_base: str, caller: Caller, *, size: int = MAX_PAGE, token: str | None = None,
                   only: str | None = None, wire: str | None = None) -> Page:
        """One page as neutral datasets (not kept). `wire` "2025-1": the datasets already in the
        2025-1 wire form (see `encode_2025`)."""
        direction, key = "n", None
        if token is not None:
            direction, key, size = decode_token(token)
        decisions = self.decisions.request(caller, time.time())
        _, _, read = await self.catalog.db.read_committed(self._read, decisions, direction, key, size, only, None)
        return self._render(dsp_base, read, wire)

    def envelope(self, dsp_base: str, datasets: list[Json]) -> Json:
        out: Json = {
            "@id": f"{self.catalog.participant_id}#catalog",
            "@type": "Catalog",
            "participantId": self.catalog.participant_id,
            "service": [self.catalog.data_service(dsp_base)],
        }
        if datasets:
            out["dataset"] = datasets  # the schema wants at least one item: omit rather than send []
        return out

    # ------------------------------------------------------------------ reading
    def _read(self, conn: Connection, decisions: RequestDecisions, direction: str, key: str | None, size: int,
              only: str | None, place: tuple | None) -> Any:
        """A kept page (Rendered), or (version, key to keep the page under or None, what was read)."""
        # the version first: what is read after it is at least as new (PostgreSQL's read committed),
        # so a page is never kept under a version newer than its contents
        version = _VERSION.execute(conn).scalar()
        state = self._policies_at(conn, version)
        cls = state.decision_class(decisions)
        admitted = cls.static
        if cls.per_request:  # decided now: the time is theirs
            admitted = tuple(sorted(admitted + tuple(
                p for p in cls.per_request if decisions.admits(*state.access[p], _ANY_TARGET, None))))
        cache_key = None
        if place is not None and version is not None:
            cache_key = (admitted, decisions.claims if cls.per_offer else None, place)
            hit = self.rendered.get(cache_key) if self.rendered.version == version else None
            if hit is not None:
                return hit
        candidates = admitted + cls.per_offer
        visible, more = self._visible(conn, state, decisions, set(cls.per_offer), candidates, direction, key,
                                      size, only) if candidates else ([], False)
        if direction == "p":
            visible.reverse()
        has_next = more if direction == "n" else key is not None
        has_previous = (key is not None) if direction == "n" else more
        contracts = {r[2] for d in visible for r in d[1]} - state.contracts.keys()
        if contracts:
            for policy_id, text in conn.execute(sa.select(policies.c.id, sa.cast(policies.c.body, sa.Text))
                                                .where(policies.c.id.in_(sorted(contracts)))):
                state.contracts[policy_id] = self._body(text)[1]
        return version, cache_key, (state, visible, has_previous, has_next, size)

    def _policies_at(self, conn: Connection, version: int | None) -> _Policies:
        state = self._policies
        if version is None or state.version != version:
            access = {policy_id: self._body(text) for policy_id, text in _ACCESS_IN_USE.execute(conn)}
            state = _Policies(version, access)
            if version is not None and (self._policies.version is None or version > self._policies.version):
                self._policies = state
        return state

    def _body(self, text: str) -> tuple[str, Json]:
        """A stored policy's content hash and body, parsed once per content (bounded)."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        hit = self._bodies.get(digest)
        if hit is None:
            if len(self._bodies) >= 4096:
                self._bodies.clear()
            hit = self._bodies[digest] = (digest, orjson.loads(text))
        return hit

    def _statement(self, conn: Connection, forward: bool, after: str | None, only: bool, properties: bool) -> Prepared:
        """The page statement: offer index rows from a position in one direction, under the
        candidate policies, with what the page shows of each offer, asset and certificate."""
        dialect = conn.dialect.name
        shape = (dialect, forward, after, only, properties)
        hit = self._statements.get(shape)
        if hit is not None:
            return hit
        oa = offer_assets.c
        parts = [  # (table, its columns the page shows, how it joins a row of the offer index)
            (offers, [offers.c.created_at, offers.c.contract_policy_id,
                      sa.func.json_array_length(offers.c.asset_ids).label("asset_count")], offers.c.id == oa.offer_id),
            (assets, [assets.c.content_type, assets.c.data_address["type"].as_string().label("address_type"),
                      assets.c.data_address["path"].as_string().label("path"),
                      (sa.cast(assets.c.properties, sa.Text) if properties else sa.null()).label("properties")],
             assets.c.id == oa.asset_id),
            (dataset_certificates, [sa.cast(dataset_certificates.c.bundle, sa.Text).label("bundle")],
             dataset_certificates.c.asset_id == oa.asset_id)]
        if dialect == "postgresql":
            under = oa.access_policy_id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)))
            # Each row's offer, asset and certificate by one index probe (LATERAL): with plain joins the
            # planner merge-joined assets from their first row, or hashed the whole offers table, near
            # the end of the id range (98,000 asset rows read for a page at ds-098000: not linear). The
            # LIMIT 1 (the id is unique) keeps the planner from flattening them back into plain joins.
            offer, asset, cert = (sa.select(*columns).where(on).limit(1).lateral() for _, columns, on in parts)
            source = offer_assets.join(offer, sa.true()).outerjoin(asset, sa.true()).outerjoin(cert, sa.true())
            shown = [*offer.c, *asset.c, *cert.c]
        else:  # one statement whatever the number of candidates: the ids as one JSON array
            under = oa.access_policy_id.in_(sa.select(sa.literal_column("value"))
                                            .select_from(sa.func.json_each(sa.bindparam("ids", type_=sa.String))))
            # SQLite's plan is nested loops in the written order: an index probe per row already
            source = offer_assets.join(parts[0][0], parts[0][2])
            for table, _, on in parts[1:]:
                source = source.outerjoin(table, on)
            shown = [c for _, columns, _ in parts for c in columns]
        query = sa.select(oa.asset_id, oa.offer_id, oa.access_policy_id, *shown).select_from(source).where(under)
        if only:
            query = query.where(oa.asset_id == sa.bindparam("only"))
        position = sa.tuple_(oa.asset_id, oa.offer_id)
        mark = sa.tuple_(sa.bindparam("a"), sa.bindparam("o"))
        if after == "dataset":
            query = query.where(oa.asset_id > sa.bindparam("a") if forward else oa.asset_id < sa.bindparam("a"))
        elif after == "row":
            query = query.where(position > mark if forward else position < mark)
        order = (oa.asset_id, oa.offer_id)
        query = query.order_by(*(order if forward else [c.desc() for c in order])).limit(sa.bindparam("n"))
        hit = self._statements[shape] = Prepared(query)
        return hit

    def _visible(self, conn: Connection, state: _Policies, decisions: RequestDecisions, per_offer: set[str],
                 candidates: tuple[str, ...], direction: str, key: str | None, size: int,
                 only: str | None) -> tuple[list[_Dataset], bool]:
        """Up to `size` datasets the caller may see, from the position `key` in `direction`, each
        with its visible offers; and whether there are more."""
        forward = direction == "n"
        batch = size + 1 + size // 4  # one offer per dataset is the common case; more are read on
        visible: list[_Dataset] = []
        params: dict[str, Any] = {"ids": list(candidates) if conn.dialect.name == "postgresql"
                                  else orjson.dumps(candidates).decode()}
        if only is not None:
            params["only"] = only
        after = None
        if key is not None:
            after, params["a"] = "dataset", key
        while True:
            params["n"] = batch
            rows = self._statement(conn, forward, after, only is not None, bool(per_offer)).execute(conn, params).all()
            for asset_id, offer_id, policy_id, created, contract_id, asset_count, content_type, address_type, path, \
                    props, bundle in rows:
                if policy_id in per_offer and not decisions.admits(
                        *state.access[policy_id], asset_id, orjson.loads(props) if props else None):
                    continue
                if not (visible and visible[-1][0] == asset_id):
                    if len(visible) == size:
                        return visible, True
                    visible.append((asset_id, [], address_type == "file" and kind_of(str(path or ""), content_type)
                                    is not None,
                                    orjson.loads(bundle) if bundle else None))
                visible[-1][1].append((offer_id, created, contract_id, asset_count))
            if len(rows) < batch:
                return visible, False
            after, params["a"], params["o"] = "row", rows[-1][0], rows[-1][1]
            batch = min(4096, batch * 2)

    # ---------------------------------------------------------------- rendering
    def _render(self, dsp_base: str, read: tuple, wire: str | None) -> Page:
        state, visible = read[0], read[1]
        datasets: list[Json] = []

        def offer(row: _Row, asset_id: str) -> Json:
            offer_id, _, contract_id, asset_count = row
            return {**self._template(state, contract_id, wire),
                    "@id": offer_id if asset_count == 1 else catalog_offer_id(offer_id, asset_id, asset_count)}

        pull, both = self._distributions(dsp_base, wire)
        for asset_id, rows, compute, certificate in visible:
            if len(rows) > 1:
                rows = sorted(rows, key=lambda r: (r[1], r[0]))  # in the order they were offered
            out = {
                "@id": asset_id,
                "@type": "Dataset",
                "hasPolicy": [offer(r, asset_id) for r in rows],
                "distribution": both if compute else pull,
            }
            if certificate:  # its registration certificate (connector/certs)
                out[CATALOG_PROPERTY] = {"@type": "@json", "@value": certificate}
            datasets.append(out)
        return _tokens(datasets, read)

    def _template(self, state: _Policies, contract_id: str, wire: str | None) -> Json:
        """A contract policy's catalog offer (its "@id" to fill in), in the wire form `wire`."""
        template = state.templates.get((contract_id, wire))
        if template is None:
            template = catalog_offer("", state.contracts[contract_id], self.catalog.participant_id)
            state.templates[(contract_id, wire)] = template = _normal(template) if wire == "2025-1" else template
        return template

    def _skeleton(self, key: tuple, make: Any) -> list[bytes]:
        """The bytes of the JSON `make()` split at its markers, made once per key (bounded)."""
        hit = self._skeletons.get(key)
        if hit is None:
            if len(self._skeletons) >= 4096:
                self._skeletons.clear()
            hit = self._skeletons[key] = _MARKER.split(orjson.dumps(make()))
        return hit

    def _render_2025(self, dsp_base: str, read: tuple, limit: int | None) -> tuple[bytes, Page]:
        """The 2025-1 response body of a page, spliced from bytes: the envelope, dataset and offer
        parts are rendered (and normalised) once per DSP base and contract policy, the ids are
        filled in. The same bytes as `encode_2025` over `_render`'s datasets (tested)."""
        state, visible = read[0], read[1][:limit] if limit is not None else read[1]
        if not visible:  # the schema wants at least one dataset: the key is left out rather than []
            return encode_2025(self.envelope(dsp_base, [])), _tokens([], read)
        head, tail = self._skeleton(("catalog", dsp_base), lambda: {
            **to_wire(self.envelope(dsp_base, []), "2025-1"), "dataset": _MARK})
        offers = state.offer_parts
        dumps = orjson.dumps
        parts = [head, b"["]
        for n, (asset_id, rows, compute, certificate) in enumerate(visible):
            dataset = self._skeleton(("dataset", dsp_base, compute, bool(certificate)), lambda: {
                "@id": _MARK, "@type": "Dataset", "hasPolicy": _MARK,
                "distribution": self._distributions(dsp_base, "2025-1")[compute],
                **({CATALOG_PROPERTY: {"@type": "@json", "@value": _MARK}} if certificate else {})})
            parts += (b"," if n else b"", dataset[0], dumps(asset_id), dataset[1], b"[")
            if len(rows) > 1:
                rows = sorted(rows, key=lambda r: (r[1], r[0]))  # in the order they were offered
            for k, (offer_id, _, contract_id, asset_count) in enumerate(rows):
                offer = offers.get(contract_id)
                if offer is None:
                    offer = offers[contract_id] = _MARKER.split(dumps(
                        {**self._template(state, contract_id, "2025-1"), "@id": _MARK}))
                parts += (b"," if k else b"", offer[0], dumps(
                    offer_id if asset_count == 1 else catalog_offer_id(offer_id, asset_id, asset_count)), offer[1])
            parts += (b"]", dataset[2])
            if certificate:
                parts += (dumps(certificate), dataset[3])
        parts += (b"]", tail)
        return b"".join(parts), _tokens([], read)

    def _distributions(self, dsp_base: str, wire: str | None) -> tuple[list[Json], list[Json]]:
        """A dataset's distributions: (HTTP pull only, also for computation)."""
        service = self.catalog.data_service(dsp_base)
        pull = [{"@type": "Distribution", "format": "HttpData-PULL", "accessService": service}]
        both = pull + [{"@type": "Distribution", "format": COMPUTE, "accessService": service}]
        if wire == "2025-1":
            pull, both = (_normal({"distribution": d})["distribution"] for d in (pull, both))
        return pull, both

#: a place in a skeleton (see CatalogPages._skeleton) where bytes are spliced in
_MARK = "\u0001"
_MARKER = re.compile(rb'"\\u0001"')


def _tokens(datasets: list[Json], read: tuple) -> Page:
    """The page of `datasets`, with the continuation tokens of the pages before and after it."""
    _, visible, has_previous, has_next, size = read
    first, last = (visible[0][0], visible[-1][0]) if visible else (None, None)
    previous = encode_token("p", first, size) if has_previous and first is not None else None
    following = encode_token("n", last, size) if has_next and last is not None else None
    return Page(datasets, previous, following)


def _normal(node: Json) -> Json:
    """`node` in the 2025-1 wire form (set-valued terms as lists ...), without a context. The
    2025-1 reading is term by term, so parts normalised alone assemble into a normal whole."""
    out = to_wire(node, "2025-1")
    out.pop("@context", None)
    return out


def encode_2025(catalog: Json) -> bytes:
    """The wire bytes of a catalog page rendered with wire="2025-1": its envelope is normalised
    here, its datasets were when rendered (the same bytes as Codec.encode: tested)."""
    envelope = to_wire({k: v for k, v in catalog.items() if k != "dataset"}, "2025-1")
    if "dataset" in catalog:
        envelope["dataset"] = catalog["dataset"]
    return orjson.dumps(envelope)


def page_links(request_url: str, page: Page) -> str | None:
    """The `Link` header of a catalog page (RFC 8288): the pages before and after it."""
    links = [f'<{request_url}?continuationToken={token}>; rel="{rel}"'
             for rel, token in (("previous", page.previous), ("next", page.next)) if token is not None]
    return ", ".join(links) or None
