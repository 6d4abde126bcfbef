"""What an API handler called in process answered: its status and its JSON (a module of its own so
that the station's and the clearing house's consoles do not import the node's management API)."""
from __future__ import annotations

from typing import Any


class ApiResult:
    def __init__(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.data = data
        self.headers = headers or {}  # e.g. a listing's Link to its next page

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        if isinstance(self.data, dict):
            return str(self.data.get("error") or "")
        return ""
