"""The clearing house's console at /console/ of `connector clearinghouse run`: the log's size,
its latest signed checkpoint (verified with the log's own verifier key), entries and processes
per participant, and the audit of a process: its entries, each verified here as `connector
audit verify` does (signature by the sender's key, inclusion proof against the signed root).

Reading only; signed in with the clearing house's own local accounts
(`connector clearinghouse user add DIR NAME`). The entries come from the same store functions
the API's /processes/{pid}/entries answers with; the console user reads as the log's operator."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from ..clearinghouse import store
from ..clearinghouse.keys import ParticipantKeyError
from ..clearinghouse.tables import entries, processes
from ..clearinghouse.verify import LogVerificationError, encode_hash, open_checkpoint, verify_item
from ..protocol.errors import clip
from . import i18n
from .auth import Accounts
from .service import account_tables, enabled, ready_accounts, service_opener, user_app
from .shell import SERVICE_NOT_ALLOWED, Route, Shell

ACCOUNTS_PREFIX = "clearinghouse"
PARTICIPANTS_SHOWN = 200
AUDIT_PAGE = 500
RECENT_PROCESSES = 20


def mount(app: web.Application, house: Any) -> None:
    """The hook of the clearing house's make_app: the console unless CONNECTOR_CONSOLE_ENABLED=false."""
    if enabled():
        ClearingHouseConsole(house).mount(app)


class ClearingHouseConsole(Shell):
    NOT_ALLOWED = SERVICE_NOT_ALLOWED

    def __init__(self, house: Any) -> None:
        _, users, sessions = account_tables(ACCOUNTS_PREFIX)
        super().__init__(Accounts(house.db, users, sessions),
                         secure_cookies=house.settings.public_url.startswith("https://"))
        self.house = house

    def mount(self, app: web.Application) -> None:
        super().mount(app)

        async def tables(_app: web.Application) -> None:  # after the clearing house's own start (cleanup_ctx)
            await ready_accounts(self.house.db, ACCOUNTS_PREFIX)
        app.on_startup.append(tables)

    def routes(self) -> list[Route]:
        return [("GET", "/", self.overview, "viewer"), ("GET", "/audit", self.audit, "viewer")]

    def base_context(self) -> dict[str, Any]:
        return {"node_name": self.house.signer.origin,
                "nav": [("/", i18n.gettext("Log")), ("/audit", i18n.gettext("Audit a process"))],
                "footer": i18n.gettext("Clearing house") + ": " + self.house.signer.origin}

    def _checkpoint(self, note: str | None) -> tuple[Any, str]:
        """The checkpoint opened with the log's verifier key, or why it does not open."""
        if not note:
            return None, i18n.gettext("The log has not signed a checkpoint yet.")
        try:
            return open_checkpoint(note, self.house.signer.verifier_key), ""
        except LogVerificationError as exc:
            return None, clip(str(exc), 300)

    async def overview(self, request: web.Request) -> web.Response:
        def read(conn: Any) -> tuple[Any, list, list, list]:
            tree = store.head(conn)
            recent = conn.execute(sa.select(processes.c.process_id, processes.c.provider, processes.c.consumer)
                                  .order_by(processes.c.first_seq.desc()).limit(RECENT_PROCESSES)).all()
            sent = conn.execute(sa.select(entries.c.submitter, sa.func.count()).group_by(entries.c.submitter)
                                .order_by(sa.func.count().desc()).limit(PARTICIPANTS_SHOWN)).all()
            parties = sa.union_all(sa.select(processes.c.provider.label("p")),
                                   sa.select(processes.c.consumer.label("p"))).subquery()
            party = conn.execute(sa.select(parties.c.p, sa.func.count()).group_by(parties.c.p)).all()
            return tree, sent, party, recent
        tree, sent, party, recent = await self.house.db.read(read)
        checkpoint, problem = self._checkpoint(tree.checkpoint)
        in_processes = {p: n for p, n in party}
        counts = [{"participant": p, "entries": n, "processes": in_processes.get(p, 0)} for p, n in sent]
        return self.page(request, "ch_overview.html", {
            "size": tree.size, "note": tree.checkpoint or "", "checkpoint": checkpoint, "problem": problem,
            "verifier_key": self.house.signer.verifier_key, "counts": counts,
            "recent": [{"id": r[0], "provider": r[1], "consumer": r[2]} for r in recent]})

    async def audit(self, request: web.Request) -> web.Response:
        pid = request.query.get("process", "").strip()
        context: dict[str, Any] = {"process": pid, "rows": None, "error": "", "problem": ""}
        if not pid:
            return self.page(request, "ch_audit.html", context)
        if len(pid) > 256:
            context["error"] = i18n.gettext("A process id has at most 256 characters.")
            return self.page(request, "ch_audit.html", context, status=400)
        parties = await self.house.db.read(store.process_parties, pid)
        if parties is None:
            context["error"] = i18n.gettext("The log has no entries for this process.")
            return self.page(request, "ch_audit.html", context, status=404)
        tree, items = await self.house.db.read(store.list_process_entries, pid, -1, AUDIT_PAGE, None)
        checkpoint, problem = self._checkpoint(tree.checkpoint)
        rows = []
        for item in items:
            listed = {**item, "inclusionProof": [encode_hash(h) for h in item["inclusionProof"]]}
            if checkpoint is None:
                rows.append({"index": item["leafIndex"], "ok": False, "reason": problem, "entry": None,
                             "received": item["receivedAt"]})
                continue
            keys = {}
            sender = item["submitter"]
            try:
                keys[sender] = await self.house.keys.key_for(sender)
            except ParticipantKeyError as exc:  # no key (unknown, revoked, unreachable): the entry does not verify
                keys[sender] = clip(str(exc), 200)
            verdict = verify_item(listed, tree_size=checkpoint.size, root=checkpoint.root_hash, keys=keys, process_id=pid)
            rows.append({"index": item["leafIndex"], "ok": verdict.ok, "reason": clip(verdict.reason, 300),
                         "entry": verdict.entry, "received": item["receivedAt"]})
        context.update(rows=rows, provider=parties[0], consumer=parties[1], size=tree.size, problem=problem,
                       more=len(items) == AUDIT_PAGE)
        return self.page(request, "ch_audit.html", context)


def _load(directory: Path) -> Any:
    from ..clearinghouse import config as ch_config

    try:
        return ch_config.load(directory)
    except ch_config.ConfigError as exc:
        raise ValueError(str(exc)) from None


def _open_db(settings: Any) -> Any:
    from ..clearinghouse.db import open_database

    return open_database(settings.database_url)


users_app = user_app(what="clearing house", open_service=service_opener(ACCOUNTS_PREFIX, _load, _open_db))
