"""What the station's and the clearing house's consoles share: their accounts' tables (in the
service's own database, created at start like the service's other tables), the `user add`
command of each service, and calling the service's own admin handlers in process."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import sqlalchemy as sa
import typer
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from ..protocol.errors import clip
from .result import ApiResult
from .auth import AccountError, Accounts


def enabled() -> bool:
    """A service's console is on unless CONNECTOR_CONSOLE_ENABLED=false (as the node's)."""
    return os.environ.get("CONNECTOR_CONSOLE_ENABLED", "true").strip().lower() not in ("false", "0", "no", "off")


def account_tables(prefix: str) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The console's users and sessions tables of a service (`PREFIX_console_users`, ...),
    the same columns as the node's (store/tables.py)."""
    metadata = sa.MetaData()
    users = sa.Table(
        f"{prefix}_console_users", metadata,
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    sessions = sa.Table(
        f"{prefix}_console_sessions", metadata,
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    return metadata, users, sessions


async def ready_accounts(db: Any, prefix: str) -> Accounts:
    metadata, users, sessions = account_tables(prefix)
    await db.transaction(lambda conn: metadata.create_all(conn))
    return Accounts(db, users, sessions)


#: what a service's `user add` needs: its database, how to make its accounts ready there, and
#: the console's address (for the closing line); a ValueError names a problem with the directory
Opener = Callable[[Path], tuple[Any, Callable[[Any], Awaitable[Accounts]], str]]


def user_app(*, what: str, open_service: Opener) -> typer.Typer:
    """`connector [service] user add DIR USERNAME --role ROLE`: console accounts of a node or service."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.command("add")
    def add(directory: Path = typer.Argument(..., help=f"{what} directory"),
            username: str = typer.Argument(..., help="the name to sign in with"),
            role: str = typer.Option("viewer", help="viewer (reads), operator (also acts) or admin"),
            password_stdin: bool = typer.Option(False, "--password-stdin",
                                                help="read the password from standard input (else: prompt)"),
            replace: bool = typer.Option(False, help="set a new password and role for an existing user")) -> None:
        """Add a console user (the password is stored as an argon2id hash in the database)."""
        try:
            db, ready, where = open_service(directory)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)

        async def run() -> None:
            try:
                accounts = await ready(db)
                await accounts.add_user(username, password, role, replace=replace)
            finally:
                await db.dispose()
        try:
            asyncio.run(run())
        except AccountError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        typer.echo(f"console user {username} ({role}) {'updated' if replace else 'added'}: sign in at {where}")
    return app


def service_opener(prefix: str, load: Callable[[Path], Any], open_db: Callable[[Any], Any]) -> Opener:
    """The opener of a service whose accounts live in `PREFIX_console_*` tables: `load(directory)`
    gives its settings (or raises ValueError), `open_db(settings)` its Database."""
    def open_service(directory: Path) -> tuple[Any, Callable[[Any], Awaitable[Accounts]], str]:
        settings = load(directory)

        async def ready(db: Any) -> Accounts:
            return await ready_accounts(db, prefix)
        return open_db(settings), ready, settings.public_url.rstrip("/") + "/console/"
    return open_service


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def iter_chunked(self, size: int):  # noqa: ANN201
        for i in range(0, len(self._data), size):
            yield self._data[i:i + size]


class AdminCall:
    """What a service's admin handler reads of a request: method, path, headers (the admin
    token), query, match_info and a JSON body."""

    def __init__(self, method: str, path: str, match_info: dict[str, str], body: Any, query: dict[str, str],
                 token: str) -> None:
        self.method, self.path, self.match_info = method, path, match_info
        raw = b"" if body is None else orjson.dumps(body)
        self.content_length = len(raw)
        self.content_type = "application/json"
        self.content = _Body(raw)
        self.can_read_body = body is not None
        self.query = MultiDictProxy(MultiDict(query))
        self.headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {token}",
                                                     "Content-Type": "application/json"}))
        self._raw = raw

    async def read(self) -> bytes:
        return self._raw


async def call_admin(handler: Callable[[Any], Awaitable[web.StreamResponse]], token: str, error_type: type,
                     method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
                     **match_info: str) -> ApiResult:
    """The service's own handler for an admin request: its checks, its errors (an `error_type`
    exception with .status and .message becomes the result a program would have had)."""
    try:
        response = await handler(AdminCall(method, path, match_info, body, query or {}, token))
    except error_type as exc:
        return ApiResult(exc.status, {"error": clip(exc.message), "code": getattr(exc, "code", "")})
    raw = getattr(response, "body", None)
    if response.content_type == "application/json":
        return ApiResult(response.status, orjson.loads(raw) if raw else None)
    return ApiResult(response.status, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
