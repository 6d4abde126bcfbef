"""The operator console against real processes: a clearing house and two nodes (Pearl River
publishes, Harbour Lab signs in to its console), plus a real Chromium driven by Playwright.

Chromium is Debian's (`/usr/bin/chromium`; `.ci/run` installs it); the browser tests skip when
it is absent, except under CI=true, where its absence fails them."""
from __future__ import annotations

import os
from http import HTTPStatus
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connector.clearinghouse.testing import ClearingHouseProcess
from support.nodes import SHARED_SECRET, NodeProcess, free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.11.0.min.js"
OPEN = {"permission": [{"action": "use"}]}
RESEARCH = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "purpose", "operator": "isA", "rightOperand": {"@id": "hks:MedicalResearch"}}]}]}
GZ_ONLY = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "hks:recipientJurisdiction", "operator": "eq", "rightOperand": "CN-GD-GZ"}]}]}
PASSWORDS = {"alice": "alice-operator-pw", "bob": "bob-viewer-pw-1", "root": "root-admin-pw-1",
             "carol": "carol-operator-pw"}  # carol: the provider's operator, added by the test that signs her in
ROLES = {"alice": "operator", "bob": "viewer", "root": "admin"}


def chromium_or_skip() -> str:
    """The browser's path; a skip when it is missing here, a failure when CI=true."""
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run: {missing}")
        pytest.skip(missing)
    return CHROMIUM


def add_user(node: NodeProcess, username: str, role: str, password: str) -> None:
    subprocess.run([sys.executable, "-m", "connector", "user", "add", str(node.directory), username,
                    "--role", role, "--password-stdin"], input=password + "\n", text=True, check=True,
                   capture_output=True)


class Space:
    """A clearing house, a provider (Pearl River, CN-GD-GZ) and a consumer (Harbour Lab, HK)."""

    def __init__(self, base: Path) -> None:
        port = free_port()
        self.ch = ClearingHouseProcess(base / "ch", shared_secret=SHARED_SECRET, port=port)
        env = {"CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{port}",
               "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": self.ch.verifier_key,
               "CONNECTOR_CLEARINGHOUSE_AUDIENCE": self.ch.audience}
        # participant ids without spaces: the clearing house's entries refuse them
        self.provider = NodeProcess(base / "pearl", "Pearl River Medical Centre", jurisdiction="CN-GD-GZ", env=env,
                                    participant_id=f"urn:hks:participant:pearl-river-{secrets.token_hex(3)}")
        self.consumer = NodeProcess(base / "harbour", "Harbour University Research Lab", jurisdiction="HK", env=env,
                                    participant_id=f"urn:hks:participant:harbour-lab-{secrets.token_hex(3)}")
        for node in (self.provider, self.consumer):
            subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(self.ch.directory),
                            "--node", str(node.directory)], check=True, capture_output=True)
        for name, role in ROLES.items():
            add_user(self.consumer, name, role, PASSWORDS[name])
        (self.provider.directory / "data").mkdir(exist_ok=True)
        (self.provider.directory / "data" / "visits.csv").write_text("patient_id,age\nP1,40\nP2,51\n")

    def start(self) -> "Space":
        self.ch.start()
        self.provider.start()
        self.consumer.start()
        p = self.provider
        for pid, body in (("open", OPEN), ("research", RESEARCH), ("gz-only", GZ_ONLY)):
            p.api("POST", "/policies", {"id": pid, "policy": body}, expect=201)
        p.api("POST", "/assets", {"id": "visits", "title": "Outpatient visits 2025 (synthetic)",
                                  "contentType": "text/csv", "dataAddress": {"type": "file", "path": "visits.csv"}},
              expect=201)
        p.api("POST", "/offers", {"id": "visits-research", "assetIds": ["visits"], "accessPolicyId": "open",
                                  "contractPolicyId": "research"}, expect=201)
        p.api("POST", "/assets", {"id": "registry", "title": "Guangzhou registry extract"}, expect=201)
        p.api("POST", "/offers", {"id": "registry-gz", "assetIds": ["registry"], "accessPolicyId": "open",
                                  "contractPolicyId": "gz-only"}, expect=201)
        return self

    def stop(self) -> None:
        for process in (self.consumer, self.provider, self.ch):
            process.stop()


class Watched:
    """A page whose console errors and uncaught exceptions are collected. The browser logs a
    page that answers 4xx as an error too: a test that expects such an answer says `allow(403)`."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.allowed: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def allow(self, status: int) -> None:
        self.allowed.add(status)

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        if any(msg.text == f"Failed to load resource: the server responded with a status of {s} "
               f"({HTTPStatus(s).phrase})" for s in self.allowed):
            return
        self.errors.append(msg.text)


def sign_in(page: Any, base: str, username: str, *, user_label: str = "Username", password_label: str = "Password",
            button: str = "Sign in") -> None:
    page.goto(base + "/console/")
    page.get_by_label(user_label).fill(username)
    page.get_by_label(password_label).fill(PASSWORDS[username])
    page.get_by_role("button", name=button).click()
    page.wait_for_url(base + "/console/")


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Any) -> list[dict]:
    """Serious and critical axe-core violations of the page as it is now (axe is injected by
    the test, in a context that bypasses the page's CSP for it)."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]
