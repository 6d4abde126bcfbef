"""Attacks on the station's console (/console/ of a real `connector station run`), over plain
HTTP without a browser: a forged form post (no token, another session's token), a viewer trying
to act, an open redirect after sign-in, and the station's own admin token used as a console
session. Each is refused and changes nothing at the station."""
from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity.pki import make_csr
from support.nodes import StationProcess

PASSWORDS = {"ann": "ann-operator-pw-1", "vic": "vic-viewer-pw-1"}
ROLES = {"ann": "operator", "vic": "viewer"}


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    s = StationProcess(tmp_path_factory.mktemp("station-console-attacks") / "station")
    for name, role in ROLES.items():
        subprocess.run([sys.executable, "-m", "connector", "station", "user", "add", str(s.directory), name,
                        "--role", role, "--password-stdin"], input=PASSWORDS[name] + "\n", text=True,
                       capture_output=True, check=True)
    s.start()
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "Lantau Labs").decode()
    s.admin("POST", "/admin/participants", {"name": "Lantau Labs", "jurisdiction": "HK", "csr": csr}, expect=201)
    try:
        yield s
    finally:
        s.stop()


def signed_in(station: StationProcess, username: str, *, next_: str = "/console/") -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=station.url, follow_redirects=False, timeout=20)
    form = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/console/login", data={"csrf": token, "username": username, "password": PASSWORDS[username],
                                                 "next": next_})
    assert answer.status_code == 303
    page = client.get("/console/")
    csrf = re.search(r'form method="post" action="/console/logout" class="logout">\s*<input type="hidden" '
                     r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client, csrf


def participant(station: StationProcess) -> dict:
    return next(p for p in station.admin("GET", "/admin/participants") if p["organisation"] == "Lantau Labs")


def test_forged_revoke_without_the_sessions_token_is_refused(station):
    client, _ = signed_in(station, "ann")
    pid = participant(station)["participantId"]
    other, other_csrf = signed_in(station, "ann")  # a token of another session of the same user
    for form in ({}, {"csrf": "forged"}, {"csrf": other_csrf}):
        answer = client.post(f"/console/participants/{pid}/revoke", data={**form, "reason": "forged"})
        assert answer.status_code == 403 and "not sent from your current session" in answer.text
    assert participant(station)["status"] == "active"


def test_viewer_enrolling_or_revoking_is_not_allowed(station):
    client, csrf = signed_in(station, "vic")
    before = station.admin("GET", "/admin/participants")
    pid = participant(station)["participantId"]
    answer = client.post(f"/console/participants/{pid}/revoke", data={"csrf": csrf})
    assert answer.status_code == 403 and "Not allowed" in answer.text and "viewer" in answer.text
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "Viewer Ltd")
    answer = client.post("/console/participants", data={"csrf": csrf, "name": "Viewer Ltd", "jurisdiction": "HK"},
                         files={"csr_file": ("x.csr", csr, "application/pkcs10")})
    assert answer.status_code == 403 and "Not allowed" in answer.text
    assert station.admin("GET", "/admin/participants") == before


def test_sign_in_redirect_to_another_site_is_refused(station):
    for target in ("//evil.example/", "https://evil.example/console/", "/console/\\evil"):
        client = httpx.Client(base_url=station.url, follow_redirects=False, timeout=20)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
        answer = client.post("/console/login", data={"csrf": token, "username": "ann", "password": PASSWORDS["ann"],
                                                     "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/"


def test_admin_token_as_a_console_session_is_refused(station):
    client = httpx.Client(base_url=station.url, follow_redirects=False, timeout=20,
                          cookies={"hks_console": station.admin_token},
                          headers={"Authorization": f"Bearer {station.admin_token}"})
    assert client.get("/console/").status_code == 303  # to the sign-in page: no session
    pid = participant(station)["participantId"]
    answer = client.post(f"/console/participants/{pid}/revoke", data={"csrf": "x"})
    assert answer.status_code == 401
    assert participant(station)["status"] == "active"
    assert "Content-Security-Policy" in answer.headers and "default-src 'none'" in answer.headers["Content-Security-Policy"]
