"""The console without a browser: its message catalogs are complete for every message the code
and templates use, the language is chosen as the viewer asks, dates carry their zone, the
`connector user add` rules, and `[console] enabled = false` takes it off a real node."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from connector.console import i18n
from conftest import BACKENDS, database_url
from support.nodes import NodeProcess

CONSOLE = Path(i18n.__file__).parent
POLICY = CONSOLE.parent / "policy"
NODE = CONSOLE.parent / "node"
COMPUTE = CONSOLE.parent / "compute"


def used_messages() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(CONSOLE), method_map=method_map, options_map=options, keywords={"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}):
        found.add(message if isinstance(message, str) else message[0])
    # the policy engine's sentences, and the node's own (its data plane's and its compute service's
    # refusals, a missed deadline): message ids in Msg(...) calls and M_(...) marks
    for folder in (POLICY, NODE, COMPUTE):
        for _file, _line, message, _comments, _context in extract_from_dir(
                str(folder), method_map=[("**.py", "python")], keywords={"Msg": None, "M_": None}):
            found.add(message if isinstance(message, str) else message[0])
    from connector.console.policy_words import TEMPLATE_TEXTS, WORDS
    return found | set(WORDS) | set(TEMPLATE_TEXTS)


@pytest.mark.parametrize("locale", ["zh_Hant_HK", "zh_Hans"])
def test_every_message_the_console_uses_is_translated(locale):
    with open(CONSOLE / "locales" / locale / "LC_MESSAGES" / "messages.po", "rb") as fp:
        catalog = read_po(fp, locale=locale)
    translated = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog
                  if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)}
    missing = sorted(used_messages() - translated)
    assert missing == [], f"{locale}: untranslated: {missing[:10]}"


def test_every_vocabulary_word_in_the_engines_sentences_is_listed_for_the_catalogs():
    from connector.console.policy_words import WORDS
    from connector.policy.vocab import DUTY_KIND_LABELS, LEFT_OPERANDS
    needed = {w for lo in LEFT_OPERANDS.values() for w in (lo.label, lo.missing) if w}
    needed |= {kind.replace("-", " ") for kind in DUTY_KIND_LABELS}
    assert sorted(needed - set(WORDS)) == []


def test_every_templates_title_and_description_is_listed_for_the_catalogs():
    from connector.console.policy_words import TEMPLATE_TEXTS
    from connector.console.views import TEMPLATES
    needed = {orjson.loads(body)[key] for body in TEMPLATES.values() for key in ("dct:title", "dct:description")}
    assert TEMPLATES and sorted(needed - set(TEMPLATE_TEXTS)) == []


def test_a_stored_engine_sentence_renders_in_the_viewers_language():
    """An access refused by the engine keeps its sentences as message ids (access_log.reason_msgs):
    read back, they render in Chinese; an old row without them, or a damaged one, shows its text."""
    from connector.console import i18n
    from connector.console.views import access_reasons
    from connector.policy import Context, Request
    from connector.policy.explain import msg_from_json, msg_to_json
    from connector.node.usage import PolicyCache
    policy = PolicyCache().compile({"permission": [{"action": "use", "constraint": [
        {"leftOperand": "purpose", "operator": "isA", "rightOperand": {"@id": "hks:MedicalResearch"}}]}]})
    decision = policy.evaluate(Request(action="use"), Context.from_dict({"now": "2026-01-01T00:00:00Z"}))
    assert not decision.permitted
    stored = orjson.loads(orjson.dumps([msg_to_json(r.sentence()) for r in decision.reasons]))
    english = [r.message for r in decision.reasons]
    assert [str(msg_from_json(m)) for m in stored] == english  # the same sentence read back
    row = {"reasons": english, "reasonMessages": stored}
    try:
        i18n.activate("zh_Hant_HK")
        chinese = access_reasons(row)
        assert chinese != english
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in chinese), chinese
        assert access_reasons({"reasons": english, "reasonMessages": None}) == english
        assert access_reasons({"reasons": english, "reasonMessages": [{"m": 3}]}) == english
        deep: dict = {"m": "%(x)s", "p": {}}
        for _ in range(20):
            deep = {"m": "%(x)s", "p": {"x": deep}}
        with pytest.raises(ValueError):
            msg_from_json(deep)
    finally:
        i18n.activate("en")


def _node_sentences() -> list:
    """The node's own refusals and endings in its own words, as its code builds them."""
    from connector.node.dataplane import NO_DATA_ADDRESS
    from connector.node.durable import deadline_reason, own_messages
    from connector.node.usage import PolicyCache, access_refusal, joined
    from connector.identity import Caller
    caller = Caller("urn:hks:participant:x", {})
    gone = access_refusal(PolicyCache(), None, caller=caller, target="visits", now=0, asset_properties=None,
                          offer_id="visits-open")
    broken = access_refusal(PolicyCache(), {"permission": "not a rule"}, caller=caller, target="visits", now=0,
                            asset_properties=None)
    entry = {"kind": "TransferRequestMessage:initial"}
    found = [NO_DATA_ADDRESS, *gone, *broken, joined("; ", [NO_DATA_ADDRESS, *gone])]
    for cause in ("TransientSendError: the peer could not be reached", "TransientSendError: the peer answered 503",
                  "the provider's process id is not known yet"):
        found.append(deadline_reason(entry, cause))
    assert all(own_messages(s) for s in found), "a sentence of ours without its message id"
    return found


@pytest.mark.parametrize("locale", ["zh_Hant_HK", "zh_Hans"])
def test_the_nodes_own_refusals_render_in_chinese_and_stay_english_for_the_api(locale):
    """A data-plane refusal or a missed deadline in the node's own words: stored as message ids
    beside the English (which is what it always was), read back, rendered in Chinese."""
    from connector.policy.explain import msg_from_json
    from connector.node.durable import own_messages
    catalog = _catalog(locale)
    english = {"the asset has no data address: there is nothing this node could deliver",
               "the offer 'visits-open' is no longer offered for 'visits': refused (fail closed)",
               "the offer's access policy could not be evaluated: refused (fail closed)",
               "our TransferRequestMessage could not be delivered before its deadline: TransientSendError: "
               "the peer could not be reached"}
    sentences = _node_sentences()
    assert english <= {str(s) for s in sentences} and all(type(str(s)) is str for s in sentences)
    i18n.activate(locale)
    try:
        for s in sentences:
            stored = orjson.loads(orjson.dumps(own_messages(s)["reasonMessages"]))
            msg = msg_from_json(stored[0])
            assert str(msg) == s  # the English read back is the text the API keeps
            assert sorted(i for i in msg.ids() if i.strip() and i not in catalog) == []
            text = i18n.sentence(msg)
            assert re.search(r"[\u4e00-\u9fff]", text) and text != s, (s, text)
        assert "TransientSendError" in i18n.sentence(msg_from_json(own_messages(sentences[-3])["reasonMessages"][0]))
    finally:
        i18n.activate("en")


def test_a_suspension_shows_the_peers_words_under_the_label_and_ours_translated():
    from connector.console.views import error_shown
    from connector.node.transfers import suspension_text
    try:
        i18n.activate("zh_Hant_HK")
        told = suspension_text("provider", "<b>maintenance</b> " + "x" * 900, peer=True)
        assert told.startswith("suspended by the provider: <b>maintenance</b>")
        shown = error_shown({"role": "consumer", "error": told, "termination": None})
        assert shown["peer"] and shown["lead"] == "對方已暫停此傳輸。" and len(shown["lines"][0]) <= 501  # 500 and an ellipsis
        mine = error_shown({"role": "consumer", "error": suspension_text("consumer", None), "termination": None})
        assert not mine["peer"] and mine["lead"] == "本節點已暫停此傳輸。" and mine["lines"] == []
        ended = {"role": "provider", "error": "our X could not be delivered before its deadline: y",
                 "termination": {"by": "provider", "reason": ["our X could not be delivered before its deadline: y"]}}
        assert error_shown(ended) is None  # shown under "Why it ended" already
        from connector.node.dataplane.common import BROKE_OFF
        broke = error_shown({"role": "consumer", "error": BROKE_OFF + "ClientPayloadError Response payload is "
                             "not completed", "termination": None})
        assert broke["lead"] == "提供方的數據在下載途中中斷：" and broke["lines"] == [
            "ClientPayloadError Response payload is not completed"]
    finally:
        i18n.activate("en")


def _catalog(locale: str) -> dict[str, str]:
    with open(CONSOLE / "locales" / locale / "LC_MESSAGES" / "messages.po", "rb") as fp:
        return {m.id: m.string for m in read_po(fp, locale=locale) if m.id and m.string}


def _policy_sentences():
    """Every template's rules, constraints and duties, and its decisions on requests that
    meet and break each kind of constraint: the engine's sentences as Msgs."""
    from connector.policy import Context, Request, compile_policy
    from connector.policy.explain import duty_msg
    from connector.vocab import policy_contexts
    folder = CONSOLE.parents[1] / "policies"
    contexts = [dict(now="2026-03-01T00:00:00Z", purpose="hks:MedicalResearch", recipient_jurisdiction="HK", use_count=0,
                     agreement_time="2026-01-01T00:00:00Z", data_categories={"pd:Age"}, membership={"hks:StationMember"},
                     security_profile="idsc:TRUST_SECURITY_PROFILE", organisation="did:web:partner.example"),
                dict(now="2028-03-01T00:00:00Z", purpose=["dpv:Marketing", "hks:MedicalResearch"],
                     recipient_jurisdiction="SG", use_count=400, agreement_time="2026-01-01T00:00:00Z",
                     data_categories={"pd:Biometric"}),
                dict()]
    found = []
    for path in sorted(folder.glob("*.jsonld")):
        policy = compile_policy(path.read_text(encoding="utf-8"), contexts=policy_contexts())
        for rule in policy.rules():
            found.append(rule.describe_actions_msg())
            found += [c.describe_msg() for c in rule.constraints]
            found += [duty_msg(d.static) for d in rule.duties]
        for ctx in contexts:
            for action in ("use", "distribute", "hks:compute"):
                decision = policy.evaluate(Request(action=action, target="urn:asset", assignee="did:web:x.example"),
                                           Context.from_dict(ctx))
                found += [r.text for r in decision.reasons]
                found += [duty_msg(d) for d in decision.duties]
    assert all(m is not None for m in found), "a reason without its structured sentence"
    return found


@pytest.mark.parametrize("locale", ["zh_Hant_HK", "zh_Hans"])
def test_every_policy_sentence_renders_in_chinese(locale):
    """The engine's explanation of each template, and its reasons for permitting and refusing,
    rendered through the catalogs: every message id translated, the English kept for the API."""
    catalog = _catalog(locale)
    sentences = _policy_sentences()
    missing = sorted({i for m in sentences for i in m.ids() if i not in catalog})
    assert missing == [], f"{locale}: untranslated policy sentences: {missing[:10]}"
    i18n.activate(locale)
    try:
        for m in sentences:
            text = i18n.sentence(m)
            assert text != str(m) or not any(c.isalpha() and c.isascii() for c in m.id), (m, text)
            assert re.search(r"[\u4e00-\u9fff]", text) or not m.id.strip(), (m, text)
    finally:
        i18n.activate("en")
    assert i18n.sentence(sentences[0]) == str(sentences[0])  # English: the message id itself


def test_station_token_status_warns_when_expiry_is_close():
    """The dashboard's token line: from the newest DAT's claims and the node's clock; a warning in
    the last fifth of the token's life (at least the last two minutes)."""
    from types import SimpleNamespace

    from connector.console.views import Console

    def status(claims, now):
        node = SimpleNamespace(identity=SimpleNamespace(client=SimpleNamespace(claims=claims)),
                               clock=SimpleNamespace(now=lambda: now))
        return Console._token_status(SimpleNamespace(node=node, TOKEN_WARN_SECONDS=120, TOKEN_WARN_SHARE=0.2))

    issued = 1_800_000_000
    assert status({"iat": issued, "exp": issued + 3600}, issued + 60) == {
        "fetched": True, "expires": issued + 3600.0, "seconds_left": 3540, "expired": False, "close": False}
    assert status({"iat": issued, "exp": issued + 3600}, issued + 3000)["close"] is True  # 600 s < 720 s
    assert status({"iat": issued, "exp": issued + 300}, issued + 200)["close"] is True  # 100 s < 120 s
    assert status({"iat": issued, "exp": issued + 300}, issued + 400)["expired"] is True
    assert status({}, issued) == {"fetched": False}
    node = SimpleNamespace(identity=SimpleNamespace(), clock=None)  # the development shared secret: no token
    assert Console._token_status(SimpleNamespace(node=node)) is None


def test_catalogs_compile_when_first_used():
    i18n.translations.cache_clear()
    i18n.activate("zh_Hant_HK")
    assert i18n.gettext("Dashboard") == "總覽"
    i18n.activate("zh_Hans")
    assert i18n.gettext("Dashboard") == "总览"
    i18n.activate("en")
    assert i18n.gettext("Dashboard") == "Dashboard"


@pytest.mark.parametrize("cookie, header, expected", [
    (None, "zh-HK,zh;q=0.9,en;q=0.8", "zh_Hant_HK"),
    (None, "zh-TW", "zh_Hant_HK"),
    (None, "zh-Hant", "zh_Hant_HK"),
    (None, "zh-CN,en;q=0.5", "zh_Hans"),
    (None, "fr-FR,en-GB;q=0.7", "en"),
    (None, "en;q=0.3,zh-HK;q=0.9", "zh_Hant_HK"),
    (None, "", "en"),
    ("zh_Hans", "zh-HK", "zh_Hans"),  # the switch wins
    ("../etc", "zh-HK", "zh_Hant_HK"),  # an unknown cookie is ignored
])
def test_language_from_the_switch_or_accept_language(cookie, header, expected):
    assert i18n.choose(cookie, header) == expected


def test_dates_in_the_viewers_locale_with_the_zone_named():
    hk = i18n.format_time(0, "zh_Hant_HK", ZoneInfo("Asia/Hong_Kong"))
    assert hk.startswith("1970") and "(Asia/Hong_Kong)" in hk and "8:00:00" in hk
    assert i18n.zone("en", "Mars/Olympus").key == "UTC"
    assert i18n.zone("zh_Hans", None).key == "Asia/Shanghai"


def test_user_add_refuses_weak_accounts(tmp_path):
    from connector import config as config_mod

    config_mod.init_directory(tmp_path / "n", name="N", shared_secret="s" * 20)

    def add(*args: str, password: str = "long-enough-pw"):
        return subprocess.run([sys.executable, "-m", "connector", "user", "add", str(tmp_path / "n"), *args,
                               "--password-stdin"], input=password + "\n", text=True, capture_output=True)
    assert "at least 10 characters" in add("ann", password="short").stderr
    assert "role: one of viewer, operator, admin" in add("ann", "--role", "root").stderr
    assert "username" in add("a b").stderr
    assert add("ann", "--role", "operator").returncode == 0
    again = add("ann")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert add("ann", "--replace", "--role", "viewer").returncode == 0


@pytest.mark.slow
def test_console_can_be_turned_off(tmp_path):
    node = NodeProcess(tmp_path / "n", "Off").start(extra_env={"CONNECTOR_CONSOLE_ENABLED": "false"})
    try:
        assert httpx.get(node.url + "/console/login", timeout=10).status_code == 404
        assert httpx.get(node.url + "/health", timeout=10).status_code == 200
    finally:
        node.stop()


def test_the_assets_list_is_a_page_of_the_apis_cursor_paging(tmp_path):
    """The assets screen lists one page (the management API's ?limit= and cursor), links the next,
    and searches every asset on the server (?q=), not only the page shown."""
    node = NodeProcess(tmp_path / "n", "Many Assets").start()
    try:
        total = 105
        for i in range(total):
            node.api("POST", "/assets", {"id": f"asset-{i:03d}", "title": f"Asset number {i}"}, expect=201)
        found = httpx.get(node.url + "/api/v1/assets", params={"q": "NUMBER 10", "limit": "3"},
                          headers=node.headers(), timeout=10)
        assert [a["id"] for a in found.json()] == ["asset-010", "asset-100", "asset-101"]
        assert 'rel="next"' in found.headers["Link"]
        subprocess.run([sys.executable, "-m", "connector", "user", "add", str(node.directory), "ann", "--role",
                        "operator", "--password-stdin"], input="ann-operator-pw-1\n", text=True, check=True,
                       capture_output=True)
        client = httpx.Client(base_url=node.url, timeout=30)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
        assert client.post("/console/login", data={"csrf": token, "username": "ann",
                                                   "password": "ann-operator-pw-1"}).status_code == 303
        first = client.get("/console/assets").text
        shown = re.findall(r"<code>(asset-\d+)</code>", first)
        assert shown == [f"asset-{i:03d}" for i in range(100)]
        following = re.search(r'href="(/console/assets\?[^"]*cursor=[^"]+)" id="assets-next"', first).group(1)
        second = client.get(following.replace("&amp;", "&")).text
        assert re.findall(r"<code>(asset-\d+)</code>", second) == [f"asset-{i:03d}" for i in range(100, total)]
        assert 'id="assets-next"' not in second and "First page" in second
        searched = client.get("/console/assets", params={"q": "number 10"}).text
        assert re.findall(r"<code>(asset-\d+)</code>", searched) == ["asset-010"] + [
            f"asset-{i}" for i in range(100, total)]
        bad = client.get("/console/assets", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 200 and "asset-000" in bad.text  # the first page
        # the offer wizard lists the first page too, and takes any other asset by its id
        wizard = client.get("/console/offers/new").text
        assert len(re.findall(r'name="asset" value=', wizard)) == 100 and 'name="asset_ids"' in wizard
        csrf = re.search(r'name="csrf" value="([^"]+)"', wizard).group(1)
        step = client.post("/console/offers/new", data={"csrf": csrf, "step": "1", "go": "next", "offer_id": "o1",
                                                        "asset": "asset-001", "asset_ids": "asset-104 no-such"})
        assert step.status_code == 400 and "No such asset: no-such" in step.text
        step = client.post("/console/offers/new", data={"csrf": csrf, "step": "1", "go": "next", "offer_id": "o1",
                                                        "asset": "asset-001", "asset_ids": "asset-104"})
        assert step.status_code == 200 and 'name="asset" value="asset-104"' in step.text  # on to step 2
        # the policies screen lists the offers a page at a time too
        node.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        for i in range(total):
            node.api("POST", "/offers", {"id": f"offer-{i:03d}", "assetIds": [f"asset-{i:03d}"],
                                         "accessPolicyId": "open", "contractPolicyId": "open"}, expect=201)
        page = client.get("/console/policies").text
        assert re.findall(r"<td><code>(offer-\d+)</code>", page) == [f"offer-{i:03d}" for i in range(100)]
        following = re.search(r'href="(/console/policies\?offers=[^"#]+)#offers-h" id="offers-next"', page).group(1)
        page = client.get(following.replace("&amp;", "&")).text
        assert re.findall(r"<td><code>(offer-\d+)</code>", page) == [f"offer-{i:03d}" for i in range(100, total)]
        assert 'id="offers-next"' not in page and "First page" in page
        bad = client.get("/console/policies", params={"offers": "not-a-cursor"}).text
        assert re.findall(r"<td><code>(offer-\d+)</code>", bad)[:1] == ["offer-000"]
    finally:
        node.stop()


@pytest.mark.slow
def test_demo_console_prints_a_working_login_for_each_organisation():
    import re
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "connector", "demo", "--console"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        logins = []
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"(http://\S+)/console/\s+login: (\S+) / (\S+)", line)
            if found:
                logins.append(found.groups())
            if "the station authority:" in line or len(logins) == 3 and "station" in line:
                break
        assert len(logins) == 3
        url, user, password = logins[1]  # Harbour University Research Lab
        client = httpx.Client(base_url=url, timeout=30)
        form = client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        assert client.post("/console/login", data={"csrf": token, "username": user, "password": password}
                           ).status_code == 303
        dashboard = client.get("/console/")
        assert dashboard.status_code == 200 and "Harbour University Research Lab" in dashboard.text
        assert "Finalized" in dashboard.text
        services = {}
        for line in proc.stdout:  # then the station's and the clearing house's consoles, with their own logins
            found = re.search(r"the (station|clearing house)'s console:\s+(http://\S+)/console/\s+login: (\S+) / (\S+)",
                              line)
            if found:
                services[found.group(1)] = found.groups()[1:]
            if len(services) == 2:
                break
        for name, (url, user, password) in services.items():
            client = httpx.Client(base_url=url, timeout=30)
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
            assert client.post("/console/login", data={"csrf": token, "username": user, "password": password}
                               ).status_code == 303
            page = client.get("/console/")
            assert page.status_code == 200
            assert ("Harbour University Research Lab" if name == "station" else "Entries per participant") in page.text
        assert set(services) == {"station", "clearing house"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(30) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@pytest.mark.parametrize("backend", BACKENDS)
async def test_accounts_and_sessions_on_both_databases(backend, tmp_path):
    from connector.console import auth
    from connector.store.db import Database

    async with database_url(backend, tmp_path) as url:
        db = Database(url)
        try:
            await db.migrate()
            await auth.add_user(db, "pat", "pat-password-1", "operator")
            assert await auth.authenticate(db, "pat", "pat-password-1") == "operator"
            assert await auth.authenticate(db, "pat", "pat-password-2") is None
            assert await auth.authenticate(db, "nobody", "pat-password-1") is None
            token, csrf = await auth.open_session(db, "pat")
            session = await auth.load_session(db, token)
            assert session is not None and session.csrf == csrf and session.may("operator") and not session.may("admin")
            await auth.add_user(db, "pat", "pat-password-3", "viewer", replace=True)  # signed out everywhere
            assert await auth.load_session(db, token) is None
        finally:
            await db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prefix", ["station", "clearinghouse"])
async def test_a_services_accounts_live_in_its_own_tables_on_both_databases(backend, prefix, tmp_path):
    """The station's and the clearing house's console accounts: their own tables, next to a node's
    in one database if need be, and a node account does not sign in to the service."""
    from connector.console import auth
    from connector.console.service import ready_accounts
    from connector.store.db import Database

    async with database_url(backend, tmp_path) as url:
        db = Database(url)
        try:
            await db.migrate()
            await auth.add_user(db, "pat", "pat-password-1", "admin")  # the node's account
            accounts = await ready_accounts(db, prefix)
            await ready_accounts(db, prefix)  # again at the next start: nothing changes
            assert await accounts.authenticate("pat", "pat-password-1") is None
            await accounts.add_user("pat", "pat-password-2", "viewer")
            assert await accounts.authenticate("pat", "pat-password-2") == "viewer"
            token, csrf = await accounts.open_session("pat")
            session = await accounts.load_session(token)
            assert session is not None and session.csrf == csrf and not session.may("operator")
            assert await auth.load_session(db, token) is None  # not a node session
            await accounts.close_session(token)
            assert await accounts.load_session(token) is None
        finally:
            await db.dispose()


def _signed_in(node: NodeProcess, accept_language: str) -> httpx.Client:
    """A console session on a running node, in the language asked for."""
    subprocess.run([sys.executable, "-m", "connector", "user", "add", str(node.directory), "vic", "--role", "viewer",
                    "--password-stdin"], input="vic-viewer-pw-1\n", text=True, check=True, capture_output=True)
    client = httpx.Client(base_url=node.url, timeout=30, headers={"Accept-Language": accept_language})
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
    assert client.post("/console/login", data={"csrf": token, "username": "vic", "password": "vic-viewer-pw-1"}
                       ).status_code == 303
    return client


@pytest.mark.slow
def test_undelivered_messages_in_the_timeline_ours_translated_the_peers_words_quoted(tmp_path):
    """Between real nodes: our request the provider refused (its access policy, a 403), and a
    suspension that could not reach the stopped provider before its deadline (a dead letter). The
    consumer's console in Traditional Chinese says what happened in Chinese, and quotes the
    provider's words under their label; no English sentence of ours is left on the pages."""
    import time
    from urllib.parse import quote

    fast = {"CONNECTOR_OUTBOX_RETRY_INITIAL_MS": "200", "CONNECTOR_OUTBOX_RETRY_MAX_SECONDS": "1",
            "CONNECTOR_OUTBOX_MESSAGE_DEADLINE_SECONDS": "3"}
    provider = NodeProcess(tmp_path / "p", "Provider", jurisdiction="CN-GD-GZ").start()
    consumer = NodeProcess(tmp_path / "c", "Consumer", jurisdiction="HK", env=fast).start()
    try:
        (provider.directory / "data").mkdir(exist_ok=True)
        (provider.directory / "data" / "open.csv").write_text("a,b\n1,2\n")
        provider.publish("open-data", "offer-open", data_address={"type": "file", "path": "open.csv"})
        provider.publish("sg-data", "offer-sg", policy={"permission": [{"action": "use", "constraint": [
            {"leftOperand": "hks:recipientJurisdiction", "operator": "eq", "rightOperand": "SG"}]}]})
        # the catalog hides that offer from us: we ask for it anyway, and the provider refuses the request
        offer = {"@id": "offer-sg", "@type": "Offer", "assigner": provider.participant_id, "target": "sg-data",
                 "permission": [{"action": "use"}]}
        refused = consumer.api("POST", "/negotiations", {
            "counterPartyAddress": provider.url, "counterPartyId": provider.participant_id, "datasetId": "sg-data",
            "offer": offer}, expect=201)
        ended = consumer.wait_state(refused["id"], "TERMINATED")
        assert ended["termination"]["by"] == "peer-refused", ended
        # a suspension that cannot be delivered: the provider is gone
        agreed = consumer.wait_state(consumer.negotiate(provider, "open-data", "offer-open")["id"])
        started = consumer.api("POST", "/transfers", {"agreementId": agreed["agreement"]["@id"],
                                                      "format": "HttpData-PULL"}, expect=201)
        assert consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20")["state"] == "STARTED"
        provider.stop()
        consumer.api("POST", f"/transfers/{started['id']}/suspend", expect=200)
        deadline = time.monotonic() + 30
        while not consumer.api("GET", "/dead-letters", expect=200):
            assert time.monotonic() < deadline, "no dead letter"
            time.sleep(0.3)
        client = _signed_in(consumer, "zh-HK")
        try:
            page = client.get(f"/console/negotiations/{quote(refused['id'], safe='')}").text
            assert "對方拒絕了此訊息（403）" in page, page
            quoted = re.search(r'class="peer-words">([^<]*)</q>', page)
            assert quoted and quoted.group(1).startswith("AccessDenied: Refused by the offer"), page
            assert "對方的原話（照它發送的內容，未經翻譯）：" in page
            assert "the peer refused the message" not in page
            page = client.get(f"/console/transfers/{quote(started['id'], safe='')}").text
            assert "無法連線至對方" in page and "could not be reached" not in page, page
            dashboard = client.get("/console/").text
            assert "無法連線至對方" in dashboard and "could not be reached" not in dashboard
        finally:
            client.close()
    finally:
        consumer.stop()
        provider.stop()
