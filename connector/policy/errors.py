"""The one exception the policy package raises for bad input."""

from __future__ import annotations
from ..errors import ConnectorError


class PolicyError(ConnectorError, ValueError):
    """A policy was refused. ``errors`` lists (path, message) pairs; the path
    names the offending part, e.g. ``permission[0].constraint[1].rightOperand``. The policy layer's
    base (connector/errors.py): a refused policy is the sender's to fix, 400."""

    status, code = 400, "InvalidPolicy"

    def __init__(self, errors: list[tuple[str, str]] | str, path: str = ""):
        if isinstance(errors, str):
            errors = [(path, errors)]
        self.errors: list[tuple[str, str]] = list(errors)
        super().__init__(self._text())

    @property
    def path(self) -> str:
        return self.errors[0][0] if self.errors else ""

    def _text(self) -> str:
        lines = [f"{p}: {m}" if p else m for p, m in self.errors]
        if len(lines) == 1:
            return "invalid policy: " + lines[0]
        return "invalid policy:\n  " + "\n  ".join(lines)
