"""The operator console: server-rendered pages at /console/ for the people running a node.

Mounted by `connector run` unless `[console] enabled = false` (env CONNECTOR_CONSOLE_ENABLED=false).
Every action calls the management API's own handler (console/api.py); the console adds sign-in,
roles, CSRF tokens, translations and HTML."""
from __future__ import annotations

from typing import Any

from aiohttp import web


def mount(app: web.Application, node: Any) -> None:
    from .views import Console

    Console(node).mount(app)
