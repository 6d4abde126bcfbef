"""The console's pages. Reading is for every signed-in role; acting needs `operator` (or
`admin`) and the session's CSRF token; each action is the management API's own handler
(api.py), whose refusal is shown next to the form in the viewer's language."""
from __future__ import annotations

import asyncio
import logging
import re
import stat
import time
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode

import aiohttp
import aiohttp_jinja2
import jinja2
import orjson
import sqlalchemy as sa
from yarl import URL
from aiohttp import web

from ..clearinghouse.verify import LogVerificationError, Receipt, verify_receipt
from ..node.dataplane.common import BROKE_OFF
from ..node.durable import send_failure
from ..node.transfers import SUSPENSION
from ..node.usage import PolicyCache, check_policy
from ..policy import Context, PolicyError
from ..policy import Request as PolicyRequest
from ..policy.explain import duty_msg, msg_from_json
from ..protocol.errors import clip
from ..protocol.ids import id_problem
from ..protocol.negotiation import State
from ..store.tables import access_log, negotiations, outbox, transfers
from . import auth, i18n, policy_form
from .api import Api, ApiResult
from .registry import registry_context

from .shell import N_, PREFIX, SESSION_KEY, Handler, Route, Shell

log = logging.getLogger("connector.console")
PAGE = 100  # rows a list page shows
SSE_SECONDS = 300  # an event stream ends after this; the browser reconnects
BYTES_POLL = 1.0  # a transfer's page reads its byte count this often (the data plane writes it about as often)


class Console(Shell):
    def __init__(self, node: Any) -> None:
        super().__init__(auth.Accounts(node.db), secure_cookies=node.settings.node.public_url.startswith("https://"))
        self.node = node
        self.api = Api(node)
        self.policies = PolicyCache(size=256)
        self._reach: dict[str, tuple[float, bool]] = {}

    # ------------------------------------------------------------------ wiring
    def base_context(self) -> dict[str, Any]:
        return {"node_name": self.node.settings.node.name, "participant_id": self.node.participant_id,
                "state_name": state_name}

    def setup_templates(self, env: jinja2.Environment) -> None:
        env.filters["sentences"] = lambda body: self.sentences(body)

    def routes(self) -> list[Route]:
        viewer, operator = "viewer", "operator"
        routes = [
            ("GET", "/", self.dashboard, viewer), ("GET", "/feed", self.feed_events, viewer),
            ("GET", "/catalog", self.catalog, viewer),
            ("POST", "/negotiations", self.negotiate, operator),
            ("GET", "/negotiations", self.negotiations, viewer),
            ("GET", "/negotiations/{id}", self.negotiation, viewer),
            ("GET", "/negotiations/{id}/events", self.negotiation_events, viewer),
            ("POST", "/negotiations/{id}/accept", self.negotiation_action("accept"), operator),
            ("POST", "/negotiations/{id}/terminate", self.negotiation_action("terminate"), operator),
            ("GET", "/transfers", self.transfers, viewer),
            ("POST", "/transfers", self.start_transfer, operator),
            ("GET", "/transfers/{id}", self.transfer, viewer),
            ("GET", "/transfers/{id}/events", self.transfer_events, viewer),
            ("POST", "/transfers/{id}/data", self.download, operator),  # a use counted: a state change
            ("POST", "/transfers/{id}/suspend", self.transfer_action("suspend"), operator),
            ("POST", "/transfers/{id}/resume", self.transfer_action("resume"), operator),
            ("POST", "/transfers/{id}/terminate", self.transfer_action("terminate"), operator),
            ("GET", "/audit/{id}", self.audit, viewer),
            ("GET", "/audit/{id}/events", self.audit_events, viewer),
            ("GET", "/assets", self.assets, viewer), ("GET", "/policies", self.policies_page, viewer),
            ("POST", "/assets", self.create_asset, operator), ("POST", "/policies", self.create_policy, operator),
            ("GET", "/assets/{id}/edit", self.edit_asset_form, operator),
            ("POST", "/assets/{id}", self.edit_asset, operator),
            ("POST", "/offers", self.create_offer, operator),
            ("GET", "/offers/new", self.offer_wizard, operator),
            ("POST", "/offers/new", self.offer_wizard_step, operator),
            ("GET", "/policies/templates/{name}", self.template_form, operator),
            ("POST", "/policies/templates/{name}", self.create_from_template, operator),
            ("GET", "/policies/{id}/explain", self.explain, viewer),
            ("POST", "/dead-letters/{id}/retry", self.retry_dead_letter, operator),
        ]
        return routes

    # ---------------------------------------------------------------- dashboard
    async def dashboard(self, request: web.Request) -> web.Response:
        return self.page(request, "dashboard.html", await self._dashboard_data())

    async def _dashboard_data(self) -> dict[str, Any]:
        def counts(conn: Any) -> dict[str, Any]:
            def by_state(table: sa.Table) -> dict[str, int]:
                return {s: n for s, n in conn.execute(sa.select(table.c.state, sa.func.count()).group_by(table.c.state))}
            accesses = {bool(p): n for p, n in conn.execute(
                sa.select(access_log.c.permitted, sa.func.count()).group_by(access_log.c.permitted))}
            dead = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "dead")).scalar()
            return {"negotiations": by_state(negotiations), "transfers": by_state(transfers),
                    "permitted": accesses.get(True, 0), "refused": accesses.get(False, 0), "dead": dead or 0}
        data = await self.node.db.read(counts)
        feed = await self._feed()
        ch = await self.api.call("GET", "/clearinghouse")
        dead = await self.api.call("GET", "/dead-letters", query={"limit": "10"})
        identity = self.node.identity
        settings = self.node.settings
        dead_letters = [{**d, "problem": send_problem(d.get("cause"))} for d in dead.data or [] if isinstance(d, dict)]
        return {"counts": data, **feed, "clearinghouse": ch.data, "dead_letters": dead_letters,
                "identity_mode": identity.mode, "self_description": self.node.self_description.status(),
                "token": self._token_status(),
                "station": await self._reachable(settings.identity_station_url) if settings.identity_station_url else None,
                "clearinghouse_reachable": await self._reachable(settings.clearinghouse_url)
                if settings.clearinghouse_url else None}

    #: a station token this close to expiry (seconds, or this share of its lifetime) is shown as a warning
    TOKEN_WARN_SECONDS = 120
    TOKEN_WARN_SHARE = 0.2

    def _token_status(self) -> dict[str, Any] | None:
        """When the node's newest station token (DAT) expires (from its claims as the station issued
        them; the token itself is never shown), and whether that is close. None: no station identity."""
        client = getattr(self.node.identity, "client", None)
        if client is None:
            return None
        claims = getattr(client, "claims", None) or {}
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)):
            return {"fetched": False}
        left = float(exp) - self.node.clock.now()
        lifetime = float(exp) - float(iat) if isinstance(iat, (int, float)) and iat < exp else None
        close = left < max(self.TOKEN_WARN_SECONDS, self.TOKEN_WARN_SHARE * lifetime if lifetime else 0)
        return {"fetched": True, "expires": float(exp), "seconds_left": int(left), "expired": left <= 0,
                "close": close}

    async def _feed(self) -> dict[str, Any]:
        recent_n = await self.api.call("GET", "/negotiations", query={"limit": "10"})
        recent_t = await self.api.call("GET", "/transfers", query={"limit": "10"})
        recent_a = await self.api.call("GET", "/access-log", query={"limit": "10"})
        return {"recent_negotiations": sorted(recent_n.data or [], key=lambda r: -r["updatedAt"]),
                "recent_transfers": recent_t.data or [],
                "recent_accesses": [{**a, "shown": access_reasons(a)} for a in recent_a.data or []]}

    async def _reachable(self, url: str) -> bool:
        """Whether a service answers its /health (cached 10 s; the answer says only yes or no)."""
        now = time.monotonic()
        cached = self._reach.get(url)
        if cached and now - cached[0] < 10:
            return cached[1]
        ok = False
        try:
            async with self.node.session.get(url.rstrip("/") + "/health",
                                             timeout=aiohttp.ClientTimeout(total=2)) as resp:
                ok = resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            ok = False
        self._reach[url] = (now, ok)
        return ok

    async def feed_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the dashboard's feed again whenever a process or access changes."""
        def marker(conn: Any) -> tuple:
            return (conn.execute(sa.select(sa.func.max(negotiations.c.updated_at))).scalar(),
                    conn.execute(sa.select(sa.func.max(transfers.c.updated_at))).scalar(),
                    conn.execute(sa.select(sa.func.max(access_log.c.id))).scalar())
        last = await self.node.db.read(marker)

        async def changed() -> str | None:
            nonlocal last
            now = await self.node.db.read(marker)
            if now == last:
                return None
            last = now
            return self._fragment(request, "_feed.html", await self._feed())
        return await self._sse(request, "feed", changed, poll=1.0)

    # ------------------------------------------------------------------ catalog
    async def catalog(self, request: web.Request) -> web.Response:
        address = request.query.get("address", "").strip()
        participant = request.query.get("participant", "").strip()
        context: dict[str, Any] = {"address": address, "participant": participant, "datasets": None, "error": "",
                                   "registry": await registry_context(self.node.settings, request.query)}
        if address:
            body = {"counterPartyAddress": address[:2048]}
            if participant:
                body["counterPartyId"] = participant[:600]
            result = await self.api.call("POST", "/catalog/request", body)
            if not result.ok:
                context["error"] = result.error
                return self.page(request, "catalog.html", context, status=result.status)
            context["datasets"] = _datasets(result.data.get("catalog") or {})
        return self.page(request, "catalog.html", context)

    def sentences(self, body: Any) -> dict[str, Any]:
        """The engine's own description of a policy, rule by rule (its requirement sentences, in the
        viewer's language), or why it cannot be read."""
        if not isinstance(body, dict):
            return {"ok": False, "rules": [], "error": i18n.gettext("no policy")}
        try:
            compiled = self.policies.compile(body)
            rules = []
            for rule in compiled.rules():
                head = {"permission": i18n.gettext("Allowed: %(actions)s"),
                        "prohibition": i18n.gettext("Prohibited: %(actions)s"),
                        "obligation": i18n.gettext("Required: %(actions)s")}.get(rule.kind, rule.kind + ": %(actions)s")
                rules.append({"head": head % {"actions": i18n.sentence(rule.describe_actions_msg())},
                              "when": [i18n.sentence(c.describe_msg()) for c in rule.constraints],
                              "duties": [i18n.sentence(duty_msg(d.static)) for d in rule.duties]})
        except (PolicyError, ValueError, TypeError, AttributeError) as exc:
            return {"ok": False, "rules": [], "error": clip(str(exc), 300)}
        return {"ok": True, "rules": rules, "error": ""}

    # ------------------------------------------------------------- negotiations
    async def negotiate(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        body = {"counterPartyAddress": str(form.get("address", ""))[:2048], "datasetId": str(form.get("dataset", "")),
                "offerId": str(form.get("offer", ""))}
        if form.get("participant"):
            body["counterPartyId"] = str(form["participant"])[:600]
        result = await self.api.call("POST", "/negotiations", body)
        if not result.ok:
            return self.refused(request, result, back=PREFIX + "/catalog?" + urlencode(
                {"address": body["counterPartyAddress"], "participant": body.get("counterPartyId", "")}))
        raise web.HTTPSeeOther(f"{PREFIX}/negotiations/{quote(result.data['id'], safe='')}")

    async def negotiations(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "")
        offset = request.query.get("offset", "0")
        offset = int(offset) if offset.isdigit() and len(offset) <= 9 else 0
        query = {"limit": str(PAGE + 1), "offset": str(offset)}
        if state in State.__members__:
            query["state"] = state
        result = await self.api.call("GET", "/negotiations", query=query)
        rows = result.data or []
        return self.page(request, "negotiations.html", {
            "rows": rows[:PAGE], "state": state if state in State.__members__ else "", "states": list(State.__members__),
            "offset": offset, "next": offset + PAGE if len(rows) > PAGE else None,
            "previous": max(offset - PAGE, 0) if offset else None})

    async def retry_dead_letter(self, request: web.Request) -> web.StreamResponse:
        result = await self.api.call("POST", "/dead-letters/{id}/retry", None, id=request.match_info["id"])
        if not result.ok:
            return self.refused(request, result, back=PREFIX + "/")
        raise web.HTTPSeeOther(PREFIX + "/")

    async def _negotiation_context(self, pid: str) -> dict[str, Any] | None:
        result = await self.api.call("GET", "/negotiations/{id}", id=pid)
        if not result.ok:
            return None
        return {"n": result.data, "timeline": await self._timeline(pid), "final": result.data["state"] in _FINAL,
                "why": termination_shown(result.data.get("termination"), result.data.get("role"))}

    async def negotiation(self, request: web.Request) -> web.Response:
        context = await self._negotiation_context(request.match_info["id"])
        if context is None:
            return self.not_found(request)
        return self.page(request, "negotiation.html", context)

    async def negotiation_events(self, request: web.Request) -> web.StreamResponse:
        pid = request.match_info["id"]
        row = await self.node.negotiations.get(pid)
        if row is None:
            return self.not_found(request)
        # the state the page shows: a change before this stream opened is sent at once
        last = request.query.get("shown") if request.query.get("shown") in State.__members__ else row["state"]

        async def changed() -> str | None:
            nonlocal last
            others = set(State.__members__) - {last}
            found = await self.node.negotiations.wait_for(pid, others, 5.0)
            if found is None or found["state"] == last:
                return None
            last = found["state"]
            context = await self._negotiation_context(pid)
            return self._fragment(request, "_negotiation_live.html", context or {})
        return await self._sse(request, "state", changed, poll=0.0)

    def negotiation_action(self, action: str) -> Handler:
        async def act(request: web.Request) -> web.StreamResponse:
            pid = request.match_info["id"]
            form = await request.post()
            body = {"reason": str(form.get("reason", ""))[:1000]} if action == "terminate" and form.get("reason") else None
            result = await self.api.call("POST", f"/negotiations/{{id}}/{action}", body, id=pid)
            back = f"{PREFIX}/negotiations/{quote(pid, safe='')}"
            if not result.ok:
                return self.refused(request, result, back=back)
            raise web.HTTPSeeOther(back)
        return act

    async def _timeline(self, pid: str) -> list[dict[str, Any]]:
        """Every message this node queued for the process (sent or not, with its last error), and
        every clearing-house receipt it keeps for it, in time order."""
        query = sa.select(outbox.c.kind, outbox.c.status, outbox.c.created_at, outbox.c.sent_at, outbox.c.last_error,
                          outbox.c.attempts).where(outbox.c.process_id == pid).order_by(outbox.c.id).limit(200)
        rows = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
        items = [{"at": r["sent_at"] or r["created_at"], "direction": "sent", "what": r["kind"].split(":")[0],
                  "status": r["status"], "error": send_problem(r["last_error"]), "receipt": None}
                 for r in rows if not r["kind"].startswith("ClearingHouseEntry")]
        if self.node.clearinghouse is not None:
            for receipt in await self.node.clearinghouse.receipts(pid):
                items.append({"at": (receipt["receipt"] or {}).get("receivedAt"), "direction": "logged",
                              "what": receipt["event"], "status": "", "error": None, "receipt": receipt["leafIndex"]})
        return sorted(items, key=lambda i: _sort_time(i["at"]))

    # ---------------------------------------------------------------- transfers
    async def transfers(self, request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
        agreements = await self.api.call("GET", "/agreements", query={"limit": "100", "order": "newest"})
        rows = await self.api.call("GET", "/transfers", query={"limit": "100"})
        return self.page(request, "transfers.html", {"agreements": agreements.data or [], "rows": rows.data or [],
                                                     "error": error}, status=status)

    async def start_transfer(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        body: dict[str, Any] = {"agreementId": str(form.get("agreement", "")),
                                "format": str(form.get("format", "HttpData-PULL"))}
        if body["format"] == "HttpData-PUSH" and form.get("purpose"):
            body["purpose"] = str(form["purpose"])[:512]
        result = await self.api.call("POST", "/transfers", body)
        if not result.ok:
            return await self.transfers(request, error=result.error, status=result.status)
        raise web.HTTPSeeOther(f"{PREFIX}/transfers/{quote(result.data['id'], safe='')}")

    async def _transfer_context(self, pid: str) -> dict[str, Any] | None:
        result = await self.api.call("GET", "/transfers/{id}", id=pid)
        if not result.ok:
            return None
        accesses = await self.api.call("GET", "/access-log",
                                       query={"agreementId": result.data["agreementId"], "limit": "50"})
        return {"t": result.data, "accesses": [{**a, "shown": access_reasons(a)} for a in accesses.data or []],
                "timeline": await self._timeline(pid),
                "why": termination_shown(result.data.get("termination"), result.data.get("role")),
                "t_error": error_shown(result.data)}

    async def transfer(self, request: web.Request) -> web.Response:
        context = await self._transfer_context(request.match_info["id"])
        if context is None:
            return self.not_found(request)
        return self.page(request, "transfer.html", context)

    async def transfer_events(self, request: web.Request) -> web.StreamResponse:
        pid = request.match_info["id"]
        row = await self.node.transfers.get(pid)
        if row is None:
            return self.not_found(request)
        from ..protocol.transfer import TransferState
        shown = request.query.get("shown")
        last = shown if shown in {s.value for s in TransferState} else row["state"]

        shown_bytes = request.query.get("bytes", "")
        last_bytes = int(shown_bytes) if shown_bytes.isdigit() and len(shown_bytes) <= 18 else -1

        async def changed() -> tuple[str, str] | None:
            """A new state: the whole live part (event `state`); else new bytes moved: only the
            count (event `bytes`), so a purpose being typed in the download form stays."""
            nonlocal last, last_bytes
            found = await self.node.transfers.wait_for(pid, {s.value for s in TransferState} - {last}, BYTES_POLL)
            if found is not None and found["state"] != last:
                last = found["state"]
                context = await self._transfer_context(pid) or {}
                last_bytes = context.get("t", {}).get("bytesMoved", last_bytes)
                return "state", self._fragment(request, "_transfer_live.html", context)
            progress = await self.api.api.transfer_progress(pid)
            if progress["bytesMoved"] == last_bytes:
                return None
            last_bytes = progress["bytesMoved"]
            return "bytes", self._fragment(request, "_transfer_bytes.html", {"t": progress})
        return await self._sse(request, "state", changed, poll=0.0)

    def transfer_action(self, action: str) -> Handler:
        async def act(request: web.Request) -> web.StreamResponse:
            pid = request.match_info["id"]
            result = await self.api.call("POST", f"/transfers/{{id}}/{action}", None, id=pid)
            back = f"{PREFIX}/transfers/{quote(pid, safe='')}"
            if not result.ok:
                return self.refused(request, result, back=back)
            raise web.HTTPSeeOther(back)
        return act

    async def download(self, request: web.Request) -> web.StreamResponse:
        """The data through the data plane, with the purpose the operator declared (the
        management API's own handler streams it; a refusal is shown with its reasons)."""
        form = await request.post()
        purpose = str(form.get("purpose", "")).strip()[:512]
        response = await self.api.stream(request, "/transfers/{id}/data",
                                         query={"purpose": purpose} if purpose else {})
        if response.prepared or response.status < 400 or not isinstance(response, web.Response):
            return response
        try:
            data = orjson.loads(response.body) if response.body else {}
        except orjson.JSONDecodeError:
            data = {}
        data = data if isinstance(data, dict) else {}
        # reasons come only from the provider's answer, relayed (the node's own refusals give an error alone)
        return self.refused(request, ApiResult(response.status, data), peer=isinstance(data.get("reasons"), list),
                            back=f"{PREFIX}/transfers/{quote(request.match_info['id'], safe='')}")

    # -------------------------------------------------------------------- audit
    #: a process with more clearing-house entries than this is verified in a live stream with its progress
    AUDIT_INLINE = 50

    async def audit(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        status = await self.api.call("GET", "/clearinghouse")
        receipts = await self.api.call("GET", "/negotiations/{id}/receipts", id=pid)
        items = receipts.data if receipts.ok and isinstance(receipts.data, list) else []
        # many entries, or the viewer asked to watch: the page comes at once and the proofs are
        # verified in /audit/{id}/events, which reports each one as it is checked
        live = request.query.get("live") == "1" or len(items) > self.AUDIT_INLINE
        return self.page(request, "audit.html", {
            "pid": pid, "ch": status.data or {}, "receipts": [] if live else [self._verified(i) for i in items],
            "live": live, "pending": len(items), "configured": bool((status.data or {}).get("configured"))})

    def _verified(self, item: dict[str, Any]) -> dict[str, Any]:
        """A receipt checked here, now, against the log's pinned key."""
        try:
            checkpoint = verify_receipt(Receipt.from_json(item["receipt"]), self.node.settings.clearinghouse_verifier_key)
            return {**item, "ok": True, "problem": "", "root": checkpoint.root_hash.hex()[:16]}
        except (LogVerificationError, KeyError, TypeError, ValueError) as exc:
            return {**item, "ok": False, "problem": clip(str(exc), 300), "root": ""}

    async def audit_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the proofs of a process verified one by one, the count so far sent as
        `progress` (at most every 0.2 s, and at the end), then the checked rows as `done`."""
        pid = request.match_info["id"]
        receipts = await self.api.call("GET", "/negotiations/{id}/receipts", id=pid)
        items = receipts.data if receipts.ok and isinstance(receipts.data, list) else []
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)

        async def send(event: str, html: str) -> None:
            data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
            await response.write(f"event: {event}\n{data}\n".encode())

        checked: list[dict[str, Any]] = []
        last = time.monotonic()
        try:
            for item in items:
                if self.stopping.is_set() or request.transport is None or request.transport.is_closing():
                    return response
                checked.append(self._verified(item))
                if time.monotonic() - last >= 0.2:
                    last = time.monotonic()
                    i18n.activate(request["locale"])
                    await send("progress", self._fragment(request, "_audit_progress.html",
                                                          {"done": len(checked), "total": len(items)}))
                await asyncio.sleep(0)  # other requests go on between two proofs
            i18n.activate(request["locale"])
            await send("progress", self._fragment(request, "_audit_progress.html",
                                                  {"done": len(checked), "total": len(items)}))
            await send("done", self._fragment(request, "_audit_rows.html", {"receipts": checked}))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    # ------------------------------------------------------ assets and policies
    #: at most this many assets of a list have their file's size read (one stat each) per page
    SIZES_PER_PAGE = 500
    #: assets a page lists (each file's size is measured as the page is made: at most this many)
    ASSET_PAGE = PAGE

    def asset_size(self, address: Any, locale: str) -> str:
        """What is known of an asset's size now, in words: a file under the data root is measured (one
        stat, at display time); an HTTP upstream's is unknown (never fetched to find out)."""
        if not isinstance(address, dict) or address.get("type") not in ("file", "http"):
            return i18n.gettext("none")
        if address["type"] == "http":
            return i18n.gettext("unknown (an HTTP upstream: not fetched to measure)")
        try:
            found = self.node.dataplane._file_path(str(address.get("path", ""))).stat()
        except (OSError, ValueError):
            return i18n.gettext("the file is missing")
        return i18n.format_bytes(found.st_size, locale) if stat.S_ISREG(found.st_mode) else i18n.gettext("the file is missing")

    async def assets(self, request: web.Request, *, form: dict[str, str] | None = None, error: str = "",
                     status: int = 200) -> web.Response:
        q = request.query.get("q", "").strip().lower()[:200]
        cursor = request.query.get("cursor", "")[:1024]
        # one page through the management API's cursor paging (a node may hold 100,000 assets)
        result, cursor = await self._cursor_page("/assets", {"limit": str(self.ASSET_PAGE), **({"q": q} if q else {})},
                                                 cursor)
        rows = result.data if result.ok and isinstance(result.data, list) else []
        sizes = {a["id"]: self.asset_size(a.get("dataAddress"), request["locale"]) for a in rows[:self.SIZES_PER_PAGE]}
        return self.page(request, "assets.html", {"rows": rows, "q": q, "form": form or {}, "sizes": sizes,
                                                  "next": _next_cursor(result.headers.get("Link", "")),
                                                  "paged": bool(cursor),
                                                  "error": _localized_error(error), "error_field": _error_field(error)},
                         status=status)

    async def _cursor_page(self, path: str, query: dict[str, str], cursor: str) -> tuple[Any, str]:
        """One page of a management listing after `cursor`, and the cursor it was read at: a cursor
        this listing did not issue gives the first page ("")."""
        result = await self.api.call("GET", path, query={**query, "cursor": cursor} if cursor else query)
        if not result.ok and cursor:
            return await self.api.call("GET", path, query=query), ""
        return result, cursor

    @staticmethod
    def _asset_form(form: dict[str, str]) -> dict[str, Any]:
        """The fields of an asset form as the API takes them (the data address only when a source is chosen)."""
        body: dict[str, Any] = {}
        source = form.get("source", "")
        if source == "file":
            body["dataAddress"] = {"type": "file", "path": form.get("location", "")}
        elif source == "http":
            body["dataAddress"] = {"type": "http", "url": form.get("location", "")}
        return body

    async def create_asset(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v)[:10_000] for k, v in (await request.post()).items() if k != "csrf"}
        body: dict[str, Any] = {"id": form.get("id", "")}
        for field in ("title", "description", "contentType"):
            if form.get(field):
                body[field] = form[field]
        body.update(self._asset_form(form))
        result = await self.api.call("POST", "/assets", body)
        if not result.ok:
            return await self.assets(request, form=form, error=result.error, status=result.status)
        raise web.HTTPSeeOther(PREFIX + "/assets")

    async def edit_asset_form(self, request: web.Request, *, form: dict[str, str] | None = None, error: str = "",
                              status: int = 200) -> web.Response:
        """An asset's title, description, content type and data address, with its size; a change is
        the management API's PATCH, whose refusal stands next to its field in the viewer's language."""
        found = await self.api.call("GET", "/assets/{id}", id=request.match_info["id"])
        if not found.ok:
            return self.not_found(request)
        asset = found.data
        if form is None:
            address = asset.get("dataAddress") or {}
            form = {"title": asset.get("title") or "", "description": asset.get("description") or "",
                    "contentType": asset.get("contentType") or "", "source": address.get("type", ""),
                    "location": address.get("path") or address.get("url") or ""}
        return self.page(request, "asset_edit.html", {
            "asset": asset, "form": form, "asset_size": self.asset_size(asset.get("dataAddress"), request["locale"]),
            "error": _localized_error(error), "error_field": _error_field(error)}, status=status)

    async def edit_asset(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v)[:10_000] for k, v in (await request.post()).items() if k != "csrf"}
        body: dict[str, Any] = {field: form.get(field, "") for field in ("title", "description", "contentType")}
        if not body["contentType"]:
            body["contentType"] = "application/octet-stream"  # as at creation
        body.update(self._asset_form(form))
        result = await self.api.call("PATCH", "/assets/{id}", body, id=request.match_info["id"])
        if result.status == 404:
            return self.not_found(request)
        if not result.ok:
            return await self.edit_asset_form(request, form=form, error=result.error, status=result.status)
        raise web.HTTPSeeOther(PREFIX + "/assets")

    async def policies_page(self, request: web.Request, *, form: dict[str, str] | None = None, error: str = "",
                            status: int = 200, error_field: str | None = None) -> web.Response:
        result = await self.api.call("GET", "/policies")
        # offers a page at a time (a node may hold 100,000), through the API's cursor paging
        offers, offers_cursor = await self._cursor_page("/offers", {"limit": str(PAGE)},
                                                        request.query.get("offers", "")[:1024])
        form = dict(form or {})
        template = request.query.get("template", "")
        if template in TEMPLATES and "odrl" not in form:
            form["odrl"] = TEMPLATES[template]
        return self.page(request, "policies.html", {
            "rows": result.data or [], "offers": offers.data if offers.ok else [], "form": form, "error": error,
            "offers_next": _next_cursor(offers.headers.get("Link", "")), "offers_paged": bool(offers_cursor),
            "error_field": error_field or _error_field(error), "templates": sorted(TEMPLATES), "template": template,
            "template_titles": {name: i18n.gettext(_text(orjson.loads(body).get("dct:title")))
                                for name, body in TEMPLATES.items()}},
            status=status)

    async def create_policy(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v)[:200_000] for k, v in (await request.post()).items() if k != "csrf"}
        try:
            policy = orjson.loads(form.get("odrl", ""))
        except orjson.JSONDecodeError as exc:
            return await self.policies_page(request, form=form, status=400,
                                            error=f"policy: {i18n.gettext('not valid JSON')} ({clip(str(exc), 100)})")
        result = await self.api.call("POST", "/policies", {"id": form.get("id", ""), "policy": policy})
        if not result.ok:
            return await self.policies_page(request, form=form, error=result.error, status=result.status)
        raise web.HTTPSeeOther(PREFIX + "/policies")

    async def template_form(self, request: web.Request, *, values: dict[str, str] | None = None,
                            policy_id: str | None = None, api_error: str = "", status: int = 200) -> web.Response:
        """A template of `policies/` as a form, one field per parameter; the filled policy checked by
        the engine as the viewer types (htmx asks again; without script, on submit), each problem
        next to its field, the valid policy shown in sentences."""
        name = request.match_info["name"]
        if name not in TEMPLATES:
            return self.not_found(request)
        template = orjson.loads(TEMPLATES[name])
        params = policy_form.parameters(template)
        if values is None:
            values = {p.name: request.query[p.name] for p in params if p.name in request.query}
            policy_id = request.query.get("id", "")
        filled = policy_form.fill(template, params, values)
        field_errors, form_errors = policy_form.problems_by_field(params, check_policy(filled))
        id_error = ""
        if api_error:
            if _error_field(api_error) == "id":
                id_error = api_error
            else:
                form_errors.append(api_error)
        elif policy_id and id_problem(policy_id):
            id_error = f"id: {id_problem(policy_id)}"
        context = {"name": name, "title": i18n.gettext(_text(template.get("dct:title"))),
                   "description": i18n.gettext(_text(template.get("dct:description"))), "params": params,
                   "values": {p.name: values.get(p.name, p.default) for p in params}, "policy_id": policy_id or "",
                   "field_errors": field_errors, "form_errors": form_errors, "id_error": id_error,
                   "s": None if field_errors or form_errors else self.sentences(filled),
                   "oob": bool(request.headers.get("HX-Request")) and request.method == "GET"}
        if context["oob"]:
            return web.Response(text=self._fragment(request, "_template_check.html", context),
                                content_type="text/html")
        return self.page(request, "policy_template.html", context,
                         status=400 if status == 200 and (field_errors or form_errors or id_error) else status)

    async def create_from_template(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in TEMPLATES:
            return self.not_found(request)
        form = {k: str(v)[:4000] for k, v in (await request.post()).items() if k != "csrf"}
        template = orjson.loads(TEMPLATES[name])
        params = policy_form.parameters(template)
        values = {p.name: form[p.name] for p in params if p.name in form}
        policy_id = form.get("id", "")
        filled = policy_form.fill(template, params, values)
        if check_policy(filled):  # the problems are shown next to their fields
            return await self.template_form(request, values=values, policy_id=policy_id, status=400)
        result = await self.api.call("POST", "/policies", {"id": policy_id, "policy": filled})
        if not result.ok:
            return await self.template_form(request, values=values, policy_id=policy_id, api_error=result.error,
                                            status=result.status)
        raise web.HTTPSeeOther(PREFIX + "/policies")

    async def explain(self, request: web.Request) -> web.Response:
        """Decide a request the viewer describes (purpose, recipient jurisdiction, when, uses so far,
        when agreed) under a stored policy, with the engine's reasons. Decides nothing on the node."""
        result = await self.api.call("GET", "/policies/{id}", id=request.match_info["id"])
        if not result.ok:
            return self.not_found(request)
        q = request.query
        form = {k: q.get(k, "").strip()[:200] for k in ("purpose", "jurisdiction", "when", "uses", "agreed")}
        decision, error = None, ""
        if "decide" in q:
            try:
                ctx: dict[str, Any] = {"now": self._viewer_time(request, form["when"]) or _utc_now()}
                if form["purpose"]:
                    ctx["purpose"] = form["purpose"]
                if form["jurisdiction"]:
                    ctx["recipient_jurisdiction"] = form["jurisdiction"]
                if form["uses"]:
                    ctx["use_count"] = int(form["uses"])
                if form["agreed"]:
                    ctx["agreement_time"] = self._viewer_time(request, form["agreed"])
                outcome = self.policies.compile(result.data["policy"]).evaluate(PolicyRequest(), Context.from_dict(ctx))
                decision = {"effect": outcome.effect.value,
                            "reasons": [i18n.sentence(r.sentence()) for r in outcome.reasons],
                            "duties": [i18n.sentence(duty_msg(d)) for d in outcome.duties]}
            except (PolicyError, ValueError, TypeError) as exc:
                error = clip(str(exc), 300)
        return self.page(request, "explain.html", {"policy": result.data, "form": form, "decision": decision,
                                                   "error": error, "s": self.sentences(result.data["policy"])},
                         status=400 if error else 200)

    @staticmethod
    def _viewer_time(request: web.Request, value: str) -> str:
        """A datetime-local value, read in the viewer's time zone, as ISO 8601 with its offset."""
        if not value:
            return ""
        from datetime import datetime
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=request["tz"])
        return moment.isoformat()

    async def create_offer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.post()
        form = {k: str(v)[:10_000] for k, v in raw.items() if k != "csrf"}
        assets = [a.strip() for a in form.get("assets", "").splitlines() if a.strip()][:1000]
        body = {"id": form.get("offer_id", ""), "assetIds": assets,
                "accessPolicyId": form.get("access", ""), "contractPolicyId": form.get("contract", "")}
        result = await self.api.call("POST", "/offers", body)
        if not result.ok:
            field = _error_field(result.error)
            return await self.policies_page(request, form=form, error=result.error, status=result.status,
                                            error_field="offer_id" if field == "id" else field)
        raise web.HTTPSeeOther(PREFIX + "/policies")

    # ------------------------------------------------------------ offer wizard
    WIZARD_STEPS = (N_("Assets"), N_("Access policy"), N_("Contract policy"), N_("Review"))

    async def offer_wizard(self, request: web.Request, *, step: int = 1, state: dict[str, Any] | None = None,
                           error: str = "", error_field: str = "", status: int = 200) -> web.Response:
        """Assets, then the access policy, then the contract policy, then a review of both policies in
        sentences. The choices so far travel in the form (hidden fields, with the session's CSRF token on
        every post); each step is checked on the server before the next, and the offer is created
        by the management API's own handler."""
        state = state or {"offer_id": "", "assets": [], "access": "", "contract": ""}
        context: dict[str, Any] = {"step": step, "state": state, "error": error, "error_field": error_field,
                                   "step_names": [i18n.gettext(n) for n in self.WIZARD_STEPS]}
        if step == 1:
            # the first page of assets (a node may hold 100,000): any other is given by its id
            listed = await self.api.call("GET", "/assets", query={"limit": str(self.ASSET_PAGE)})
            context["assets"] = listed.data if listed.ok and isinstance(listed.data, list) else []
            context["more_assets"] = self.ASSET_PAGE if listed.headers.get("Link") else 0
            shown = {a["id"] for a in context["assets"]}
            context["other_assets"] = " ".join(a for a in state["assets"] if a not in shown)
        elif step in (2, 3):
            context["policies"] = (await self.api.call("GET", "/policies")).data or []
        else:
            for key in ("access", "contract"):
                found = await self.api.call("GET", "/policies/{id}", id=state[key]) if state[key] else None
                context[f"{key}_sentences"] = self.sentences(found.data["policy"] if found and found.ok else None)
        return self.page(request, "offer_wizard.html", context, status=status)

    async def offer_wizard_step(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        state = {"offer_id": str(form.get("offer_id", "")).strip()[:255],
                 "assets": list(dict.fromkeys([str(a)[:255] for a in form.getall("asset", [])] +
                                              str(form.get("asset_ids", ""))[:20_000].split()))[:1000],
                 "access": str(form.get("access", ""))[:255], "contract": str(form.get("contract", ""))[:255]}
        step = str(form.get("step", "1"))
        step_n = int(step) if step in ("1", "2", "3", "4") else 1
        go = form.get("go")
        if go == "back":
            return await self.offer_wizard(request, step=max(step_n - 1, 1), state=state)
        if go == "next" and step_n < 4:
            problem = await self._wizard_problem(step_n, state)
            if problem:
                return await self.offer_wizard(request, step=step_n, state=state, error=problem[1],
                                               error_field=problem[0], status=400)
            return await self.offer_wizard(request, step=step_n + 1, state=state)
        if go == "create" and step_n == 4:
            for check in (1, 2, 3):  # the hidden fields come back from the browser: checked again
                problem = await self._wizard_problem(check, state)
                if problem:
                    return await self.offer_wizard(request, step=check, state=state, error=problem[1],
                                                   error_field=problem[0], status=400)
            result = await self.api.call("POST", "/offers", {"id": state["offer_id"], "assetIds": state["assets"],
                                                             "accessPolicyId": state["access"],
                                                             "contractPolicyId": state["contract"]})
            if not result.ok:
                field = _error_field(result.error)
                field = "offer_id" if field == "id" else field
                back = {"offer_id": 1, "assets": 1, "access": 2, "contract": 3}.get(field, 4)
                return await self.offer_wizard(request, step=back, state=state, error=result.error,
                                               error_field=field if back != 4 or field in ("offer_id",) else "",
                                               status=result.status)
            raise web.HTTPSeeOther(PREFIX + "/policies")
        return await self.offer_wizard(request, step=step_n, state=state)

    async def _wizard_problem(self, step: int, state: dict[str, Any]) -> tuple[str, str] | None:
        """What keeps a step from being done (field, message in the viewer's language), with the API's
        own id rule; None when it is done."""
        if step == 1:
            if not state["offer_id"]:
                return "offer_id", i18n.gettext("Give the offer an id.")
            problem = id_problem(state["offer_id"])
            if problem:
                return "offer_id", f"id: {problem}"
            if not state["assets"]:
                return "assets", i18n.gettext("Choose at least one asset.")
            # each looked up, not every asset listed (beyond these, the API checks them at creation)
            for asset_id in state["assets"][:self.ASSET_PAGE]:
                if not (await self.api.call("GET", "/assets/{id}", id=asset_id)).ok:
                    return "assets", i18n.gettext("No such asset: %(id)s") % {"id": clip(asset_id, 100)}
            return None
        key = "access" if step == 2 else "contract"
        if not state[key]:
            return key, (i18n.gettext("Choose an access policy.") if step == 2
                         else i18n.gettext("Choose a contract policy."))
        if step in (2, 3) and not (await self.api.call("GET", "/policies/{id}", id=state[key])).ok:
            return key, i18n.gettext("No such policy: %(id)s") % {"id": clip(state[key], 100)}
        return None

    # ------------------------------------------------------------------ helpers
    def refused(self, request: web.Request, result: ApiResult, *, back: str, peer: bool = False) -> web.Response:
        """A refusal: this node's own (its reasons as they are), or relayed from the peer (`peer`: its
        words quoted, bounded and marked as not translated)."""
        reasons = result.data.get("reasons") if isinstance(result.data, dict) else None
        reasons = reasons if isinstance(reasons, list) else []
        if peer:
            reasons = [clip(_reason_text(r), PEER_TEXT_LIMIT) for r in reasons[:PEER_REASONS]]
        return self.page(request, "refused.html", {"status": result.status, "error": result.error,
                                                   "reasons": reasons, "peer": peer, "back": back},
                         status=result.status if result.status >= 400 else 400)

    def _fragment(self, request: web.Request, template: str, context: dict[str, Any]) -> str:
        env = aiohttp_jinja2.get_env(request.app)
        locale = request["locale"]
        session = request.get(SESSION_KEY)
        base = {"when": lambda ts: i18n.format_time(ts, locale, request["tz"]), "state_name": state_name,
                "size": lambda n: i18n.format_bytes(int(n or 0), locale),
                "may_act": bool(session and session.may("operator")), "csrf": session.csrf if session else "",
                "P": PREFIX, "quote": lambda s: quote(str(s), safe=""), "locale": locale}
        return env.get_template(template).render(**base, **context)

    async def _sse(self, request: web.Request, event: str,
                   changed: Callable[[], Awaitable[str | tuple[str, str] | None]], *, poll: float) -> web.StreamResponse:
        """Server-sent events: what `changed` returns (html as `event`, or an (event, html) pair),
        a keep-alive comment when nothing changed."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        locale = request["locale"]
        ends = time.monotonic() + SSE_SECONDS
        try:
            while time.monotonic() < ends and not self.stopping.is_set():
                if request.transport is None or request.transport.is_closing():
                    break
                i18n.activate(locale)
                html = await changed()
                if html is not None:
                    name, html = html if isinstance(html, tuple) else (event, html)
                    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
                    await response.write(f"event: {name}\n{data}\n".encode())
                else:
                    await response.write(b": keep-alive\n\n")
                if poll:
                    try:
                        await asyncio.wait_for(self.stopping.wait(), poll)
                    except asyncio.TimeoutError:
                        pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


_FINAL = {"FINALIZED", "TERMINATED"}
#: a peer's words are shown quoted, at most this many reasons of at most this many characters each
PEER_REASONS, PEER_TEXT_LIMIT = 10, 500


def _next_cursor(link: str) -> str:
    """The cursor of a listing's next page from its Link header ("" on the last page)."""
    found = re.search(r"<([^>]*)>;\s*rel=\"next\"", link or "")
    if not found:
        return ""
    return URL(found.group(1)).query.get("cursor", "")[:1024]


def _reason_text(reason: Any) -> str:
    """A reason as received: text, or a JSON-LD value or {message} object."""
    if isinstance(reason, dict):
        reason = reason.get("message") or reason.get("@value") or ""
    return str(reason)


def _sentences(stored: Any, limit: int = 50) -> list[str] | None:
    """Stored engine sentences (message ids with parameters) in the viewer's language, or None
    when they are missing or unreadable (the English text is shown then)."""
    if not isinstance(stored, list) or not stored:
        return None
    try:
        return [i18n.sentence(msg_from_json(m)) for m in stored[:limit]]
    except (ValueError, TypeError, KeyError):
        return None


def access_reasons(access: dict[str, Any]) -> list[str]:
    """An access's reasons: the engine's sentences translated when stored, else its English text
    (rows from before they were stored, and reasons that are not the engine's)."""
    texts = [_reason_text(r) for r in access.get("reasons") or []]
    translated = _sentences(access.get("reasonMessages"))
    return translated if translated is not None and len(translated) == len(texts) else texts


def termination_shown(termination: Any, role: Any) -> dict[str, Any] | None:
    """Why a process ended, as the page shows it: our own engine's sentences translated when
    stored; our own other words as they are; the peer's words (it ended the process, or refused
    our message) quoted, bounded and marked as the peer's, since they cannot be translated."""
    if not isinstance(termination, dict):
        return None
    raw = termination.get("reason")
    texts = [_reason_text(r) for r in ([raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [])]
    if termination.get("by") == "peer-refused" and len(texts) == 1:
        # the peer refused our message: our sentence translated, the peer's code and reason quoted
        refused = send_problem(texts[0])
        if refused is not None and not refused["detail"]:
            return {"peer": refused["peer"], "lead": refused["lead"],
                    "lines": [refused["words"]] if refused["words"] else []}
    ours = termination.get("by") == role
    decision = termination.get("decision")
    translated = _sentences(decision.get("reasonMessages")) if ours and isinstance(decision, dict) else None
    if translated:  # an access policy's sentence names its policy itself; a contract policy's reasons do not
        lead = "" if decision.get("policy") == "access" else i18n.gettext("Refused by the contract policy:")
        return {"peer": False, "lead": lead, "lines": translated}
    # our own other sentences (a failed delivery, a missed deadline), stored with their message ids
    translated = _sentences(termination.get("reasonMessages")) if ours else None
    if translated is not None and len(translated) == len(texts):
        return {"peer": False, "lead": "", "lines": translated}
    if ours:
        return {"peer": False, "lead": "", "lines": texts}
    return {"peer": True, "lead": "", "lines": [clip(t, PEER_TEXT_LIMIT) for t in texts[:PEER_REASONS]]}


def send_problem(error: Any) -> dict[str, Any] | None:
    """An outbox error (a message not delivered yet, refused, or given up) as the page shows it: our
    own part in the viewer's language; the peer's words (`peer`) or the transport's technical text
    (`detail`) as they are, bounded, for the template to quote under their label."""
    if not isinstance(error, str) or not error:
        return None
    said, words, whose = send_failure(error)
    return {"lead": i18n.sentence(said), "words": clip(words, PEER_TEXT_LIMIT) if words else "",
            "peer": whose == "peer", "detail": whose == "detail"}


def error_shown(process: dict[str, Any]) -> dict[str, Any] | None:
    """A transfer's last error as the page shows it: None when it is the termination's reason (shown
    under "Why it ended" already); a suspension in the viewer's language, with the reason a peer gave
    quoted under the other party's label (bounded; the template escapes it) and the reason our own
    operator gave as it is; any other error as its text."""
    error = process.get("error")
    if not isinstance(error, str) or not error:
        return None
    termination = process.get("termination")
    if isinstance(termination, dict):
        raw = termination.get("reason")
        told = [_reason_text(r) for r in ([raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [])]
        if any(error[:500] == t[:500] for t in told):
            return None
    suspended = SUSPENSION.fullmatch(error)
    if suspended:
        party, reason = suspended.group(1), suspended.group(2) or ""
        if party != process.get("role"):
            return {"peer": True, "lead": i18n.gettext("The other party suspended this transfer."),
                    "lines": [clip(reason, PEER_TEXT_LIMIT)] if reason.strip() else []}
        return {"peer": False, "lead": i18n.gettext("This node suspended this transfer."),
                "lines": [clip(reason, PEER_TEXT_LIMIT)] if reason else []}
    if error.startswith(BROKE_OFF):  # the detail (an error's name and text) stays as it is
        return {"peer": False, "lead": i18n.gettext("The provider's data broke off during a download:"),
                "detail": True, "lines": [clip(error[len(BROKE_OFF):], 2000)]}
    return {"peer": False, "lead": "", "lines": [clip(error, 2000)]}


def _utc_now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat()


def _templates() -> dict[str, str]:
    """The ODRL templates of `policies/` (installed wheel: connector/_policies), by file stem."""
    here = Path(__file__).resolve().parents[1]
    for folder in (here / "_policies", here.parent / "policies"):
        if folder.is_dir():
            return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.jsonld"))}
    return {}


TEMPLATES = _templates()


#: the management API's refusals of a form's field, as messages in the viewer's language (the API
#: answers programs in English; a refusal not listed here is shown as the API worded it)
_API_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^dataAddress: path (?P<value>.*) is outside the data root$"),
     N_("This path is outside the data root: %(value)s")),
    (re.compile(r"^dataAddress: host (?P<value>.*) is not on the allowed upstream list"),
     N_("The host %(value)s is not on the allowed upstream list ([dataplane] upstream_hosts).")),
    (re.compile(r"^dataAddress: the url must be http\(s\)$"), N_("The URL must start with http:// or https://.")),
    (re.compile(r"^dataAddress: a file source needs a 'path'"), N_("Give the file's path under the data root.")),
    (re.compile(r"^dataAddress: an http source needs a 'url'"), N_("Give the URL of the data.")),
    (re.compile(r"^dataAddress: the url is refused: (?P<value>.*)$"), N_("This URL is refused: %(value)s")),
    (re.compile(r"^\w+: is too long \((?P<n>\d+) characters; at most (?P<max>\d+) are allowed\)$"),
     N_("Too long: %(n)s characters, at most %(max)s.")),
    (re.compile(r"^id: must not contain whitespace"),
     N_("An id must not contain whitespace, control characters, '/', '?' or '#'.")),
    (re.compile(r"^asset (?P<value>.*) already exists$"), N_("An asset with this id already exists.")),
)


def _localized_error(error: str) -> str:
    """An API refusal in the viewer's language when it is one the console knows (its values kept)."""
    for pattern, message in _API_ERRORS:
        match = pattern.match(error or "")
        if match:
            return i18n.gettext(message) % match.groupdict()
    return error


def _error_field(error: str) -> str:
    """The form field an API error names ("id: ...", "dataAddress: ...", "policy ..."), for the
    message to stand next to it."""
    head = re.split(r"[:\s/]", error, maxsplit=1)[0] if error else ""
    return {"id": "id", "dataAddress": "location", "policy": "odrl", "assetIds": "assets",
            "accessPolicyId": "access", "contractPolicyId": "contract", "title": "title",
            "contentType": "contentType", "description": "description"}.get(head, "id" if error else "")


def _sort_time(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0



def _datasets(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog's datasets with their offers, as plain dicts (at most 200 datasets)."""
    items = catalog.get("dataset") or []
    if isinstance(items, dict):
        items = [items]
    out = []
    for ds in items[:200]:
        if not isinstance(ds, dict):
            continue
        offers = ds.get("hasPolicy") or []
        if isinstance(offers, dict):
            offers = [offers]
        out.append({"id": str(ds.get("@id", ""))[:255], "title": _text(ds.get("title")) or _text(ds.get("dct:title")),
                    "offers": [o for o in offers if isinstance(o, dict)][:20]})
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:300]
    if isinstance(value, dict):
        return str(value.get("@value", ""))[:300]
    if isinstance(value, list) and value:
        return _text(value[0])
    return ""


def state_name(state: str) -> str:
    names = {
        "REQUESTED": i18n.gettext("Requested"), "OFFERED": i18n.gettext("Offered"),
        "ACCEPTED": i18n.gettext("Accepted"), "AGREED": i18n.gettext("Agreed"),
        "VERIFIED": i18n.gettext("Verified"), "FINALIZED": i18n.gettext("Finalized"),
        "TERMINATED": i18n.gettext("Terminated"), "STARTED": i18n.gettext("Started"),
        "SUSPENDED": i18n.gettext("Suspended"), "COMPLETED": i18n.gettext("Completed"),
        "INITIAL": i18n.gettext("Initial"),
    }
    return names.get(state, state)

