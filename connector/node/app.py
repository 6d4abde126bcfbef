"""The participant node process: wires the cores to aiohttp, the database and the outbox."""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import aiohttp
from aiohttp import web

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Settings
from ..protocol.messages import error_object
from ..errors import ConnectorError
from ..serving import ErrorAnswers, error_middleware, listen, run_process, serve_forever
from ..identity.binding import (build_identity, client_ssl_context, server_ssl_context,
                                start_identity, stop_identity)
from .sender import identity_middleware  # the DSP sender check (was in identity/binding.py)
from ..protocol.bounds import JsonLdLimits
from ..store.db import Database
from .catalog import CatalogService
from .codec import VERSIONS, Codec
from .dsp import DspApi
from .management import ManagementApi, json_response
from .metrics import NodeMetrics
from .. import telemetry
from .negotiations import NegotiationService
from .clearinghouse import ClearingHouseLog
from .dataplane import DataPlane
from ..compute.service import ComputeService
from .destinations import DestinationGuard, GuardedConnector, parse_allow_list
from .outbox import Dispatcher
from . import pseudonym_native
from .transfers import TransferService
from .peers import PeerDirectory
from .selfdescription import SelfDescriptionService, StartupError
from ..certs.node import CertificateService
from ..compliance.service import ComplianceService

log = logging.getLogger("connector.node")
NODE_KEY: web.AppKey["Node"] = web.AppKey("node", object)  # type: ignore[arg-type]


class Node:
    def __init__(self, settings: Settings, *, strategy: Any = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock  # the one clock of the outbox, the data plane and the process services
        self.participant_id = settings.node.participant_id
        self.codec = Codec(JsonLdLimits(max_bytes=settings.jsonld_max_bytes, max_depth=settings.jsonld_max_depth,
                                        max_nodes=settings.jsonld_max_nodes,
                                        timeout=settings.jsonld_timeout_ms / 1000,
                                        memory_mib=settings.jsonld_memory_mib),
                           workers=settings.jsonld_workers)
        # [identity] mode: "station" (DATs from the station authority) or the explicit dev shared secret
        self.identity = build_identity(settings)
        self.db = Database(settings.database_url)
        # Where peers may make this node send requests (checked on arrival and again at connect time).
        self.destinations = DestinationGuard(
            parse_allow_list(settings.allowed_destinations), addresses_of=self.identity.addresses_of,
            trusted=[u for u in (settings.clearinghouse_url, settings.identity_station_url) if u])
        self.catalog = CatalogService(self.db, participant_id=self.participant_id, title=settings.node.name)
        self.metrics = NodeMetrics()
        self.catalog.policies.observe = self.metrics.decided
        self.self_description = SelfDescriptionService(self)  # re-registers on catalog.on_change
        if strategy is None and settings.tck_enabled:
            from .tck import TckStrategy
            strategy = TckStrategy()
        self.negotiations = NegotiationService(
            self.db, participant_id=self.participant_id, dsp_base=settings.dsp_base,
            catalog=self.catalog, strategy=strategy, clock=clock, on_commit=self._wake_dispatcher,
        )
        self.clearinghouse = ClearingHouseLog(self) if settings.clearinghouse_url else None
        self.dataplane = DataPlane(self)
        self.compute = ComputeService(self)
        self.certificates = CertificateService(self)  # dataset registration certificates
        self.compliance = ComplianceService(self)  # cross-border records; gates a first transfer
        self.negotiations.on_agreement.append(self.compliance.on_agreement)
        self.transfers = TransferService(
            self.db, participant_id=self.participant_id, dsp_base=settings.dsp_base,
            access_check=self.compliance.gate(self.dataplane.transfer_refusal),
            start_address=self.dataplane.start_address,
            clock=clock, on_commit=self._wake_dispatcher,
        )
        self.transfers.reveal = self.dataplane.reveal_tokens
        self.transfers.compute_check = self.compute.transfer_refusal
        self.transfers.on_started.append(self.dataplane.on_started)
        self.transfers.on_state.append(self.dataplane.on_state)
        if settings.tck_enabled:
            from .tck import scripted_transfer_reaction, scripted_transfer_start
            self.transfers.strategy_after_request = scripted_transfer_start  # type: ignore[method-assign]
            self.transfers.strategy_after_received = scripted_transfer_reaction  # type: ignore[method-assign]
        self.session: aiohttp.ClientSession | None = None
        self.dispatcher: Dispatcher | None = None
        self.peers: PeerDirectory | None = None
        self._tasks: list[asyncio.Task] = []

    def _wake_dispatcher(self, entries: list) -> None:
        if self.dispatcher is not None:
            self.dispatcher.submit(entries)

    async def start(self) -> None:
        await self.db.migrate()
        # Built or loaded off the event loop, before the first modified transfer asks for it.
        self._tasks.append(asyncio.create_task(asyncio.to_thread(pseudonym_native.kernel), name="native-pseudonyms"))
        if self.settings.tck_enabled:
            from .tck import seed, seed_transfers
            await seed(self)
            await seed_transfers(self)
        for background in await start_identity(self.identity):
            self._tasks.append(asyncio.create_task(background, name="identity"))
        peer_tls = client_ssl_context(self.settings)  # mTLS to peers with the station certificate
        self.session = aiohttp.ClientSession(connector=GuardedConnector(
            self.destinations, limit=200, limit_per_host=100, **({"ssl": peer_tls} if peer_tls else {})))
        self.peers = PeerDirectory(self.session, self.codec, self.identity)
        self.dispatcher = Dispatcher(
            self.db, self.negotiations, self.session, self.identity.outbound_authorization,
            lease_seconds=self.settings.outbox_lease_seconds,
            message_deadline=self.settings.outbox_message_deadline,
            clearinghouse_deadline=self.settings.outbox_clearinghouse_deadline,
            retry_initial=self.settings.outbox_retry_initial, retry_max=self.settings.outbox_retry_max,
            on_unauthorized=getattr(self.identity, "invalidate", None), clock=self.clock,
        )
        if self.settings.tck_enabled:
            self.dispatcher.send_delay, self.dispatcher.retry_races = 0.5, frozenset({404})
        self.dispatcher.register(self.transfers)
        if self.clearinghouse is not None:
            await self.clearinghouse.start(self.session)
            self.dispatcher.register(self.clearinghouse)
            owner, lease = self.dispatcher.owner, self.dispatcher.lease_seconds

            def audit(conn, row, message, ts, event=None):  # noqa: ANN001, ANN202
                return self.clearinghouse.record(conn, row, message, ts, owner=owner, lease_seconds=lease, event=event)

            self.negotiations.audit = self.transfers.audit = audit
            self._tasks.append(asyncio.create_task(self.clearinghouse.audit_loop(), name="receipt-audit"))
            self._tasks.append(asyncio.create_task(self.clearinghouse.consistency_loop(), name="log-consistency"))
        for service in (self.negotiations, self.transfers):
            service.outbox_owner = self.dispatcher.owner
            service.lease_seconds = self.dispatcher.lease_seconds
        self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="outbox"))
        self._tasks.append(asyncio.create_task(self.dataplane.delete_loop(), name="delete-duties"))
        self._tasks.append(asyncio.create_task(self.compliance.alert_loop(), name="compliance-filings"))
        await self.dataplane.resume_pushes()
        for background in await self.self_description.start():
            self._tasks.append(asyncio.create_task(background, name="self-description"))

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        await stop_identity(self.identity)
        await self.codec.close()
        await self.db.dispose()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes,
                              middlewares=[telemetry.middleware(), self.metrics.middleware(),
                                           error_middleware(ErrorAnswers(self.settings.max_body_bytes,
                                                                         alternate=self._dsp_error), log),
                                           identity_middleware(self)])
        app[NODE_KEY] = self
        app.add_routes(DspApi(self).routes())
        management = ManagementApi(self)
        app.add_routes(management.routes())
        app.add_routes(self.compliance.routes(ManagementApi.PREFIX, management._wrap))
        app.add_routes(self.certificates.routes(ManagementApi.PREFIX, management._wrap))  # connector/certs
        app.add_routes([web.get("/health", self._health),
                        web.get("/.well-known/self-description", self.self_description.handle),
                        web.get("/data/{tid}", self.dataplane.serve),
                        web.post("/data/{tid}", self.compute.serve),
                        web.put("/push/{tid}", self.dataplane.receive_push)])
        if self.settings.tck_enabled:
            from .tck import routes as tck_routes
            app.add_routes(tck_routes(self))
        if self.settings.console_enabled:  # the operator console at /console/ ([console] enabled)
            from ..console import mount as mount_console
            mount_console(app, self)

        async def lifecycle(_app: web.Application):  # noqa: ANN202
            try:
                await self.start()
            except BaseException:
                await self.stop()  # close what was opened before the failure
                raise
            yield
            await self.stop()

        app.cleanup_ctx.append(lifecycle)
        return app

    def _dsp_error(self, request: web.Request, exc: ConnectorError) -> web.Response | None:
        """An error on a /dsp/<version> route in that API's shape: the DSP error object of the
        route (DSP handlers answer their own errors with the process ids; this is for the rest,
        e.g. a malformed header). None elsewhere: the management API's JSON."""
        parts = request.path.split("/")
        if not (len(parts) > 3 and parts[1] == "dsp" and parts[2] in VERSIONS):
            return None
        error_type = {"catalog": "CatalogError", "transfers": "TransferError"}.get(parts[3], "ContractNegotiationError")
        body = error_object(error_type, exc.error_code(), exc.public_message())
        return web.Response(body=self.codec.encode(body, parts[2]), status=exc.status, content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "participantId": self.participant_id,
                                  "identityMode": self.identity.mode,
                                  "selfDescription": self.self_description.status()})


async def serve(settings: Settings, *, ready_line: bool = True) -> None:
    """Run the node until cancelled. Prints 'listening on URL' once the port is bound."""
    node = Node(settings)
    if settings.identity_mode == "dev-shared-secret":
        log.warning("identity mode is dev-shared-secret: for development and tests only")
    elif settings.identity_mode == "edc-iam-mock-test-only":
        log.warning("identity mode is edc-iam-mock-test-only: EDC's unsigned mock tokens, any peer can claim "
                    "any participant id; for interop TESTS only")
    runner, url = await listen(node.make_app(), settings.node.listen_host, settings.node.listen_port,
                               ssl_context=server_ssl_context(settings))
    if ready_line:
        print(f"listening on {url}", flush=True)
    await serve_forever(runner)


def run(settings: Settings) -> None:
    code = run_process(serve(settings), startup_errors=(StartupError,), telemetry=("connector-node", settings.telemetry))
    if code:
        sys.exit(code)
