"""The destination guard's pure parts (address classes, the allow-list, URL ownership) and its
connect-time check in the HTTP client, with a real aiohttp listener and a resolver we control."""
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from connector import config as config_mod
from connector.node.destinations import (RULE_OWNER, RULE_PRIVATE, DestinationGuard, DestinationRefused,
                                         DestinationUncheckable, GuardedConnector, address_class, belongs_to, forbidden,
                                         parse_allow_list, parse_destination, permitted)
from support.nodes import free_port

ip = ipaddress.ip_address


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("100.64.0.1", "reserved"), ("240.0.0.1", "private"), ("192.0.2.1", "private"),
    # IPv4 inside IPv6 is judged as the IPv4 address it carries
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a00:1", "private"),
    ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None), ("2002:808:808::1", None),
])
def test_address_classes(address, kind):
    assert address_class(ip(address)) == kind


def test_allow_list_entries():
    allow = parse_allow_list("127.0.0.1, localhost:8282, 10.0.0.0/8, [::1]:9000, fd00::/8, Svc.Internal")
    assert permitted("127.0.0.1", 1, ip("127.0.0.1"), allow)  # an address, any port
    assert permitted("localhost", 8282, ip("127.0.0.1"), allow)  # a name with its port
    assert not permitted("localhost", 8283, ip("::1"), allow)
    assert permitted("db", 5432, ip("10.20.30.40"), allow)  # a network
    assert permitted("x", 9000, ip("::1"), allow) and not permitted("x", 9001, ip("::1"), allow)
    assert permitted("svc.internal.", 80, ip("192.168.0.9"), allow)  # names case- and dot-insensitive
    assert permitted("x", 1, ip("::ffff:10.1.1.1"), allow)  # an IPv4-mapped address of an allowed network
    assert not permitted("other", 80, ip("192.168.0.9"), allow)
    assert permitted("anything", 443, ip("8.8.8.8"), parse_allow_list(""))  # public needs no entry
    assert parse_allow_list(["127.0.0.1", " "]) == parse_allow_list("127.0.0.1,")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "127.0.0.1:0", "localhost:99999", "[::1]8080", "a b",
                                   "http://x", "bad_name!", "1.2.3.4:x"])
def test_bad_allow_list_entries_are_refused(entry):
    with pytest.raises(ValueError):
        parse_allow_list(entry)


def test_the_setting_is_read_and_checked(tmp_path):
    config_mod.init_directory(tmp_path, name="N", shared_secret="s" * 20)
    settings = config_mod.load(tmp_path, environ={"CONNECTOR_DSP_ALLOWED_DESTINATIONS": "127.0.0.1, 10.0.0.0/8"})
    assert settings.allowed_destinations == ("127.0.0.1", "10.0.0.0/8")
    assert config_mod.load(tmp_path, environ={}).allowed_destinations == ()
    with pytest.raises(config_mod.ConfigError, match=r"\[dsp\] allowed_destinations"):
        config_mod.load(tmp_path, environ={"CONNECTOR_DSP_ALLOWED_DESTINATIONS": "10.0.0.0/99"})
    assert "# allowed_destinations = " in (tmp_path / "connector.toml").read_text()


@pytest.mark.parametrize("url", [
    "ftp://host/x", "http://", "/relative", "http://user:pw@host/", "http://host/a/../b", "http://host/%2E%2e/b",
    "http://host/a b", "http://host\\@evil/", "http://host:0/", "http://host:99999/", None, 42, "x" * 3000,
])
def test_unusable_urls_are_refused(url):
    with pytest.raises(DestinationRefused):
        parse_destination(url)


def test_ownership_is_scheme_host_port_and_path():
    registered = ["https://pearl.example:8443/connector/"]
    assert belongs_to("https://pearl.example:8443/connector/dsp/2025-1", registered)
    assert belongs_to("https://PEARL.example.:8443/connector", registered)
    assert not belongs_to("http://pearl.example:8443/connector/dsp", registered)  # scheme
    assert not belongs_to("https://pearl.example/connector/dsp", registered)  # port
    assert not belongs_to("https://evil.example:8443/connector/dsp", registered)  # host
    assert not belongs_to("https://pearl.example:8443/connectorx/dsp", registered)  # path prefix, not string prefix
    assert not belongs_to("https://pearl.example:8443/other", registered)
    assert not belongs_to("https://pearl.example:8443/connector/../admin", registered)
    assert not belongs_to("https://pearl.example:8443@evil.example/connector/", registered)
    assert belongs_to("http://127.0.0.1/x", ["http://127.0.0.1:80/"])  # default ports
    assert belongs_to("http://[::1]:81/x", ["http://[0:0::1]:81/"])
    assert not belongs_to("http://localhost:81/x", ["http://127.0.0.1:81/"])  # names are not addresses
    assert not belongs_to("http://127.0.0.1:81/x", [])


def fake_resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return table[host]
    return resolve


async def test_the_guard_checks_what_names_resolve_to():
    guard = DestinationGuard(parse_allow_list("127.0.0.1:8282"), resolve=fake_resolver({
        "public.test": ["93.184.216.34"], "inside.test": ["10.9.8.7"], "mixed.test": ["93.184.216.34", "127.0.0.1"],
        "localhost": ["127.0.0.1"]}))
    assert await guard.check("http://public.test/cb", sender=None, what="callbackAddress")
    assert await guard.check("http://127.0.0.1:8282/dsp", sender=None, what="callbackAddress")
    for url in ("http://inside.test/cb", "http://mixed.test/cb", "http://localhost:8283/cb", "http://127.0.0.1:8283/",
                "http://[::ffff:127.0.0.1]:8283/", "http://nowhere.test/cb", "http://0.0.0.0:8282/"):
        with pytest.raises(DestinationRefused) as refused:
            await guard.check(url, sender=None, what="callbackAddress")
        reason = refused.value.reason  # the same whether the name is private or unknown to our resolver
        assert reason == ("callbackAddress refused: its host does not resolve to public addresses only "
                          f"(rule: {RULE_PRIVATE})")
        assert not any(s in reason for s in ("10.9.8.7", "127.0.0.1", "8283", "inside", "nowhere"))


async def test_the_guard_asks_the_station_whose_address_it_is():
    registered = {"urn:p:a": frozenset({"https://a.example/"}), "urn:p:none": frozenset()}

    async def addresses_of(pid):
        if pid == "urn:p:down":
            raise OSError("station down")
        return registered.get(pid, frozenset())

    guard = DestinationGuard(parse_allow_list(""), addresses_of=addresses_of,
                             resolve=fake_resolver({"a.example": ["93.184.216.34"], "b.example": ["93.184.216.35"]}))
    assert await guard.check("https://a.example/dsp/2025-1", sender="urn:p:a", what="callbackAddress")
    for sender, url in (("urn:p:a", "https://b.example/dsp"), ("urn:p:none", "https://a.example/dsp"),
                        ("urn:p:a", "http://a.example/dsp")):
        with pytest.raises(DestinationRefused) as refused:
            await guard.check(url, sender=sender, what="callbackAddress")
        assert refused.value.reason == (f"callbackAddress refused: it is not an address registered for participant "
                                        f"{sender} at the station (rule: {RULE_OWNER})")
    with pytest.raises(DestinationUncheckable):  # fail closed, and worth retrying
        await guard.check("https://a.example/dsp", sender="urn:p:down", what="callbackAddress")


class FixedResolver(AbstractResolver):
    """What the HTTP client's DNS answers at connect time (a name that flipped after the check)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


async def test_the_http_client_refuses_a_name_that_resolves_inside_at_connect_time():
    calls = []

    async def handle(request):
        calls.append(request.path)
        return web.Response(text="internal")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        # the arrival check saw a public address; the client's DNS now says 127.0.0.1
        guard = DestinationGuard(parse_allow_list(""), resolve=fake_resolver({"rebind.test": ["93.184.216.34"]}))
        await guard.check(f"http://rebind.test:{port}/x", sender=None, what="callbackAddress")
        connector = GuardedConnector(guard, resolver=FixedResolver("127.0.0.1"))
        async with aiohttp.ClientSession(connector=connector) as session:
            for url in (f"http://rebind.test:{port}/secret", f"http://127.0.0.1:{port}/secret"):
                with pytest.raises(aiohttp.ClientConnectorError) as refused:
                    await session.get(url)
                assert forbidden(refused.value)
        assert calls == []
        # allow-listed, the same connection goes through
        allowed = DestinationGuard(parse_allow_list(f"127.0.0.1:{port}"))
        async with aiohttp.ClientSession(connector=GuardedConnector(allowed, resolver=FixedResolver("127.0.0.1"))) as s:
            async with s.get(f"http://rebind.test:{port}/ok") as resp:
                assert await resp.text() == "internal"
        assert calls == ["/ok"]
    finally:
        await runner.cleanup()


async def test_configured_endpoints_are_trusted_by_the_client_only():
    guard = DestinationGuard(parse_allow_list(""), trusted=["http://127.0.0.1:8400"],
                             resolve=fake_resolver({}))
    assert guard.connectable("127.0.0.1", 8400, "127.0.0.1")
    assert not guard.connectable("127.0.0.1", 8401, "127.0.0.1")
    with pytest.raises(DestinationRefused):  # a peer may not point us at it
        await guard.check("http://127.0.0.1:8400/entries", sender=None, what="callbackAddress")
