"""Attacks on the operator console (/console/) of a real node process, over real HTTP: a forged
or replayed form post, a forged sign-in, a viewer acting, a stolen node.db opening a session,
an open redirect after sign-in, and pages without a Content-Security-Policy."""
from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import httpx
import pytest

from support.nodes import NodeProcess

pytestmark = pytest.mark.slow
PASSWORDS = {"olivia": "olivia-operator-pw", "victor": "victor-viewer-pw"}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("console-sec") / "node", "Harbour")
    for user, role in (("olivia", "operator"), ("victor", "viewer")):
        subprocess.run([sys.executable, "-m", "connector", "user", "add", str(n.directory), user, "--role", role,
                        "--password-stdin"], input=PASSWORDS[user] + "\n", text=True, check=True, capture_output=True)
    n.start()
    n.api("POST", "/assets", {"id": "a1", "title": "A1"}, expect=201)
    try:
        yield n
    finally:
        n.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def signed_in(node: NodeProcess, user: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=node.url, timeout=30)
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "username": user,
                                                 "password": PASSWORDS[user], "next": "/console/"})
    assert answer.status_code == 303, answer.text[:300]
    page = client.get("/console/")
    assert page.status_code == 200
    return client, csrf_of(page.text)


def test_forged_console_post_without_the_session_csrf_token_is_refused(node):
    client, csrf = signed_in(node, "olivia")
    before = len(node.api("GET", "/negotiations", expect=200))
    body = {"address": "http://127.0.0.1:9", "dataset": "d", "offer": "o"}
    for forged in ({}, {"csrf": "x" * 43}, {"csrf": csrf + "x"}):
        answer = client.post("/console/negotiations", data={**body, **forged})
        assert answer.status_code == 403
        assert "not sent from your current session" in answer.text
    # a download counts a use: it is a form post with the token too
    assert client.post("/console/transfers/t1/data", data={"purpose": "x"}).status_code == 403
    assert client.get("/console/transfers/t1/data").status_code == 405
    assert len(node.api("GET", "/negotiations", expect=200)) == before


def test_replayed_form_post_after_sign_out_is_refused(node):
    client, csrf = signed_in(node, "olivia")
    cookie = client.cookies.get("hks_console")
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
    replay = httpx.Client(base_url=node.url, timeout=30, cookies={"hks_console": cookie})
    answer = replay.post("/console/negotiations/x/terminate", data={"csrf": csrf})
    assert answer.status_code == 401  # the session is gone: its token with it


def test_forged_sign_in_without_the_login_token_is_refused(node):
    answer = httpx.post(node.url + "/console/login", timeout=30,
                        data={"username": "olivia", "password": PASSWORDS["olivia"], "next": "/console/"})
    assert answer.status_code == 403 and "hks_console=" not in answer.headers.get("set-cookie", "")


def test_viewer_acting_through_the_console_is_told_not_allowed(node):
    client, csrf = signed_in(node, "victor")
    answer = client.post("/console/negotiations", data={"csrf": csrf, "address": "http://127.0.0.1:9",
                                                        "dataset": "d", "offer": "o"})
    assert answer.status_code == 403 and "Not allowed" in answer.text
    assert client.post("/console/transfers/t1/data", data={"csrf": csrf}).status_code == 403


def test_session_from_a_stolen_database_opens_nothing(node):
    client, _ = signed_in(node, "olivia")
    cookie = client.cookies.get("hks_console")
    db = sqlite3.connect(node.settings.database_url.split(":///", 1)[1])
    stored = [r[0] for r in db.execute("SELECT id_sha256 FROM console_sessions")]
    hashes = [r[0] for r in db.execute("SELECT password_hash FROM console_users")]
    db.close()
    assert cookie not in stored and all(h.startswith("$argon2id$") for h in hashes)
    for value in stored:  # what the database keeps is not a session
        thief = httpx.Client(base_url=node.url, timeout=30, cookies={"hks_console": value})
        assert thief.get("/console/").status_code in (302, 303)
    raw = httpx.post(node.url + "/console/login", timeout=30)
    assert raw.status_code == 403


def test_session_cookie_is_not_readable_by_scripts_nor_sent_cross_site(node):
    client = httpx.Client(base_url=node.url, timeout=30)
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "username": "olivia",
                                                 "password": PASSWORDS["olivia"]})
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("hks_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie


def test_open_redirect_after_sign_in_is_refused(node):
    client = httpx.Client(base_url=node.url, timeout=30)
    form = client.get("/console/login?next=//evil.example/x")
    assert re.search(r'<input type="hidden" name="next" value="/console/">', form.text)
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "username": "olivia",
                                                 "password": PASSWORDS["olivia"], "next": "https://evil.example/"})
    assert answer.headers["location"] == "/console/"
    switched = client.get("/console/language?lang=zh_Hans&next=https://evil.example/")
    assert switched.headers["location"] == "/console/"


def test_console_pages_without_a_strict_content_security_policy(node):
    for path in ("/console/login", "/console/", "/console/static/console.js"):
        answer = httpx.get(node.url + path, timeout=30)
        csp = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert answer.headers.get("x-frame-options") == "DENY"


def test_password_guessing_is_stopped_after_five_failures(node):
    subprocess.run([sys.executable, "-m", "connector", "user", "add", str(node.directory), "gina", "--role",
                    "viewer", "--password-stdin"], input="gina-right-password\n", text=True, check=True,
                   capture_output=True)
    client = httpx.Client(base_url=node.url, timeout=30)
    token = csrf_of(client.get("/console/login").text)
    for guess in range(5):
        answer = client.post("/console/login", data={"csrf": token, "username": "gina", "password": f"guess-{guess}"})
        assert answer.status_code == 401
    answer = client.post("/console/login", data={"csrf": token, "username": "gina", "password": "gina-right-password"})
    assert answer.status_code == 429 and "hks_console=" not in answer.headers.get("set-cookie", "")
    assert signed_in(node, "olivia")[0].get("/console/").status_code == 200  # others are not held up
