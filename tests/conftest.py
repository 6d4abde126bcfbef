import contextlib
import uuid

import pytest
import stamina

from support import reference
from support.nodes import postgres_admin_dsn

stamina.set_testing(False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # tests that read ../shared: skipped without it, failed under CI (tests/support/reference.py)
    reference.check(item)


@contextlib.asynccontextmanager
async def fresh_postgres_database():
    """A new PostgreSQL database (dropped afterwards), as an SQLAlchemy URL; skips the test without one."""
    dsn = postgres_admin_dsn()
    if dsn is None:
        pytest.skip("PostgreSQL tests need CONNECTOR_TEST_POSTGRES_DSN (set by .ci/run), "
                    "e.g. postgresql://postgres@127.0.0.1:5432/test")
    import asyncpg

    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at CONNECTOR_TEST_POSTGRES_DSN is not reachable: {exc}")
    name = f"hks_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = dsn.rsplit("/", 1)[0]
    try:
        yield base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# Parametrise a fixture with these to run its tests on both backends.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.asynccontextmanager
async def database_url(backend: str, tmp_path, name: str = "store"):
    """An SQLAlchemy URL: a new SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    else:
        async with fresh_postgres_database() as url:
            yield url


@pytest.fixture(params=BACKENDS)
async def node_db(request, tmp_path):
    """The node's database, migrated, on each backend."""
    from connector.store.db import Database

    async with database_url(request.param, tmp_path) as url:
        database = Database(url)
        await database.migrate()
        yield database
        await database.dispose()


@pytest.fixture
async def pg_url():
    async with fresh_postgres_database() as url:
        yield url
