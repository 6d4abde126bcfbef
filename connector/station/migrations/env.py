"""Alembic environment of the station authority: its own tables and its own version table,
so it can share a PostgreSQL database with other station processes, a node or a clearing
house. The shell passes an open connection."""
from alembic import context

from connector.station.store import metadata

VERSION_TABLE = "station_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
