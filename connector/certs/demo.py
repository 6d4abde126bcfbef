"""The demo's certificate step (`connector demo`, issue 14 item 6): Pearl River registers its
dataset, the station's operator approves it, the station logs the certificate at the clearing house, and
Harbour Lab verifies the certificate its catalog read carries, offline, against the bytes."""
from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import orjson

from .certificate import CATALOG_PROPERTY, CertificateError, verify_bundle


async def certificate_story(*, http: aiohttp.ClientSession, call: Callable[..., Awaitable[Any]], provider: Any,
                            provider_url: str, consumer: Any, consumer_url: str, to_provider: dict, asset_id: str,
                            data_file: Path, station_url: str, admin_token: str, ch_key: str,
                            step: Callable[[str], None], provider_name: str, consumer_name: str) -> dict:
    request = await call(provider, provider_url, "POST", f"/assets/{asset_id}/registration")
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with http.post(f"{station_url}/admin/certificates/{request['request']}/approve", json={},
                         headers=admin) as resp:
        approved = resp.status == 200
    done = await call(provider, provider_url, "POST", f"/assets/{asset_id}/registration/refresh")
    for _ in range(120):  # the station logs the certificate itself, at once unless the log is away
        if done.get("status") != "logging":
            break
        await asyncio.sleep(0.25)
        done = await call(provider, provider_url, "POST", f"/assets/{asset_id}/registration/refresh")
    step(f"{provider_name} registered {asset_id} (sha256 {request['sha256'][:16]}...); the station's operator "
         f"approved it: certificate {done.get('serial')}, logged at the clearing house by the station")
    cat = await call(consumer, consumer_url, "POST", "/catalog/request", to_provider)
    advertised = next((d.get(CATALOG_PROPERTY) for d in cat["catalog"].get("dataset", []) if d["@id"] == asset_id),
                      None)
    async with http.get(f"{station_url}/jwks.json") as resp:
        jwks = orjson.loads(await resp.read())
    async with http.get(f"{station_url}/certificates/revocations") as resp:
        revocations = (await resp.read()).decode()
    try:
        if not isinstance(advertised, dict):
            raise CertificateError("the catalog does not carry a certificate for the dataset")
        verified = verify_bundle(advertised.get("@value"), station_jwks=jwks, clearinghouse_key=ch_key,
                                 revocations=revocations, owner=provider.participant_id, dataset_id=asset_id,
                                 data_sha256=hashlib.sha256(data_file.read_bytes()).hexdigest(),
                                 at=datetime.now(timezone.utc))
        why, ok = (f"verified offline: station signature, inclusion at index {verified.leaf_index}, not revoked, "
                   "the bytes match"), True
    except CertificateError as exc:
        why, ok = f"REFUSED: {exc}", False
    step(f"{consumer_name} read {asset_id}'s registration certificate in the catalog: {why}")
    return {"serial": done.get("serial"), "approved": approved, "verified": ok, "reason": why,
            "ok": approved and done.get("status") == "approved" and ok}
