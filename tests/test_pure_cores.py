"""The pure cores (connector/protocol, connector/policy, connector/ledger) do no I/O and read no clock.

Read from the source with ``ast``, not by importing: a forbidden import anywhere in a module
(top level or inside a function) fails, and so does a call that reads a file or the clock.
The shell (node, station, clearing house, CLI, vocab loader) does those things and passes the
results in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "connector"
PURE = ("protocol", "policy", "ledger")

#: third-party and standard modules a pure core must not import (top-level name)
FORBIDDEN_MODULES = {
    "aiohttp": "HTTP",
    "sqlalchemy": "database",
    "asyncpg": "database",
    "aiosqlite": "database",
    "sqlite3": "database",
    "typer": "CLI",
    "rich": "CLI output",
    "time": "clock",
    "socket": "network",
    "subprocess": "processes",
    "requests": "network",
    "httpx": "network",
}
#: connector modules a pure core may import: the cores themselves, and the project's exception
#: hierarchy (connector/errors.py, itself pure: it is checked with them)
ALLOWED_CONNECTOR = {"connector.protocol", "connector.policy", "connector.ledger", "connector.errors"}
#: attribute calls that read or write files
FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "touch", "mkdir", "unlink", "iterdir", "glob", "rglob"}
#: attribute calls that read the clock (datetime.now(), date.today(), ...)
CLOCK_METHODS = {"now", "utcnow", "today"}
#: entry points, never imported by the library: ``python -m connector.policy`` runs the shell's CLI
ENTRY_POINTS = {Path("policy/__main__.py")}


def _modules() -> list[Path]:
    out = []
    for core in PURE:
        for path in sorted((ROOT / core).rglob("*.py")):
            if path.relative_to(ROOT) not in ENTRY_POINTS:
                out.append(path)
    return out + [ROOT / "errors.py"]


def _absolute(module: str | None, level: int, path: Path) -> str:
    if level == 0:
        return module or ""
    package = ["connector", *path.relative_to(ROOT).parent.parts]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def violations(path: Path, source: str | None = None) -> list[str]:
    """What in the module at ``path`` (its text, or ``source``) breaks the rules, one line each."""
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    found: list[str] = []

    def imported(name: str, line: int) -> None:
        top = name.split(".")[0]
        if top in FORBIDDEN_MODULES:
            found.append(f"line {line}: imports {name} ({FORBIDDEN_MODULES[top]})")
        elif top == "connector" and not any(name == a or name.startswith(a + ".") for a in ALLOWED_CONNECTOR):
            if name != "connector":
                found.append(f"line {line}: imports {name} (the shell, outside the pure cores)")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, path)
            if base == "connector" or (node.level and not node.module):
                for alias in node.names:
                    imported(f"{base}.{alias.name}", node.lineno)
            else:
                imported(base, node.lineno)
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id == "open":
                found.append(f"line {node.lineno}: open() (file I/O)")
            elif isinstance(fn, ast.Attribute):
                if fn.attr in FILE_METHODS and not (isinstance(fn.value, ast.Name) and fn.value.id in {"re", "self"}):
                    found.append(f"line {node.lineno}: .{fn.attr}() (file I/O)")
                elif fn.attr in CLOCK_METHODS:
                    found.append(f"line {node.lineno}: .{fn.attr}() (reads the clock)")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_core_module_does_no_io_and_reads_no_clock(path: Path):
    assert violations(path) == []


def test_the_walker_finds_what_it_forbids():
    """The check itself can fail: a module with each forbidden thing is caught on every line."""
    bad = ROOT / "policy" / "_walker_probe.py"  # as if inside a core; never written, parsed from the text
    source = (
        "import time\n"
        "from aiohttp import web\n"
        "import sqlalchemy as sa\n"
        "from typer import Typer\n"
        "from rich.console import Console\n"
        "from ..node import app\n"
        "from connector.vocab import policy_contexts\n"
        "from datetime import datetime\n"
        "x = datetime.now()\n"
        "y = open('f').read()\n"
        "from pathlib import Path\n"
        "z = Path('f').read_text()\n"
        "from . import compiler\n"
        "from .values import add_duration\n"
    )
    found = violations(bad, source)
    lines = sorted({int(v.split()[1].rstrip(":")) for v in found})
    assert lines == [1, 2, 3, 4, 5, 6, 7, 9, 10, 12], found
