"""Assets, policies and offers, and the DSP catalog built from them."""
from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..store.prepared import Prepared
from ..identity import Caller
from ..store.db import Database
from .catalog_pages import MAX_PAGE, OFFER_ASSET_SEPARATOR, CatalogPages, Page, catalog_offer_id  # noqa: F401
from .listing import query_page
from .usage import PolicyCache
from ..store.tables import assets, offer_assets, offers, policies

Json = dict[str, Any]
log = logging.getLogger("connector.catalog")
_ACCESS = policies.alias("access_policy")
_FIND_OFFER = Prepared(
    sa.select(offers.c.asset_ids, policies.c.body, _ACCESS.c.body)
    .join(policies, policies.c.id == offers.c.contract_policy_id)
    .join(_ACCESS, _ACCESS.c.id == offers.c.access_policy_id)
    .where(offers.c.id == sa.bindparam("b_offer"))
)


class FoundOffer(NamedTuple):
    """A catalog offer id resolved: its dataset, contract and access policies, and the offer's
    own id (offers.id), which its agreement keeps."""
    dataset_id: str
    policy: Json
    access_policy: Json
    offer_id: str


class CatalogService:
    def __init__(self, db: Database, *, participant_id: str, title: str) -> None:
        self.db = db
        self.participant_id = participant_id
        self.title = title
        # Called (no arguments) after assets, policies or offers change, e.g. to re-register
        # the node's self-description with the station registry.
        self.on_change: list = []
        self.policies = PolicyCache()
        self.pages = CatalogPages(self)

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    # ------------------------------------------------------------ management
    async def create_asset(self, asset: Json) -> Json:
        row = {
            "id": asset["id"], "title": asset.get("title") or asset["id"], "description": asset.get("description", ""),
            "content_type": asset.get("contentType", "application/octet-stream"),
            "properties": asset.get("properties", {}), "data_address": asset.get("dataAddress", {}),
            "created_at": time.time(),
        }
        await self.db.transaction(lambda conn: conn.execute(sa.insert(assets).values(**row)))
        self._changed()
        return row

    async def update_asset(self, asset_id: str, change: Json) -> Json | None:
        """Change an asset's title, description, content type or data address (None: no such asset).
        One transaction; the catalog's version rises with it (trigger of migration 0015), so every
        replica's next catalog page shows the change, and every later access reads the new address."""
        columns = {"title": "title", "description": "description", "contentType": "content_type",
                   "dataAddress": "data_address"}
        values = {column: change[key] for key, column in columns.items() if key in change}
        if "title" in values and not values["title"]:
            values["title"] = asset_id  # as at creation: an asset always has a title

        def update(conn: Connection) -> Json | None:
            if conn.execute(sa.update(assets).where(assets.c.id == asset_id).values(**values)).rowcount != 1:
                return None
            return dict(conn.execute(sa.select(assets).where(assets.c.id == asset_id)).mappings().one())

        row = await self.db.transaction(update)
        if row is not None:
            self._changed()
        return row

    async def create_policy(self, policy_id: str, body: Json) -> Json:
        row = {"id": policy_id, "body": body, "created_at": time.time()}
        await self.db.transaction(lambda conn: conn.execute(sa.insert(policies).values(**row)))
        self._changed()
        return row

    async def create_offer(self, offer: Json) -> Json:
        row = {
            "id": offer["id"], "asset_ids": list(offer["assetIds"]), "access_policy_id": offer["accessPolicyId"],
            "contract_policy_id": offer["contractPolicyId"], "created_at": time.time(),
        }

        def insert(conn: Connection) -> None:
            _check_references(conn, row)
            conn.execute(sa.insert(offers).values(**row))
            _index_offer(conn, row["id"], row["asset_ids"], row["access_policy_id"])

        await self.db.transaction(insert)
        self._changed()
        return row

    async def update_offer(self, offer: Json) -> Json | None:
        """Replace an offer's assets and policies (None: no such offer). Agreements made under it
        keep their terms, but its access policy, as it is now, decides every later transfer start
        and access; negotiations under way see the change before an agreement is sent."""
        values = {"asset_ids": list(offer["assetIds"]), "access_policy_id": offer["accessPolicyId"],
                  "contract_policy_id": offer["contractPolicyId"]}

        def update(conn: Connection) -> Json | None:
            _check_references(conn, values)
            if conn.execute(sa.update(offers).where(offers.c.id == offer["id"]).values(**values)).rowcount != 1:
                return None
            conn.execute(sa.delete(offer_assets).where(offer_assets.c.offer_id == offer["id"]))
            _index_offer(conn, offer["id"], values["asset_ids"], values["access_policy_id"])
            return dict(conn.execute(sa.select(offers).where(offers.c.id == offer["id"])).mappings().one())

        row = await self.db.transaction(update)
        if row is not None:
            self._changed()
        return row

    async def delete_offer(self, offer_id: str) -> bool:
        """Withdraw an offer. Agreements made under it are refused from then on (fail closed)."""
        deleted = await self.db.transaction(lambda conn: (
            conn.execute(sa.delete(offer_assets).where(offer_assets.c.offer_id == offer_id)),
            conn.execute(sa.delete(offers).where(offers.c.id == offer_id)).rowcount == 1)[1])
        if deleted:
            self._changed()
        return deleted

    async def list_rows(self, table: sa.Table, *, limit: int | None = None, cursor: str | None = None,
                        where: Any = None) -> list[Json]:
        """Rows in creation order; with `limit`, at most limit + 1 after `cursor` (listing.query_page);
        only those matching `where` when given."""
        select = sa.select(table) if where is None else sa.select(table).where(where)
        query = query_page(select, table.c.created_at, table.c.id, limit=limit, cursor=cursor)
        return await self.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    async def get_row(self, table: sa.Table, row_id: str) -> Json | None:
        query = sa.select(table).where(table.c.id == row_id)

        def load(conn: Connection) -> Json | None:
            row = conn.execute(query).mappings().first()
            return dict(row) if row is not None else None

        return await self.db.read(load)

    # ------------------------------------------------------------- protocol
    def find_offer(self, conn: Connection, offer_id: str) -> FoundOffer | None:
        """The offer behind a catalog offer id, or None. One query per candidate reading."""
        candidates: list[tuple[str, str | None]] = [(offer_id, None)]
        if OFFER_ASSET_SEPARATOR in offer_id:
            head, _, asset_id = offer_id.rpartition(OFFER_ASSET_SEPARATOR)
            candidates.append((head, asset_id))
        for def_id, asset_id in candidates:
            row = _FIND_OFFER.execute(conn, {"b_offer": def_id}).first()
            if row is None:
                continue
            asset_ids = list(row[0])
            if asset_id is None and len(asset_ids) == 1:
                return FoundOffer(asset_ids[0], row[1], row[2], def_id)
            if asset_id is not None and asset_id in asset_ids and len(asset_ids) > 1:
                return FoundOffer(asset_id, row[1], row[2], def_id)
        return None

    def data_service(self, dsp_base: str) -> Json:
        return {"@id": f"{self.participant_id}#dsp", "@type": "DataService", "endpointURL": dsp_base}

    async def catalog(self, dsp_base: str, caller: Caller) -> Json:
        """The first page of the catalog (MAX_PAGE datasets)."""
        return (await self.catalog_page(dsp_base, caller))[0]

    async def catalog_page(self, dsp_base: str, caller: Caller, *, size: int = MAX_PAGE,
                           token: str | None = None, wire: str | None = None) -> tuple[Json, Page]:
        """One page of the datasets with the offers whose access policy permits `caller` (the others
        stay invisible), and the continuation tokens of the pages before and after it. With `wire`
        "2025-1" the datasets are already in that wire form (catalog_pages.encode_2025)."""
        page = await self.pages.page(dsp_base, caller, size=size, token=token, wire=wire)
        return self.pages.envelope(dsp_base, page.datasets), page

    async def dataset(self, dsp_base: str, dataset_id: str, caller: Caller) -> Json | None:
        found = (await self.pages.page(dsp_base, caller, size=1, only=dataset_id)).datasets
        return found[0] if found else None


def _index_offer(conn: Connection, offer_id: str, asset_ids: list[str], access_policy_id: str) -> None:
    rows = [{"asset_id": a, "offer_id": offer_id, "access_policy_id": access_policy_id}
            for a in dict.fromkeys(asset_ids)]
    if rows:
        conn.execute(sa.insert(offer_assets), rows)


def _check_references(conn: Connection, row: Json) -> None:
    for key in ("access_policy_id", "contract_policy_id"):
        if conn.execute(sa.select(policies.c.id).where(policies.c.id == row[key])).first() is None:
            raise LookupError(f"policy {row[key]!r} does not exist")
    for asset_id in row["asset_ids"]:
        if conn.execute(sa.select(assets.c.id).where(assets.c.id == asset_id)).first() is None:
            raise LookupError(f"asset {asset_id!r} does not exist")
