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
    await _service_logins(base)
    await asyncio.Event().wait()


async def _service_logins(base: Path) -> None:
    """A demo login to the station's and the clearing house's consoles (their own accounts)."""
    from ..clearinghouse import config as ch_config
    from ..clearinghouse.db import open_database
    from ..station import config as station_config
    from . import clearinghouse as ch_console, station as station_console
    from .service import ready_accounts

    services = [("the station's console", station_config.load(base / "station"), Database, station_console)]
    if (base / "clearinghouse").is_dir():
        services.append(("the clearing house's console", ch_config.load(base / "clearinghouse", environ={}),
                         open_database, ch_console))
    for label, settings, open_db, module in services:
        password = secrets.token_urlsafe(12)
        db = open_db(settings.database_url)
        try:
            accounts = await ready_accounts(db, module.ACCOUNTS_PREFIX)
            await accounts.add_user("demo", password, "operator", replace=True)
        finally:
            await db.dispose()
        print(f"  {label + ':':<36} {settings.public_url.rstrip('/')}/console/   login: demo / {password}",
              flush=True)
