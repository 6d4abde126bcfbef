"""The node's side of dataset registration certificates (I/O: the node's database, the station, the
clearing house, the asset's bytes).

Management API (under /api/v1, the node's API key), added by `CertificateService.routes`:

* ``POST /assets/{id}/registration`` — compute the asset's SHA-256 (a file: its bytes; an HTTP
  upstream: a snapshot fetched through the data plane's guarded client, checked against the
  allowed upstream hosts) and ask the station for a certificate. An asset that already has one is
  re-registered as a new version (``replaces`` the old serial).
* ``POST /assets/{id}/registration/refresh`` — ask the station how the review went; once approved,
  check the certificate (the station's signature, this node as owner, this dataset, this digest)
  and, once the station has logged it at the clearing house, its log entry (sent by the station)
  and inclusion proof against the pinned clearing-house key; keep that bundle. Until the station's
  entry is in the log the status is ``logging``: refresh again.
* ``GET /assets/{id}/certificate`` — the bundle (what `connector verify-certificate` checks).

The catalog advertises a dataset's bundle as the property `certificate.CATALOG_PROPERTY`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from aiohttp import web

from ..bodies import read_limited
from ..node.management import ApiError as RegistrationError  # the management API's refusal: {"error": ...}
from ..store.tables import assets, dataset_certificates
from .certificate import (CATALOG_PROPERTY, CERT_TYP, CertificateError, check_claims, serial_of, sha256_hex,
                          verify_bundle, verify_signed)

log = logging.getLogger("connector.certs")
Json = dict[str, Any]
SNAPSHOT_SECONDS = 300.0


def catalog_properties(conn: sa.Connection, asset_ids: list[str]) -> dict[str, Json]:
    """The dataset property for each of `asset_ids` that holds a certificate (one query; called by
    the catalog pages for the datasets of a page)."""
    if not asset_ids:
        return {}
    rows = conn.execute(sa.select(dataset_certificates.c.asset_id, dataset_certificates.c.bundle)
                        .where(dataset_certificates.c.asset_id.in_(asset_ids),
                               dataset_certificates.c.bundle.is_not(None))).all()
    return {a: {CATALOG_PROPERTY: {"@type": "@json", "@value": b}} for a, b in rows if b}


class CertificateService:
    def __init__(self, node: Any) -> None:
        self.node = node

    def routes(self, prefix: str, wrap: Callable[..., Any]) -> list[web.RouteDef]:
        table = [
            ("POST", "/assets/{id}/registration", self.register),
            ("POST", "/assets/{id}/registration/refresh", self.refresh),
            ("GET", "/assets/{id}/registration", self.status),
            ("GET", "/assets/{id}/certificate", self.certificate),
        ]
        return [web.route(m, prefix + path, wrap(h, True)) for m, path, h in table]

    async def annotate(self, rows: list[Json]) -> None:
        """Set "certificate" (the SHA-256 of its certificate) on each asset row that has one (for the
        self-description)."""
        def load(conn: sa.Connection) -> dict[str, str]:
            return {a: sha256_hex(b["certificate"].encode("ascii")) for a, b in conn.execute(
                sa.select(dataset_certificates.c.asset_id, dataset_certificates.c.bundle)
                .where(dataset_certificates.c.bundle.is_not(None))).all() if b}
        certified = await self.node.db.read(load)
        for row in rows:
            if row["id"] in certified:
                row["certificate"] = certified[row["id"]]

    # ------------------------------------------------------------------ helpers
    async def _asset(self, asset_id: str) -> tuple[Json, Json | None]:
        def load(conn: sa.Connection) -> tuple[Json | None, Json | None]:
            a = conn.execute(sa.select(assets).where(assets.c.id == asset_id)).mappings().first()
            c = conn.execute(sa.select(dataset_certificates).where(
                dataset_certificates.c.asset_id == asset_id)).mappings().first()
            return (dict(a) if a else None), (dict(c) if c else None)
        asset, cert = await self.node.db.read(load)
        if asset is None:
            raise RegistrationError(404, f"no asset {asset_id[:200]}: only a dataset of this node can be registered")
        return asset, cert

    async def digest(self, asset: Json) -> str:
        """SHA-256 of the asset's bytes (an HTTP upstream: of a snapshot fetched now)."""
        dp = self.node.dataplane
        address = asset.get("data_address") or {}
        h = hashlib.sha256()
        try:
            async with asyncio.timeout(SNAPSHOT_SECONDS):
                if address.get("type") == "file":
                    path = dp._file_path(str(address.get("path", "")))
                    if not path.is_file():
                        raise RegistrationError(409, "the asset's file is missing: nothing to register")

                    def hash_file() -> None:
                        with open(path, "rb") as fh:
                            for chunk in iter(lambda: fh.read(1 << 20), b""):
                                h.update(chunk)
                    await asyncio.to_thread(hash_file)
                elif address.get("type") == "http":
                    dp._check_upstream(str(address.get("url", "")))
                    async for chunk in dp._upstream_chunks(address["url"]):
                        h.update(chunk)
                else:
                    raise RegistrationError(409, "the asset has no data address (file or http): nothing to register")
        except RegistrationError:
            raise
        except ValueError as exc:
            raise RegistrationError(409, f"the asset's data cannot be read: {str(exc)[:200]}") from None
        except (TimeoutError, asyncio.TimeoutError):
            raise RegistrationError(504, f"the snapshot of the upstream took over {SNAPSHOT_SECONDS:.0f} s") from None
        except Exception as exc:  # noqa: BLE001 - the upstream's detail stays in our log
            log.warning("asset %s: snapshot failed: %s %s", asset["id"][:100], type(exc).__name__, exc)
            raise RegistrationError(502, "the snapshot of the asset's upstream failed") from None
        return h.hexdigest()

    def _station(self) -> tuple[Any, str]:
        identity = self.node.identity
        if self.node.settings.identity_mode != "station" or not self.node.settings.identity_station_url:
            raise RegistrationError(409, "dataset registration needs a station identity ([identity] mode = station)")
        return identity.client.trust, self.node.settings.identity_station_url.rstrip("/")

    async def _call(self, method: str, path: str, body: Json | None = None) -> tuple[int, Json]:
        trust, url = self._station()
        issuer = await trust.issuer()
        headers = {"Authorization": await self.node.identity.outbound_authorization(issuer)}
        try:
            async with trust.session.request(method, url + path, json=body, headers=headers,
                                             allow_redirects=False) as resp:
                raw = await read_limited(resp, 256 * 1024)
                status = resp.status
        except Exception as exc:  # noqa: BLE001 - our rule, never the network's detail
            log.warning("station call %s %s failed: %s %s", method, path, type(exc).__name__, exc)
            raise RegistrationError(502, "the station did not answer the registration call") from None
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, (dict, list)):
            raise RegistrationError(502, f"the station's answer is not JSON (HTTP {status})")
        return status, doc

    async def _jwks(self) -> Json:
        trust, url = self._station()
        async with trust.session.get(url + "/jwks.json", allow_redirects=False) as resp:
            raw = await read_limited(resp, 64 * 1024)
            if resp.status != 200:
                raise RegistrationError(502, "the station's keys could not be read")
        return orjson.loads(raw)

    # ------------------------------------------------------------------ routes
    async def register(self, request: web.Request) -> web.Response:
        asset_id = request.match_info["id"]
        asset, existing = await self._asset(asset_id)
        self._station()
        digest = await self.digest(asset)
        props = asset.get("properties") or {}
        categories = [c for c in (props.get("dataCategories") or []) if isinstance(c, str)][:50]
        replaces = None
        if existing is not None and existing["bundle"]:
            replaces = serial_of(existing["bundle"])
        body = {"datasetId": asset_id, "sha256": digest, "title": (asset.get("title") or asset_id)[:500],
                "categories": categories, "replaces": replaces}
        status, doc = await self._call("POST", "/certificates/requests", body)
        if status != 201 or not isinstance(doc, dict) or not isinstance(doc.get("serial"), int):
            why = doc.get("error") if isinstance(doc, dict) else None
            raise RegistrationError(502 if status >= 500 else 409,
                                    f"the station refused the registration (HTTP {status}): {str(why)[:200]}")
        row = {"asset_id": asset_id, "request_id": str(doc["serial"]), "sha256": digest, "status": "pending",
               "updated_at": time.time()}

        def keep(conn: sa.Connection) -> None:
            if existing is None:
                conn.execute(sa.insert(dataset_certificates).values(**row, bundle=None))
            else:  # the current certificate stays advertised until the new version's is issued
                conn.execute(sa.update(dataset_certificates).where(
                    dataset_certificates.c.asset_id == asset_id).values(**row))
        await self.node.db.transaction(keep)
        log.info("asset %s: registration request %s sent to the station (sha256 %s)", asset_id[:100], doc["serial"],
                 digest)
        return web.json_response({"assetId": asset_id, "request": doc["serial"], "sha256": digest,
                                  "status": "pending", "replaces": replaces})

    async def refresh(self, request: web.Request) -> web.Response:
        asset_id = request.match_info["id"]
        _, row = await self._asset(asset_id)
        if row is None:
            raise RegistrationError(404, f"asset {asset_id[:200]} has no registration request")
        if row["status"] in ("approved", "rejected"):
            return await self.status(request)
        status, doc = await self._call("GET", f"/certificates/requests/{int(row['request_id'])}")
        if status != 200 or not isinstance(doc, dict):
            raise RegistrationError(502, f"the station did not give the request's status (HTTP {status})")
        if doc.get("status") == "rejected":
            await self._set(asset_id, status="rejected")
            return web.json_response({"assetId": asset_id, "status": "rejected", "reason": doc.get("reason")})
        if doc.get("status") != "approved":
            return web.json_response({"assetId": asset_id, "status": str(doc.get("status"))[:20]})
        token = doc.get("certificate")
        try:
            jwks = await self._jwks()
            claims = check_claims(verify_signed(token, jwks, CERT_TYP, "certificate"))
        except CertificateError as exc:
            raise RegistrationError(502, f"the station's certificate is refused: {exc}") from None
        me = self.node.participant_id
        if claims["owner"] != me or claims["datasetId"] != asset_id or claims["sha256"] != row["sha256"] \
                or str(claims["serial"]) != row["request_id"]:
            raise RegistrationError(502, "the station's certificate is not the one requested (owner, dataset, digest "
                                         "or serial differs)")
        if not doc.get("logged"):  # the station logs it itself; its receipt comes with the request
            return web.json_response({"assetId": asset_id, "status": "logging", "serial": claims["serial"]})
        key = self.node.settings.clearinghouse_verifier_key
        if not key:
            raise RegistrationError(409, "no clearing house is configured: a certificate is advertised only once its "
                                         "log entry is checked against the clearing house's key")
        bundle = {"certificate": token, "logEntry": doc.get("logEntry"), "receipt": doc.get("receipt")}
        try:
            verified = verify_bundle(bundle, station_jwks=jwks, clearinghouse_key=key, owner=me, dataset_id=asset_id,
                                     data_sha256=row["sha256"])
        except CertificateError as exc:
            raise RegistrationError(502, f"the station's log entry for the certificate is refused: {exc}") from None
        await self._set(asset_id, status="approved", bundle=bundle)
        self.node.catalog._changed()  # the self-description names the certificate: rebuilt and re-registered
        log.info("asset %s: certificate %s issued, logged by the station at index %d", asset_id[:100],
                 claims["serial"], verified.leaf_index)
        return web.json_response({"assetId": asset_id, "status": "approved", "serial": claims["serial"],
                                  "bundle": bundle})

    async def _set(self, asset_id: str, **values: Any) -> None:
        await self.node.db.transaction(lambda conn: conn.execute(sa.update(dataset_certificates).where(
            dataset_certificates.c.asset_id == asset_id).values(**values, updated_at=time.time())))

    async def status(self, request: web.Request) -> web.Response:
        asset_id = request.match_info["id"]
        _, row = await self._asset(asset_id)
        if row is None:
            raise RegistrationError(404, f"asset {asset_id[:200]} has no registration request")
        return web.json_response({"assetId": asset_id, "request": int(row["request_id"]), "status": row["status"],
                                  "sha256": row["sha256"], "certified": row["bundle"] is not None})

    async def certificate(self, request: web.Request) -> web.Response:
        asset_id = request.match_info["id"]
        _, row = await self._asset(asset_id)
        if row is None or not row["bundle"]:
            raise RegistrationError(404, f"asset {asset_id[:200]} has no certificate")
        return web.json_response(row["bundle"])
