"""The station's console at /console/ of `connector station run`: participants (status,
jurisdiction, certificate expiry), enrolment from an uploaded CSR, revocation, and the registry.

Signed in with the station's own local accounts (`connector station user add DIR NAME`). Every
action is the station's admin handler itself (enrol, list, revoke, registry search), called in
process with the admin token: the same rules and the same errors as a program using /admin."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from ..identity.pki import CertificateError, load_certificate
from . import i18n
from .result import ApiResult
from .auth import Accounts
from .service import account_tables, call_admin, enabled, ready_accounts, service_opener, user_app
from .shell import PREFIX, SERVICE_NOT_ALLOWED, Route, Shell

ACCOUNTS_PREFIX = "station"
CSR_LIMIT = 64 * 1024
#: the station's error, by the field it names first ("name: ...", "csr: ..."), for the message to stand next to it
FIELDS = ("name", "jurisdiction", "csr", "connectorUrl")


def mount(app: web.Application, station: Any) -> None:
    """The hook of the station's make_app: the console unless CONNECTOR_CONSOLE_ENABLED=false."""
    if enabled():
        StationConsole(station).mount(app)


class StationConsole(Shell):
    NOT_ALLOWED = SERVICE_NOT_ALLOWED

    def __init__(self, station: Any) -> None:
        from ..station.app import ApiError
        from ..station.config import read_admin_token

        _, users, sessions = account_tables(ACCOUNTS_PREFIX)
        super().__init__(Accounts(station.db, users, sessions),
                         secure_cookies=station.settings.public_url.startswith("https://"))
        self.station = station
        self._error = ApiError
        self._token = read_admin_token(station.settings.directory)

    def mount(self, app: web.Application) -> None:
        super().mount(app)

        async def tables(_app: web.Application) -> None:  # after the station's own start (cleanup_ctx)
            await ready_accounts(self.station.db, ACCOUNTS_PREFIX)
        app.on_startup.append(tables)

    def routes(self) -> list[Route]:
        return [("GET", "/", self.participants, "viewer"),
                ("POST", "/participants", self.enrol, "operator"),
                ("POST", "/participants/{pid}/revoke", self.revoke, "operator"),
                ("GET", "/registry", self.registry, "viewer")]

    def base_context(self) -> dict[str, Any]:
        return {"node_name": self.station.settings.name,
                "nav": [("/", i18n.gettext("Participants")), ("/registry", i18n.gettext("Registry"))],
                "footer": i18n.gettext("Station authority") + ": " + self.station.settings.issuer}

    async def _admin(self, handler: Any, method: str, path: str, body: Any = None, **kw: Any) -> ApiResult:
        return await call_admin(handler, self._token, self._error, method, path, body, **kw)

    # ---------------------------------------------------------- participants
    async def participants(self, request: web.Request, *, form: dict[str, str] | None = None, error: str = "",
                           error_field: str = "", status: int = 200, enrolled: str = "") -> web.Response:
        wanted = request.query.get("status", "")
        query = {"status": wanted} if wanted in ("active", "revoked") else {}
        result = await self._admin(self.station.list_participants, "GET", "/admin/participants", query=query)
        rows = [dict(r, certificateExpires=_expiry(r.get("certificate"))) for r in (result.data or [])]
        return self.page(request, "station_participants.html", {
            "rows": rows, "status": query.get("status", ""), "form": form or {}, "error": error,
            "error_field": error_field, "enrolled": enrolled or request.query.get("enrolled", "")}, status=status)

    async def enrol(self, request: web.Request) -> web.StreamResponse:
        raw = await request.post()
        form = {k: str(v)[:2000] for k, v in raw.items() if k not in ("csrf", "csr_file", "csr")}
        csr = ""
        upload = raw.get("csr_file")
        if isinstance(upload, web.FileField):
            csr = upload.file.read(CSR_LIMIT + 1).decode("utf-8", "replace")
        if not csr.strip():
            csr = str(raw.get("csr", ""))[:CSR_LIMIT + 1]
        if len(csr) > CSR_LIMIT:
            return await self.participants(request, form=form, status=400, error_field="csr", error=i18n.gettext(
                "The certificate signing request is over 64 KiB."))
        body: dict[str, Any] = {"name": form.get("name", ""), "jurisdiction": form.get("jurisdiction", "").strip(),
                                "csr": csr}
        if form.get("connectorUrl", "").strip():
            body["connectorUrl"] = form["connectorUrl"].strip()
        result = await self._admin(self.station.enrol, "POST", "/admin/participants", body)
        if not result.ok:
            head = result.error.split(":", 1)[0] if result.error else ""
            return await self.participants(request, form=form, error=result.error, status=result.status,
                                           error_field=head if head in FIELDS else "csr")
        raise web.HTTPSeeOther(PREFIX + "/?" + urlencode({"enrolled": result.data["participantId"]}))

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        raw = await request.post()
        reason = str(raw.get("reason", "")).strip()
        pid = request.match_info["pid"]
        result = await self._admin(self.station.revoke, "POST", f"/admin/participants/{quote(pid, safe='')}/revoke",
                                   {"reason": reason[:1001]} if reason else None, pid=pid)
        if not result.ok:
            return self.page(request, "refused.html", {"status": result.status, "error": result.error, "reasons": [],
                                                       "back": PREFIX + "/"}, status=result.status)
        raise web.HTTPSeeOther(PREFIX + "/?status=revoked")

    # -------------------------------------------------------------- registry
    async def registry(self, request: web.Request) -> web.Response:
        keys = ("q", "jurisdiction", "theme", "purpose", "usableBy")
        query = {k: request.query.get(k, "").strip()[:500] for k in keys}
        asked = {k: v for k, v in query.items() if v}
        result = await self._admin(self.station.search, "GET", "/registry/search", query=asked)
        return self.page(request, "station_registry.html", {
            "query": query, "results": (result.data or {}).get("results", []) if result.ok else [],
            "error": "" if result.ok else result.error}, status=200 if result.ok else result.status)


def _expiry(pem: Any) -> str | None:
    """The certificate's notAfter (ISO 8601), or None if it cannot be read."""
    if not isinstance(pem, str):
        return None
    try:
        cert = load_certificate(pem)
    except (CertificateError, ValueError):
        return None
    return cert.not_valid_after_utc.astimezone(dt.timezone.utc).isoformat()


def _load(directory: Path) -> Any:
    from ..config import ConfigError
    from ..station import config as station_config

    try:
        return station_config.load(directory)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _open_db(settings: Any) -> Any:
    from ..identity.keys import private_database_file
    from ..store.db import Database

    url = settings.database_url
    if url.startswith("sqlite+aiosqlite:///"):
        private_database_file(Path(url.split(":///", 1)[1]))  # 0600, as the station makes it
    return Database(url)


users_app = user_app(what="station", open_service=service_opener(ACCOUNTS_PREFIX, _load, _open_db))
