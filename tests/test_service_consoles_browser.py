"""The station's and the clearing house's consoles in a real browser (Debian's Chromium through
Playwright) against real processes. Station: a station with Pearl River enrolled and registered;
its operator lists participants (status, jurisdiction, certificate expiry), enrols a clinic from
an uploaded CSR (a bad jurisdiction is refused next to its field, with the station's own rule),
revokes it, and searches the registry. A forged post is refused and a viewer is told "not
allowed"; nothing changes at the station. Clearing house: after a real negotiation, its console
shows the log's size, its signed checkpoint verified, counts per participant and the audit of
the process, each entry verified. axe-core finds no serious violation on any of these screens."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity.pki import make_csr
from support.console import Space, add_user as add_node_user, Watched, axe_violations, chromium_or_skip, shot
from support.nodes import NodeProcess, StationProcess

pytestmark = pytest.mark.slow
PASSWORDS = {"ann": "ann-operator-pw-1", "vic": "vic-viewer-pw-1"}
ROLES = {"ann": "operator", "vic": "viewer"}


def add_users(service: str, directory) -> None:
    for name, role in ROLES.items():
        out = subprocess.run([sys.executable, "-m", "connector", service, "user", "add", str(directory), name,
                              "--role", role, "--password-stdin"], input=PASSWORDS[name] + "\n", text=True,
                             capture_output=True)
        assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def browser():
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def station_net(tmp_path_factory):
    chromium_or_skip()
    base = tmp_path_factory.mktemp("station-console")
    station = StationProcess(base / "station")
    add_users("station", station.directory)
    station.start()
    pearl = NodeProcess(base / "pearl", "Pearl River Medical Centre", station=station, jurisdiction="CN-GD-GZ")
    harbour = NodeProcess(base / "harbour", "Harbour University Research Lab", station=station, jurisdiction="HK")
    add_node_user(harbour, "ann", "operator", PASSWORDS["ann"])
    try:
        pearl.start()
        harbour.start()
        pearl.api("POST", "/assets", {"id": "visits", "title": "Outpatient visits 2025 (synthetic)",
                                      "properties": {"theme": "health", "keywords": ["diabetes"]}}, expect=201)
        pearl.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        pearl.api("POST", "/offers", {"id": "visits-offer", "assetIds": ["visits"], "accessPolicyId": "open",
                                      "contractPolicyId": "open"}, expect=201)
        deadline = time.monotonic() + 30
        while not station.admin("GET", "/registry/search?jurisdiction=CN-GD-GZ")["results"]:
            assert time.monotonic() < deadline, "Pearl River's offer never reached the registry"
            time.sleep(0.2)
        yield station, pearl, harbour
    finally:
        harbour.stop()
        pearl.stop()
        station.stop()


def new_page(browser, locale: str = "en-GB", **kw) -> Watched:
    context = browser.new_context(locale=locale, timezone_id="Asia/Hong_Kong", **kw)
    context.set_default_timeout(30_000)
    return Watched(context.new_page())


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/console/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORDS[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/console/")


def csr_file(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.csr"
    path.write_bytes(make_csr(ec.generate_private_key(ec.SECP256R1()), name))
    return str(path)


def test_station_console_lists_enrols_from_a_csr_revokes_and_searches(station_net, browser, tmp_path):
    station, pearl, _ = station_net
    w = new_page(browser)
    page, base = w.page, station.url
    sign_in(page, base, "ann")
    page.get_by_role("heading", name="Participants").wait_for()
    pearl_row = page.locator("tr.participant", has_text="Pearl River Medical Centre")
    assert "CN-GD-GZ" in pearl_row.inner_text() and pearl_row.get_attribute("data-status") == "active"
    expires = station.admin("GET", f"/admin/participants/{pearl.participant_id}")
    assert "Asia/Hong_Kong" in pearl_row.locator("td").nth(4).inner_text(), expires  # the expiry, in the viewer's zone
    shot(page, "station-participants")

    # the station's own rule, next to the field it is about; nothing enrolled
    enrolled_before = len(station.admin("GET", "/admin/participants", expect=200))
    w.allow(400)
    page.get_by_label("Organisation name").fill("Kowloon Clinic")
    page.get_by_label("Jurisdiction").fill("Kowloon!")
    page.get_by_label("Certificate signing request (PEM file)").set_input_files(csr_file(tmp_path, "kowloon"))
    page.get_by_role("button", name="Enrol", exact=True).click()
    assert "jurisdiction" in page.locator("#jurisdiction-error").inner_text()
    assert page.get_by_label("Jurisdiction").get_attribute("aria-describedby") == "jurisdiction-error"
    assert len(station.admin("GET", "/admin/participants", expect=200)) == enrolled_before

    page.get_by_label("Jurisdiction").fill("HK")
    page.get_by_label("Certificate signing request (PEM file)").set_input_files(csr_file(tmp_path, "kowloon"))
    page.get_by_role("button", name="Enrol", exact=True).click()
    page.locator("#enrolled").wait_for()
    enrolled = [p for p in station.admin("GET", "/admin/participants") if p["organisation"] == "Kowloon Clinic"]
    assert len(enrolled) == 1 and enrolled[0]["jurisdiction"] == "HK" and enrolled[0]["status"] == "active"
    assert enrolled[0]["participantId"] in page.locator("#enrolled").inner_text()

    # revoke it, with a reason: the station's revocation feed has it
    row = page.locator("tr.participant", has_text="Kowloon Clinic")
    row.get_by_label("Reason").fill("left the data space")
    row.get_by_role("button", name="Revoke Kowloon Clinic").click()
    page.locator('tr.participant[data-status="revoked"]', has_text="Kowloon Clinic").wait_for()
    assert station.admin("GET", f"/admin/participants/{enrolled[0]['participantId']}")["status"] == "revoked"
    feed = httpx.get(station.url + "/revocations?since=0", timeout=10).json()["revoked"]
    assert [r["participantId"] for r in feed] == [enrolled[0]["participantId"]]

    # the registry: Pearl River's offer, found by jurisdiction and theme; a bad theme is the station's error
    page.get_by_role("link", name="Registry").click()
    page.get_by_label("Provider jurisdiction").fill("CN-GD-GZ")
    page.get_by_label("Theme").fill("health")
    page.get_by_role("button", name="Search the registry").click()
    result = page.locator("tr.registry-result")
    assert result.count() == 1 and "visits" in result.inner_text() and "Pearl River" in result.inner_text()
    shot(page, "station-registry")
    page.get_by_label("Theme").fill("no-such-theme")
    page.get_by_role("button", name="Search the registry").click()
    assert "unknown theme" in page.locator("#registry-error").inner_text()
    assert w.errors == []


def test_station_console_in_traditional_chinese(station_net, browser):
    station, _, _ = station_net
    w = new_page(browser, locale="zh-HK")
    page, base = w.page, station.url
    page.goto(base + "/console/")
    assert page.locator("html").get_attribute("lang") == "zh-Hant-HK"
    page.locator("#username").fill("vic")
    page.locator("#password").fill(PASSWORDS["vic"])
    page.locator("form.card button[type=submit]").click()
    page.wait_for_url(base + "/console/")
    assert page.get_by_role("heading", level=1).inner_text() == "參與者"
    shot(page, "zh-station-participants")
    assert w.errors == []


def test_station_console_refuses_a_forged_post_and_a_viewers_action(station_net, browser, tmp_path):
    station, pearl, _ = station_net
    before = station.admin("GET", "/admin/participants")
    w = new_page(browser)
    page, base = w.page, station.url
    sign_in(page, base, "ann")
    form = {"name": "Forged Ltd", "jurisdiction": "HK"}
    for token in (None, "forged-token"):  # the session cookie goes along, as in a cross-site post
        answer = page.request.post(f"{base}/console/participants", max_redirects=0,
                                   form={**form, **({"csrf": token} if token else {})})
        assert answer.status == 403 and "not sent from your current session" in answer.text()
    answer = page.request.post(f"{base}/console/participants/{pearl.participant_id}/revoke", max_redirects=0,
                               form={"csrf": "forged-token"})
    assert answer.status == 403

    v = new_page(browser)
    sign_in(v.page, base, "vic")
    assert v.page.get_by_role("button", name=re.compile("^Revoke")).count() == 0  # no button to press
    assert v.page.get_by_role("heading", name="Enrol a participant").count() == 0
    csrf = v.page.locator('form.logout input[name="csrf"]').get_attribute("value")
    answer = v.page.request.post(f"{base}/console/participants/{pearl.participant_id}/revoke", max_redirects=0,
                                 form={"csrf": csrf, "reason": "a viewer tries"})
    assert answer.status == 403 and "Not allowed" in answer.text() and "viewer" in answer.text()
    path = tmp_path / "x.csr"
    path.write_bytes(make_csr(ec.generate_private_key(ec.SECP256R1()), "Viewer Ltd"))
    answer = v.page.request.post(f"{base}/console/participants", max_redirects=0, multipart={
        "csrf": csrf, "name": "Viewer Ltd", "jurisdiction": "HK",
        "csr_file": {"name": "x.csr", "mimeType": "application/pkcs10", "buffer": path.read_bytes()}})
    assert answer.status == 403 and "Not allowed" in answer.text()
    assert station.admin("GET", "/admin/participants") == before  # nothing enrolled, nothing revoked
    assert w.errors == [] and v.errors == []


def test_station_console_screens_have_no_serious_accessibility_violations(station_net, browser):
    station, _, _ = station_net
    w = new_page(browser, bypass_csp=True)  # to inject axe-core
    page, base = w.page, station.url
    page.goto(base + "/console/login")
    found = {"login": axe_violations(page)}
    sign_in(page, base, "ann")
    for name, path in (("participants", "/console/"), ("registry", "/console/registry?jurisdiction=CN-GD-GZ")):
        page.goto(base + path)
        found[name] = axe_violations(page)
    assert {k: v for k, v in found.items() if v} == {}


def test_node_console_finds_offers_through_the_station_registry(station_net, browser):
    station, pearl, harbour = station_net
    w = new_page(browser)
    page, base = w.page, harbour.url
    sign_in(page, base, "ann")
    page.get_by_role("link", name="Catalog").click()
    page.get_by_label("Provider jurisdiction").fill("CN-GD-GZ")
    page.get_by_label("Theme").fill("health")
    page.get_by_label("Purpose").fill("research")
    page.get_by_label("Usable by (jurisdiction)").fill("HK")
    page.get_by_role("button", name="Search the registry").click()
    result = page.locator("tr.registry-result")
    assert result.count() == 1 and "Pearl River Medical Centre" in result.inner_text()
    shot(page, "node-registry-search")
    result.get_by_role("link", name="Show catalog").click()  # the offer itself, from Pearl River's catalog
    assert "visits-offer" in page.locator("section.offer").first.inner_text()
    page.get_by_label("Provider jurisdiction").fill("SG")  # nobody enrolled there offers anything
    page.get_by_role("button", name="Search the registry").click()
    assert page.locator("tr.registry-result").count() == 0 and page.get_by_text("No offers found.").is_visible()
    assert w.errors == []


def test_node_dashboard_shows_when_the_station_token_expires(station_net, browser):
    """Harbour Lab fetched a station token (DAT) to register at the station: the dashboard says
    when it expires, in the viewer's language and time zone, the zone named."""
    _station, _pearl, harbour = station_net
    w = new_page(browser)
    page, base = w.page, harbour.url
    sign_in(page, base, "ann")
    page.goto(base + "/console/")  # the time-zone cookie set by the first page is read from now on
    status = page.locator("#token-status").inner_text()
    assert "valid until" in status and "(Asia/Hong_Kong)" in status, status
    page.goto(base + "/console/language?lang=zh_Hant_HK&next=/console/")
    status = page.locator("#token-status").inner_text()
    assert "有效至" in status and "(Asia/Hong_Kong)" in status, status
    shot(page, "zh-hant-dashboard-token")
    assert w.errors == []


# ------------------------------------------------------------------ clearing house

@pytest.fixture(scope="module")
def house(tmp_path_factory):
    chromium_or_skip()
    s = Space(tmp_path_factory.mktemp("ch-console"))
    add_users("clearinghouse", s.ch.directory)
    s.start()
    try:
        neg = s.consumer.api("POST", "/negotiations", {
            "counterPartyAddress": s.provider.url, "counterPartyId": s.provider.participant_id,
            "datasetId": "visits", "offerId": "visits-research"}, expect=201)
        assert s.consumer.wait_state(neg["id"])["state"] == "FINALIZED"
        deadline = time.monotonic() + 30
        while s.ch.size() < 4:  # both parties log the agreement and its verification, finalization
            assert time.monotonic() < deadline, "the entries never reached the clearing house"
            time.sleep(0.2)
        yield s
    finally:
        s.stop()


def test_clearing_house_console_shows_the_log_and_audits_a_process(house, browser):
    ch = house.ch
    w = new_page(browser)
    page, base = w.page, ch.url
    sign_in(page, base, "vic")  # reading needs no more than a viewer
    size = ch.size()
    assert int(page.locator("#log-size").inner_text()) >= size
    assert page.locator("#checkpoint-verified").is_visible()
    origin = httpx.get(ch.url + "/log", timeout=10).json()["origin"]
    assert page.locator("#checkpoint").inner_text().startswith(origin)  # the signed note itself
    counts = page.locator("#counts").inner_text()
    assert house.provider.participant_id in counts and house.consumer.participant_id in counts
    shot(page, "clearinghouse-log")

    page.locator("#recent a").first.click()
    page.wait_for_url(re.compile(r".*/console/audit\?process=.+"))
    rows = page.locator("#entries tbody tr")
    assert rows.count() >= 2
    assert page.locator("#entries .verified").count() == rows.count()  # every entry verified in place
    shot(page, "clearinghouse-audit")

    w.allow(404)
    page.get_by_label("Process id").fill("no-such-process")
    page.get_by_role("button", name="Audit", exact=True).click()
    assert "no entries" in page.locator("#process-error").inner_text()
    assert w.errors == []


def test_clearing_house_console_screens_have_no_serious_accessibility_violations(house, browser):
    ch = house.ch
    w = new_page(browser, bypass_csp=True)
    page, base = w.page, ch.url
    page.goto(base + "/console/login")
    found = {"login": axe_violations(page)}
    sign_in(page, base, "ann")
    found["log"] = axe_violations(page)
    page.locator("#recent a").first.click()
    page.wait_for_url(re.compile(r".*/console/audit\?process=.+"))
    found["audit"] = axe_violations(page)
    assert {k: v for k, v in found.items() if v} == {}


def test_clearing_house_console_shows_an_altered_entry_as_not_verified(house, browser):
    """Last in the module: it alters the log's database under the running clearing house."""
    import sqlite3

    ch = house.ch
    w = new_page(browser)
    page, base = w.page, ch.url
    sign_in(page, base, "vic")
    page.locator("#recent a").first.click()
    page.wait_for_url(re.compile(r".*/console/audit\?process=.+"))
    process = page.get_by_label("Process id").input_value()
    db = sqlite3.connect(ch.sqlite_path)
    try:
        with db:
            seq, entry = db.execute("SELECT seq, entry FROM ch_entries WHERE process_id = ? ORDER BY seq LIMIT 1",
                                    (process,)).fetchone()
            db.execute("UPDATE ch_entries SET entry = ? WHERE seq = ?", (entry + " ", seq))
    finally:
        db.close()
    page.reload()
    bad = page.locator("#entries tbody tr.refused")
    assert bad.count() == 1 and f"#{seq}" in bad.inner_text() and "does not verify" in bad.inner_text()
    assert page.locator("#entries .verified").count() == page.locator("#entries tbody tr").count() - 1
    shot(page, "clearinghouse-audit-altered")
    assert w.errors == []
