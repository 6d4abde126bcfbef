"""Consumer: the push receiver (token, retention duty recorded before the first byte), the delete
duties carried out when due, and the management API's view of a transfer's data."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection

from ...bodies import BodyTooLarge, read_limited
from ...policy import Context, Request
from ...protocol.errors import echo
from ...protocol.messages import endpoint_property
from ...protocol.negotiation import Role
from ...protocol.transfer import TransferState
from ...store.tables import agreements, received_data, transfers
from ..destinations import forbidden
from ..transfers import PUSH

from .common import BROKE_OFF, CHUNK, HTTP_ENDPOINT_TYPE, ByteMeter, Json, abort, log
from .tokens import PUSH_TOKEN_PLACEHOLDER, _b64


class Receiver:
    def push_address(self, transfer_id: str, purpose: str | None) -> Json:
        """Where the provider should push to: this node's receiver, with a one-transfer token
        (kept as a placeholder: see PUSH_TOKEN_PLACEHOLDER)."""
        token = PUSH_TOKEN_PLACEHOLDER + _b64(os.urandom(16))
        props = [{"@type": "EndpointProperty", "name": "authorization", "value": token},
                 {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]
        if purpose:
            props.append({"@type": "EndpointProperty", "name": "purpose", "value": purpose})
        return {"@type": "DataAddress", "endpointType": HTTP_ENDPOINT_TYPE,
                "endpoint": f"{self.node.settings.node.public_url.rstrip('/')}/push/{transfer_id}",
                "endpointProperties": props}

    async def receive_push(self, request: web.Request) -> web.Response:
        transfer_id = request.match_info["tid"]
        row = await self.node.transfers.get(transfer_id)
        expected = endpoint_property((row or {}).get("data_address"), "authorization") if row else None
        if expected and expected.startswith(PUSH_TOKEN_PLACEHOLDER):
            expected = self._derived_token("PUSH", transfer_id, expected[len(PUSH_TOKEN_PLACEHOLDER):])
        given = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if row is None or row["role"] != Role.CONSUMER.value or not expected \
                or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("push to transfer %s refused (401): unknown transfer or wrong token",
                        echo(transfer_id, 100))
            return web.json_response({"error": "unknown transfer or wrong token"}, status=401)
        if row["state"] not in (TransferState.REQUESTED.value, TransferState.STARTED.value):
            log.warning("push to transfer %s refused (409): the transfer is %s", transfer_id, row["state"])
            return web.json_response({"error": f"the transfer is {row['state']}"}, status=409)
        # The retention duty first: no byte is written before its delete deadline is known and recorded,
        # so neither an exception here nor a crash while writing leaves data with no deadline.
        try:
            delete_by = await self._delete_deadline(row["agreement_id"])
        except Exception as exc:  # noqa: BLE001 - fail closed: nothing is kept
            log.exception("transfer %s: the agreement's retention duty could not be evaluated", transfer_id)
            return web.json_response({"error": "the agreement's retention duty could not be evaluated "
                                      f"({type(exc).__name__}): nothing was stored"}, status=503)
        self.received_dir.mkdir(mode=0o700, exist_ok=True)
        target = self.received_dir / hashlib.sha256(transfer_id.encode()).hexdigest()
        part = target.with_suffix(".part")

        def record(conn: Connection, size: int | None) -> None:
            conn.execute(sa.delete(received_data).where(received_data.c.transfer_id == transfer_id))
            conn.execute(received_data.insert(), {
                "transfer_id": transfer_id, "agreement_id": row["agreement_id"], "path": str(target),
                "bytes": size or 0, "content_type": request.headers.get("Content-Type"), "received_at": self.clock.now(),
                "delete_by": delete_by, "deleted_at": None})

        await self.node.db.transaction(record, None)  # the deadline is on record before the first byte
        size = 0
        meter = ByteMeter(self.node.db, self.clock, transfer_id)
        try:
            with open(part, "wb") as fh:
                async for chunk in request.content.iter_chunked(CHUNK):
                    fh.write(chunk)
                    size += len(chunk)
                    await meter.add(len(chunk))
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            await meter.close()
        await self.node.db.transaction(record, size)
        self.node.metrics.data_bytes("received", size)
        return web.json_response({"received": size}, status=201)

    async def _delete_deadline(self, agreement_id: str) -> float | None:
        """The consumer's own reading of its agreement: the earliest delete duty's deadline."""
        agreement = await self.node.db.read(lambda conn: conn.execute(
            sa.select(agreements).where(agreements.c.id == agreement_id)).mappings().first())
        if agreement is None:
            return None
        policy = self.policies.compile(agreement["policy"])
        at = datetime.fromtimestamp(agreement["created_at"], timezone.utc)
        decision = policy.evaluate(Request(action="use", target=agreement["asset_id"],
                                           assignee=agreement["consumer_id"]),
                                   Context(now=datetime.fromtimestamp(self.clock.now(), timezone.utc), agreement_time=at, use_count=0,
                                           deferred=frozenset(Context.__dataclass_fields__) - {"now", "agreement_time"}))
        deadlines = [d.deadline.timestamp() for d in decision.duties if d.kind == "delete" and d.deadline]
        return min(deadlines) if deadlines else None

    async def delete_overdue(self) -> int:
        """Carry out delete duties that are due; returns how many datasets were removed."""
        now = self.clock.now()
        due = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(
            sa.select(received_data).where(received_data.c.deleted_at.is_(None), received_data.c.delete_by <= now)
        ).mappings()])
        for item in due:
            try:
                Path(item["path"]).unlink(missing_ok=True)
                Path(item["path"]).with_suffix(".part").unlink(missing_ok=True)  # a write cut by a crash
            except OSError as exc:
                log.error("could not delete %s for transfer %s: %s", item["path"], item["transfer_id"], exc)
                continue
            await self.node.db.transaction(lambda conn, tid=item["transfer_id"]: conn.execute(
                sa.update(received_data).where(received_data.c.transfer_id == tid).values(deleted_at=self.clock.now())))
            log.info("deleted the data of transfer %s as its agreement requires", item["transfer_id"])
        return len(due)

    async def delete_loop(self, every: float = 1.0) -> None:
        while True:
            try:
                await self.delete_overdue()
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("delete duty round failed")
            await asyncio.sleep(every)

    async def consumer_data(self, request: web.Request, row: Json) -> web.StreamResponse:
        """Management: the data of a transfer, pulled through now or as it was pushed."""
        if row["format"] == PUSH:
            stored = await self.node.db.read(lambda conn: conn.execute(
                sa.select(received_data).where(received_data.c.transfer_id == row["id"])).mappings().first())
            if stored is None:
                return web.json_response({"error": "nothing has been received for this transfer"}, status=404)
            if stored["deleted_at"] is not None:
                return web.json_response({"error": "the data was deleted as the agreement requires",
                                          "deletedAt": stored["deleted_at"]}, status=410)
            return web.FileResponse(stored["path"], headers={"Content-Type": stored["content_type"] or
                                                             "application/octet-stream"})
        if row["state"] != TransferState.STARTED.value:
            return web.json_response({"error": f"the transfer is {row['state']}, not STARTED"}, status=409)
        address = row["data_address"] or {}
        # Eclipse EDC gives the endpoint only as an endpointProperty (named .../edc/v0.0.1/ns/endpoint)
        endpoint = address.get("endpoint") or endpoint_property(address, "endpoint")
        token = endpoint_property(address, "authorization")
        if not endpoint or not token:
            return web.json_response({"error": "the provider gave no endpoint for this transfer"}, status=409)
        # The token verbatim, as EDC's data plane expects it (it cannot decode "Bearer ..."); ours takes both.
        headers = {"Authorization": token}
        purpose = request.query.get("purpose")
        if purpose:
            headers["X-Usage-Purpose"] = purpose
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
        try:
            resp = await self.node.session.get(endpoint, headers=headers, timeout=timeout, allow_redirects=False)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:  # our operator may see the detail
            why = "refused: not a public address ([dsp] allowed_destinations)" if forbidden(exc) \
                else f"{type(exc).__name__} {exc}"[:300]
            return web.json_response({"error": f"the provider's data endpoint could not be reached: {why}"},
                                     status=502)
        async with resp:
            if resp.status != 200:
                try:
                    body = await read_limited(resp, 64 * 1024)
                except BodyTooLarge:
                    body = b'{"error": "the provider refused the access (its answer was too long to relay)"}'
                return web.Response(body=body, status=resp.status, content_type="application/json")
            response = web.StreamResponse(headers={"Content-Type": resp.headers.get("Content-Type",
                                                                                    "application/octet-stream")})
            response.enable_chunked_encoding()
            await response.prepare(request)
            meter = ByteMeter(self.node.db, self.clock, row["id"])
            try:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    await response.write(chunk)
                    await meter.add(len(chunk))
                await response.write_eof()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                detail = f"{BROKE_OFF}{type(exc).__name__} {exc}"[:2000]
                await self.node.db.transaction(lambda conn: conn.execute(sa.update(transfers).where(
                    transfers.c.id == row["id"]).values(error=detail)))
                abort(request)  # the caller must not mistake a truncated stream for the data
            finally:
                await meter.close()
            return response
