"""The DSP catalog in pages (issue 16): datasets in id order, read with a keyset over the
`offer_assets` index, only under the access policies that admit the requester (decided once per
policy and claim set: `access_cache`), and the `Link` header (`rel="next"`, `rel="previous"`) of
the DSP 2025-1 catalog binding, on both versions.

A continuation token is opaque to peers: base64url of `[direction, dataset id, page size]`. It
names a position, never a permission: visibility is decided again on every page. A malformed
token is a 400 (`InvalidContinuationToken`)."""
from __future__ import annotations

import base64
import hashlib
import time
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..compute import FORMAT as COMPUTE
from ..certs.node import catalog_properties
from ..compute.sql import computable
from ..identity import Caller
from ..protocol.errors import MalformedMessage
from ..protocol.ids import id_problem
from ..protocol.policies import catalog_offer
from ..protocol.wire import to_wire
from ..store.prepared import Prepared
from ..store.tables import assets, offer_assets, offers, policies
from .access_cache import PER_OFFER, AccessDecisions, RequestDecisions

Json = dict[str, Any]
#: the largest page, and the page a request that asks for none gets (the TCK's and EDC's catalogs
#: are far smaller: one page, as before)
MAX_PAGE = 1000
TOKEN_MAX_CHARS = 1024
_ANY_TARGET = "urn:hks:catalog:any-dataset"  # static decisions do not read the target
_IN_USE = Prepared(sa.select(policies.c.id, sa.cast(policies.c.body, sa.Text))
                   .where(sa.exists(sa.select(offers.c.id).where(offers.c.access_policy_id == policies.c.id))))


class _Offer(NamedTuple):
    id: str
    created_at: float
    contract_policy_id: str
    assets: int  # len(asset_ids): an offer over several names the dataset in its catalog id (find_offer)
    body: Json  # the contract policy


class Page(NamedTuple):
    datasets: list[Json]
    previous: str | None  # continuation tokens
    next: str | None


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


class CatalogPages:
    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.decisions = AccessDecisions(catalog.policies)
        self._bodies: dict[str, Json] = {}

    async def page(self, dsp_base: str, caller: Caller, *, size: int = MAX_PAGE, token: str | None = None,
                   only: str | None = None, wire: str | None = None) -> Page:
        """`wire` "2025-1": the datasets already in the 2025-1 wire form (see `encode_2025`)."""
        direction, key = "n", None
        if token is not None:
            direction, key, size = decode_token(token)
        decisions = self.decisions.request(caller, time.time())
        found = await self.catalog.db.read(self._read, decisions, direction, key, size, only)
        return self._render(dsp_base, found, wire)

    # ------------------------------------------------------------------ reading
    def _read(self, conn: Connection, decisions: RequestDecisions, direction: str, key: str | None, size: int,
              only: str | None) -> tuple[list[tuple[str, list[str]]], dict, bool, bool, int, set[str], dict]:
        bodies: dict[str, tuple[str, Json]] = {}
        candidates: list[str] = []
        for policy_id, text in _IN_USE.execute(conn):
            digest, body = self._body(text)
            bodies[policy_id] = (digest, body)
            if decisions.kind(digest, body) == PER_OFFER or decisions.admits(digest, body, _ANY_TARGET, None):
                candidates.append(policy_id)
        visible: list[tuple[str, list[str]]] = []
        offer_rows: dict[str, _Offer] = {}
        more = False
        if candidates:
            visible, more = self._visible(conn, decisions, bodies, candidates, direction, key, size, only, offer_rows)
        if direction == "p":
            visible.reverse()
        has_next = more if direction == "n" else key is not None
        has_previous = (key is not None) if direction == "n" else more
        computable_ids: set[str] = set()  # the page's datasets that also offer computation (HKS-Compute)
        for chunk in _chunks([a for a, _ in visible], 500):
            computable_ids.update(r.id for r in conn.execute(
                sa.select(assets.c.id, assets.c.data_address, assets.c.content_type).where(assets.c.id.in_(chunk)))
                if computable(r))
        certified: dict[str, Json] = {}  # the page's datasets with a registration certificate (connector/certs)
        for chunk in _chunks([a for a, _ in visible], 500):
            certified.update(catalog_properties(conn, chunk))
        return visible, offer_rows, has_previous, has_next, size, computable_ids, certified

    def _body(self, text: str) -> tuple[str, Json]:
        """A stored policy's content hash and body, parsed once per content (bounded)."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        hit = self._bodies.get(digest)
        if hit is None:
            if len(self._bodies) >= 4096:
                self._bodies.clear()
            hit = self._bodies[digest] = orjson.loads(text)
        return digest, hit

    def _visible(self, conn: Connection, decisions: RequestDecisions, bodies: dict[str, tuple[str, Json]],
                 candidates: list[str], direction: str, key: str | None, size: int,
                 only: str | None, offer_rows: dict[str, _Offer]) -> tuple[list[tuple[str, list[str]]], bool]:
        """Up to `size` datasets the caller may see, from the position `key` in `direction`, each
        with its visible offers (their rows into `offer_rows`); and whether there are more."""
        forward = direction == "n"
        batch = min(4096, max(64, 2 * (size + 1)))
        visible: list[tuple[str, list[str]]] = []
        cursor: tuple[str, str] | None = None
        oa = offer_assets.c
        per_offer = {p for p in candidates if decisions.kind(*bodies[p]) == PER_OFFER}
        while True:
            query = (sa.select(oa.asset_id, oa.offer_id, oa.access_policy_id, offers.c.created_at,
                               offers.c.contract_policy_id, offers.c.asset_ids, sa.cast(policies.c.body, sa.Text))
                     .join(offers, offers.c.id == oa.offer_id)
                     .join(policies, policies.c.id == offers.c.contract_policy_id)
                     .where(oa.access_policy_id.in_(candidates)))
            if only is not None:
                query = query.where(oa.asset_id == only)
            if key is not None:
                query = query.where(oa.asset_id > key if forward else oa.asset_id < key)
            if cursor is not None:
                a, o = cursor
                if forward:
                    query = query.where(sa.or_(oa.asset_id > a, sa.and_(oa.asset_id == a, oa.offer_id > o)))
                else:
                    query = query.where(sa.or_(oa.asset_id < a, sa.and_(oa.asset_id == a, oa.offer_id < o)))
            order = (oa.asset_id, oa.offer_id)
            query = query.order_by(*(order if forward else [c.desc() for c in order])).limit(batch)
            rows = conn.execute(query).all()
            properties: dict[str, Any] = {}
            needed = sorted({r[0] for r in rows if r[2] in per_offer})
            for chunk in _chunks(needed, 500):  # the dataset's data categories: only for per-offer policies
                properties.update(conn.execute(sa.select(assets.c.id, assets.c.properties)
                                               .where(assets.c.id.in_(chunk))).all())
            for asset_id, offer_id, policy_id, created, contract_id, asset_ids, text in rows:
                digest, body = bodies[policy_id]
                if policy_id in per_offer and not decisions.admits(digest, body, asset_id, properties.get(asset_id)):
                    continue
                if not (visible and visible[-1][0] == asset_id):
                    if len(visible) == size:
                        return visible, True
                    visible.append((asset_id, []))
                visible[-1][1].append(offer_id)
                if offer_id not in offer_rows:
                    offer_rows[offer_id] = _Offer(offer_id, created, contract_id, len(asset_ids), self._body(text)[1])
            if len(rows) < batch:
                return visible, False
            cursor = (rows[-1][0], rows[-1][1])
            batch = min(4096, batch * 2)

    # ---------------------------------------------------------------- rendering
    def _render(self, dsp_base: str, found: tuple, wire: str | None) -> Page:
        visible, offer_rows, has_previous, has_next, size, computable_ids, certified = found
        service = self.catalog.data_service(dsp_base)
        participant = self.catalog.participant_id
        datasets: list[Json] = []
        from .catalog import catalog_offer_id  # noqa: PLC0415 - catalog imports this module
        templates: dict[str, Json] = {}  # a contract policy's catalog form, made once per page

        def offer(row: Any, asset_id: str) -> Json:
            template = templates.get(row.contract_policy_id)
            if template is None:
                template = catalog_offer("", row.body, participant)
                templates[row.contract_policy_id] = template = _normal(template) if wire == "2025-1" else template
            return {**template, "@id": catalog_offer_id(row.id, asset_id, row.assets)}

        pull = [{"@type": "Distribution", "format": "HttpData-PULL", "accessService": service}]
        both = pull + [{"@type": "Distribution", "format": COMPUTE, "accessService": service}]
        if wire == "2025-1":
            pull, both = (_normal({"distribution": d})["distribution"] for d in (pull, both))
        for asset_id, ids in visible:
            rows = sorted((offer_rows[o] for o in ids if o in offer_rows), key=lambda r: (r.created_at, r.id))
            if not rows:
                continue
            datasets.append({
                "@id": asset_id,
                "@type": "Dataset",
                "hasPolicy": [offer(r, asset_id) for r in rows],
                "distribution": both if asset_id in computable_ids else pull,
                **certified.get(asset_id, {}),
            })
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


def _chunks(items: list[str], n: int):  # noqa: ANN202
    for i in range(0, len(items), n):
        yield items[i:i + n]
