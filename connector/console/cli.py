"""`connector user add DIR USERNAME --role ROLE`: local accounts of a node's operator console."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from .. import config as config_mod
from .auth import Accounts
from .service import user_app


def _open_node(directory: Path) -> tuple[Any, Callable[[Any], Awaitable[Accounts]], str]:
    from ..store.db import Database

    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        raise ValueError(str(exc)) from None

    async def ready(db: Database) -> Accounts:
        await db.migrate()
        return Accounts(db)
    return Database(settings.database_url), ready, f"{settings.node.public_url.rstrip('/')}/console/"


app = user_app(what="node", open_service=_open_node)
