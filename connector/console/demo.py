"""`connector demo --console`: after the demo's steps, each organisation gets a demo login to its
node's console, and everything keeps running until Ctrl-C."""
from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..store.db import Database
from .auth import add_user


async def serve_consoles(base: Path, result: dict[str, Any], orgs: dict[str, Any]) -> None:
    print("\nThe operator consoles (the demo keeps running; Ctrl-C stops it):", flush=True)
    for key in orgs:
        settings = config_mod.load(base / key)
        password = secrets.token_urlsafe(12)
        db = Database(settings.database_url)
        try:
            await add_user(db, "demo", password, "operator", replace=True)
        finally:
            await db.dispose()
        print(f"  {settings.node.name:<36} {settings.node.public_url.rstrip('/')}/console/   "
              f"login: demo / {password}", flush=True)
    print(f"  the station authority: {settings.identity_station_url}", flush=True)
    await asyncio.Event().wait()
