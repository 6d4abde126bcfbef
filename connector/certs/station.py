"""The station's side of dataset registration certificates.

Routes (added to the station's app by `CertificateRegistry.routes`):

* ``POST /certificates/requests`` (a participant's DAT): ask for a certificate (datasetId, sha256,
  title, categories, optionally replaces: the serial of the certificate of the previous version);
  201 with the request's serial, status ``pending``.
* ``GET /certificates/requests/{serial}`` (the requesting participant's DAT, or the admin token):
  its status, and the certificate once approved.
* ``GET /admin/certificates?status=`` (admin): the requests and certificates.
* ``POST /admin/certificates/{serial}/approve`` | ``/reject`` | ``/revoke`` (admin; reject and
  revoke take ``{"reason": "..."}``): the operator's review and revocation.
* ``GET /certificates/revocations`` (public): the signed list of revoked certificates, numbered, with
  its issue and next-update times. A new list is issued at each revocation and once half of the
  current one's lifetime has passed, so the list served is never near its next update.

The certificate is a JWS signed with the station's active token-signing key (its ``/jwks.json``).
Every refusal leaves the state as it was.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from ..protocol.errors import echo
from ..station.store import metadata
from .certificate import REVOCATIONS_TYP, CertificateError, certificate_claims, check_request, sign
from . import station_log

log = logging.getLogger("connector.station.certificates")
Json = dict[str, Any]
STATUSES = ("pending", "approved", "rejected", "revoked", "superseded")

registrations = sa.Table(
    "station_dataset_registrations", metadata,
    sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("participant_id", sa.String(200), nullable=False, index=True),
    sa.Column("dataset_id", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("replaces", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("certificate", sa.Text),
    sa.Column("reason", sa.String(1000)),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("reviewed_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
)


revocation_lists = sa.Table(
    "station_revocation_lists", metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("next_update", sa.Float, nullable=False),
    sa.Column("token", sa.Text, nullable=False),
)
#: a revocation list's lifetime (issuedAt to nextUpdate): a verifier refuses it afterwards
REVOCATIONS_VALID_SECONDS = 24 * 3600
_NEWEST_LIST = sa.select(revocation_lists).order_by(revocation_lists.c.number.desc()).limit(1)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def view(row: Json) -> Json:
    return {"serial": row["serial"], "participantId": row["participant_id"], "datasetId": row["dataset_id"],
            "sha256": row["sha256"], "title": row["title"], "categories": list(row["categories"]),
            "replaces": row["replaces"], "status": row["status"], "reason": row["reason"],
            "requestedAt": _iso(row["requested_at"]), "reviewedAt": _iso(row["reviewed_at"]),
            "revokedAt": _iso(row["revoked_at"]), "certificate": row["certificate"]}


class CertificateRegistry:
    def __init__(self, station: Any) -> None:
        self.station = station

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/certificates/requests", self.request),
            web.get("/certificates/requests/{serial}", self.get_request),
            web.get("/certificates/revocations", self.revocations),
            web.get("/admin/certificates", self.list),
            web.get("/admin/certificates/log", self.log_entries),
            web.post("/admin/certificates/{serial}/approve", self.approve),
            web.post("/admin/certificates/{serial}/reject", self.reject),
            web.post("/admin/certificates/{serial}/revoke", self.revoke),
        ]

    # ------------------------------------------------------------ helpers
    def _error(self, status: int, message: str, code: str = "Refused") -> Exception:
        from ..station.app import ApiError

        return ApiError(status, message, code)

    async def _body(self, request: web.Request, *, allow_empty: bool = False) -> Json:
        from ..station.app import _json_body

        return await _json_body(request, 64 * 1024, allow_empty=allow_empty)

    async def _row(self, serial_text: str) -> Json:
        if not serial_text.isdigit() or len(serial_text) > 18:
            raise self._error(404, f"no certificate request {echo(serial_text[:200])}", "NotFound")
        row = await self.station.db.read(lambda conn: conn.execute(
            sa.select(registrations).where(registrations.c.serial == int(serial_text))).mappings().first())
        if row is None:
            raise self._error(404, f"no certificate request {int(serial_text)}", "NotFound")
        return dict(row)

    async def _active_participant(self, request: web.Request) -> str:
        caller = await self.station._caller(request)
        record = self.station.participants.get(caller.participant_id)
        if record is None or record["status"] != "active":
            raise self._error(401, f"participant {echo(caller.participant_id, quote=False)} is not active",
                              "Unauthenticated")
        return caller.participant_id

    def _reason(self, doc: Json) -> str | None:
        from ..station.app import _plain_text

        if set(doc) - {"reason"}:
            raise self._error(400, f"unknown field {sorted(set(doc) - {'reason'})[0][:100]!r} (known: reason)",
                              "BadRequest")
        reason = doc.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise self._error(400, "reason must be a string of at most 1000 characters", "BadRequest")
        if reason is not None:
            _plain_text("reason", reason)
        return reason

    # ------------------------------------------------------------ participants
    async def request(self, request: web.Request) -> web.Response:
        owner = await self._active_participant(request)
        try:
            req = check_request(await self._body(request))
        except CertificateError as exc:
            raise self._error(400, str(exc), "BadRequest") from None
        now = time.time()

        def tx(conn: sa.Connection) -> Json:
            if req["replaces"] is not None:
                old = conn.execute(sa.select(registrations).where(
                    registrations.c.serial == req["replaces"])).mappings().first()
                if old is None or old["status"] not in ("approved", "superseded") or not old["certificate"]:
                    raise self._error(404, f"replaces: no issued certificate {req['replaces']}", "NotFound")
                if old["participant_id"] != owner:
                    raise self._error(403, f"replaces: certificate {req['replaces']} is for another participant's "
                                           "dataset", "NotTheOwner")
                if old["dataset_id"] != req["datasetId"]:
                    raise self._error(409, f"replaces: certificate {req['replaces']} is for dataset "
                                           f"{old['dataset_id'][:100]}, not {req['datasetId'][:100]}", "Conflict")
            values = {"participant_id": owner, "dataset_id": req["datasetId"], "sha256": req["sha256"],
                      "title": req["title"], "categories": req["categories"], "replaces": req["replaces"],
                      "status": "pending", "requested_at": now}
            serial = conn.execute(sa.insert(registrations).values(**values).returning(registrations.c.serial)).scalar_one()
            return {**values, "serial": serial, "certificate": None, "reason": None, "reviewed_at": None,
                    "revoked_at": None}

        row = await self.station.db.transaction(tx)
        log.info("certificate request %d from %s for dataset %s", row["serial"], owner, row["dataset_id"][:100])
        return web.json_response(view(row), status=201)

    async def get_request(self, request: web.Request) -> web.Response:
        caller = await self.station._caller(request, admin_ok=True)
        row = await self._row(request.match_info["serial"])
        if caller.participant_id != "station-admin" and row["participant_id"] != caller.participant_id:
            raise self._error(404, f"no certificate request {row['serial']}", "NotFound")  # not another's
        out = view(row)
        if row["certificate"]:  # the station's log entry and its receipt, once the clearing house has it
            outbox = station_log.log_outbox
            logged = await self.station.db.read(lambda conn: conn.execute(sa.select(outbox).where(
                outbox.c.serial == row["serial"])).mappings().first())
            out["logged"] = bool(logged and logged["state"] == "sent")
            if out["logged"]:
                out["logEntry"], out["receipt"] = logged["jws"], logged["receipt"]
        return web.json_response(out)

    async def log_entries(self, request: web.Request) -> web.Response:
        """The station's certificate log outbox (admin): ?state=pending|sent|dead; dead letters show here."""
        self.station._admin_auth(request)
        state = request.query.get("state")
        if state is not None and state not in station_log.STATES:
            raise self._error(400, f"state must be one of {', '.join(station_log.STATES)}", "BadRequest")
        outbox = station_log.log_outbox
        query = sa.select(outbox).order_by(outbox.c.id.desc()).limit(1000)
        if state is not None:
            query = query.where(outbox.c.state == state)
        rows, counts = await self.station.db.read(lambda conn: (
            [dict(r) for r in conn.execute(query).mappings()], station_log.counts(conn)))
        return web.json_response({"submitter": self.station.log_identity.participant_id, "counts": counts,
                                  "entries": [station_log.view(r) for r in rows]})

    def _issue_revocations(self, conn: sa.Connection, now: float) -> str:
        """A new signed list, numbered one above the newest, in the caller's transaction. Two replicas
        issuing at once collide on the number: the loser reads the winner's and takes the next."""
        for attempt in range(5):
            newest = conn.execute(_NEWEST_LIST).mappings().first()
            try:
                with conn.begin_nested():
                    return self._new_list(conn, now, dict(newest) if newest else None)
            except sa.exc.IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _new_list(self, conn: sa.Connection, now: float, newest: Json | None) -> str:
        rows = conn.execute(sa.select(registrations.c.serial, registrations.c.revoked_at, registrations.c.reason)
                            .where(registrations.c.status == "revoked").order_by(registrations.c.serial)).all()
        st = self.station
        number = (newest["number"] if newest else 0) + 1
        next_update = now + REVOCATIONS_VALID_SECONDS
        claims = {"iss": st.settings.issuer, "number": number, "issuedAt": _iso(now), "nextUpdate": _iso(next_update),
                  "revoked": [{"serial": s, "revokedAt": _iso(at), "reason": reason} for s, at, reason in rows]}
        token = sign(claims, st.active_key, st.active_kid, st.public_keys[st.active_kid][1], REVOCATIONS_TYP)
        conn.execute(sa.insert(revocation_lists).values(number=number, issued_at=now, next_update=next_update,
                                                        token=token))
        return token

    async def revocations(self, request: web.Request) -> web.Response:
        def current(conn: sa.Connection) -> str:
            now = time.time()
            newest = conn.execute(_NEWEST_LIST).mappings().first()
            if newest is not None and now < newest["issued_at"] + REVOCATIONS_VALID_SECONDS / 2:
                return newest["token"]
            return self._issue_revocations(conn, now)

        token = await self.station.db.transaction(current)
        return web.Response(text=token, content_type="application/jwt", headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------ operator
    async def list(self, request: web.Request) -> web.Response:
        self.station._admin_auth(request)
        status = request.query.get("status")
        if status is not None and status not in STATUSES:
            raise self._error(400, f"status must be one of {', '.join(STATUSES)}", "BadRequest")
        query = sa.select(registrations).order_by(registrations.c.serial)
        if status is not None:
            query = query.where(registrations.c.status == status)
        rows = await self.station.db.read(lambda conn: [dict(r) for r in conn.execute(query.limit(1000)).mappings()])
        return web.json_response([view(r) for r in rows])

    async def _review(self, request: web.Request, fn: Any) -> web.Response:
        self.station._admin_auth(request)
        serial_text = request.match_info["serial"]
        doc = await self._body(request, allow_empty=True)
        reason = self._reason(doc)
        await self._row(serial_text)  # 404 before anything else
        now = time.time()

        def tx(conn: sa.Connection) -> Json:
            row = dict(conn.execute(sa.select(registrations).where(
                registrations.c.serial == int(serial_text)).with_for_update()).mappings().one())
            changes = fn(conn, row, reason, now)
            conn.execute(sa.update(registrations).where(registrations.c.serial == row["serial"]).values(**changes))
            return {**row, **changes}

        row = await self.station.db.transaction(tx)
        return web.json_response(view(row))

    async def approve(self, request: web.Request) -> web.Response:
        st = self.station

        def issue(conn: sa.Connection, row: Json, reason: str | None, now: float) -> Json:
            if row["status"] != "pending":
                raise self._error(409, f"certificate request {row['serial']} is {row['status']}, not pending", "Conflict")
            owner = st.participants.get(row["participant_id"])
            if owner is None or owner["status"] != "active":
                raise self._error(409, f"the requesting participant {row['participant_id'][:100]} is not active",
                                  "Conflict")
            claims = certificate_claims(issuer=st.settings.issuer, serial=row["serial"], owner=row["participant_id"],
                                        issued_at=_iso(now), logged_by=st.log_identity.participant_id, request={
                                            "datasetId": row["dataset_id"], "sha256": row["sha256"],
                                            "title": row["title"], "categories": row["categories"],
                                            "replaces": row["replaces"]})
            token = sign(claims, st.active_key, st.active_kid, st.public_keys[st.active_kid][1])
            # logged by the station, durably: the entry commits with the approval, the sender sends it
            station_log.enqueue(conn, row["serial"], station_log.signed_entry(
                st.log_identity, token, row["participant_id"], now), now)
            if row["replaces"] is not None:
                conn.execute(sa.update(registrations).where(sa.and_(
                    registrations.c.serial == row["replaces"], registrations.c.status == "approved"))
                    .values(status="superseded"))
            log.info("issued dataset certificate %d (%s of %s)", row["serial"], row["dataset_id"][:100],
                     row["participant_id"])
            return {"status": "approved", "certificate": token, "reviewed_at": now, "reason": reason}

        response = await self._review(request, issue)
        st.log_sender.wake.set()
        return response

    async def reject(self, request: web.Request) -> web.Response:
        def refuse(conn: sa.Connection, row: Json, reason: str | None, now: float) -> Json:
            if row["status"] != "pending":
                raise self._error(409, f"certificate request {row['serial']} is {row['status']}, not pending", "Conflict")
            return {"status": "rejected", "reviewed_at": now, "reason": reason}

        return await self._review(request, refuse)

    async def revoke(self, request: web.Request) -> web.Response:
        def revoke(conn: sa.Connection, row: Json, reason: str | None, now: float) -> Json:
            if row["status"] not in ("approved", "superseded"):
                raise self._error(409, f"certificate {row['serial']} is {row['status']}: only an issued certificate "
                                       "can be revoked", "Conflict")
            log.warning("revoked dataset certificate %d (%s of %s)", row["serial"], row["dataset_id"][:100],
                        row["participant_id"])
            conn.execute(sa.update(registrations).where(registrations.c.serial == row["serial"])
                         .values(status="revoked", revoked_at=now, reason=reason))
            # a new list at once: the revocation is in every list served from now on
            self._issue_revocations(conn, now)
            return {"status": "revoked", "revoked_at": now, "reason": reason}

        return await self._review(request, revoke)
