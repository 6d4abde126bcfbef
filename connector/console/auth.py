"""Local console accounts: argon2id password hashes, roles, sessions and CSRF tokens.

A session cookie is 32 random bytes; the database keeps only its SHA-256 (a stolen node.db
opens no session). Each session has its own CSRF token, which every state-changing form
carries and the server compares in constant time. Sign-in itself is protected by a
double-submit token (a cookie and the form's field must match)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..store.db import Database
from ..store.tables import console_sessions as sessions, console_users as users
from ..errors import ConsoleError

# The functions below take the node's tables by default; `Accounts` binds them to another
# service's tables (the station's, the clearing house's: console/accounts.py).

#: each role can do what the ones before it can
ROLES = ("viewer", "operator", "admin")
USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD = 10
SESSION_SECONDS = 8 * 3600
_hasher = PasswordHasher()  # argon2id with the library's current parameters
# a hash to verify against when the user does not exist: the same work, so timing does not tell
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(ConsoleError, ValueError):
    """A username, password or role that breaks a rule; the message names the rule."""


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def check_account(username: str, password: str, role: str) -> None:
    if not USERNAME.match(username):
        raise AccountError("username: 1 to 64 letters, digits or . _ @ -")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}")


async def add_user(db: Database, username: str, password: str, role: str, *, replace: bool = False,
                   users: sa.Table = users, sessions: sa.Table = sessions) -> None:
    """Create (or with `replace`, reset) a local account. Raises AccountError."""
    check_account(username, password, role)
    hashed = await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)

    def tx(conn: Any) -> None:
        exists = conn.execute(sa.select(users.c.username).where(users.c.username == username)).first()
        if exists and not replace:
            raise AccountError(f"user {username} already exists (--replace sets a new password and role)")
        if exists:
            conn.execute(sa.update(users).where(users.c.username == username)
                         .values(password_hash=hashed, role=role))
            conn.execute(sa.delete(sessions).where(sessions.c.username == username))  # signed out everywhere
        else:
            conn.execute(users.insert().values(username=username, password_hash=hashed, role=role,
                                               created_at=time.time()))
    await db.transaction(tx)


async def authenticate(db: Database, username: str, password: str, *, users: sa.Table = users) -> str | None:
    """The user's role if the password is right, else None (the same work either way)."""
    row = None
    if USERNAME.match(username) and len(password) <= 1024:
        row = await db.read(lambda conn: conn.execute(
            sa.select(users.c.password_hash, users.c.role).where(users.c.username == username)).first())
    hashed = row[0] if row else _DUMMY_HASH

    def verify() -> bool:
        try:
            return _hasher.verify(hashed, password[:1024])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    ok = await asyncio.get_running_loop().run_in_executor(None, verify)
    return row[1] if ok and row else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(db: Database, username: str, *, sessions: sa.Table = sessions) -> tuple[str, str]:
    """A new session: (cookie value, CSRF token)."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()

    def tx(conn: Any) -> None:
        conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))
        conn.execute(sessions.insert().values(id_sha256=_digest(token), username=username, csrf=csrf,
                                              created_at=now, expires_at=now + SESSION_SECONDS))
    await db.transaction(tx)
    return token, csrf


async def load_session(db: Database, token: str | None, *, users: sa.Table = users,
                       sessions: sa.Table = sessions) -> Session | None:
    if not token or len(token) > 100:
        return None
    query = (sa.select(sessions.c.username, sessions.c.csrf, users.c.role)
             .select_from(sessions.join(users, users.c.username == sessions.c.username))
             .where(sessions.c.id_sha256 == _digest(token), sessions.c.expires_at > time.time()))
    row = await db.read(lambda conn: conn.execute(query).first())
    if row is None or row[2] not in ROLES:
        return None
    return Session(username=row[0], role=row[2], csrf=row[1])


async def close_session(db: Database, token: str | None, *, sessions: sa.Table = sessions) -> None:
    if token and len(token) <= 100:
        await db.transaction(lambda conn: conn.execute(
            sa.delete(sessions).where(sessions.c.id_sha256 == _digest(token))))


class Throttle:
    """At most `limit` failed sign-ins per username in `window` seconds (in this process); then the
    sign-in is refused without checking the password until the oldest failure leaves the window."""

    def __init__(self, limit: int = 5, window: float = 900.0, size: int = 10_000) -> None:
        self.limit, self.window, self.size = limit, window, size
        self._failures: dict[str, list[float]] = {}

    def _recent(self, username: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(username.lower(), ()) if now - t < self.window]
        if kept:
            self._failures[username.lower()] = kept
        else:
            self._failures.pop(username.lower(), None)
        return kept

    def blocked(self, username: str) -> bool:
        return len(self._recent(username, time.monotonic())) >= self.limit

    def failed(self, username: str) -> None:
        now = time.monotonic()
        if len(self._failures) >= self.size:  # bounded: forget the oldest entry
            self._failures.pop(next(iter(self._failures)))
        self._failures[username.lower()] = self._recent(username, now) + [now]

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.lower(), None)


def same_token(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given).encode(), str(expected).encode())


class Accounts:
    """The accounts and sessions of one service: its database and its two tables."""

    def __init__(self, db: Database, users_table: sa.Table = users, sessions_table: sa.Table = sessions) -> None:
        self.db, self.users, self.sessions = db, users_table, sessions_table

    async def add_user(self, username: str, password: str, role: str, *, replace: bool = False) -> None:
        await add_user(self.db, username, password, role, replace=replace, users=self.users, sessions=self.sessions)

    async def authenticate(self, username: str, password: str) -> str | None:
        return await authenticate(self.db, username, password, users=self.users)

    async def open_session(self, username: str) -> tuple[str, str]:
        return await open_session(self.db, username, sessions=self.sessions)

    async def load_session(self, token: str | None) -> Session | None:
        return await load_session(self.db, token, users=self.users, sessions=self.sessions)

    async def close_session(self, token: str | None) -> None:
        await close_session(self.db, token, sessions=self.sessions)
