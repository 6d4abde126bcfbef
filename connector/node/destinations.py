"""Where this node may send requests: every URL a peer chose (a callbackAddress, a push
endpoint, a pull endpoint) and every HTTP upstream asset is checked before a request goes
out, and again when the HTTP client connects.

Two rules, each named in a refusal (and nothing about our network: no host, port, address
or connection error is ever in a reason a peer can read):

* **destinations must belong to the sender** (station mode): the URL's scheme, host and
  port must be those of an address the station has registered for the participant whose
  token sent the message, and its path must lie under that address's path.
* **no private destinations**: a destination whose host resolves to a loopback,
  link-local, private, multicast, unspecified or otherwise non-global address (IPv4 and
  IPv6, IPv4-mapped, 6to4 and NAT64 forms unwrapped) is refused unless the setting
  ``[dsp] allowed_destinations`` names it. What is checked is every address the name
  resolves to, not the host string, and the HTTP client (`GuardedConnector`) checks again
  at connect time, so a name that resolves differently after the first check is still refused.

The pure parts (address classes, the allow-list, URL ownership) come first and do no I/O;
`DestinationGuard` and `GuardedConnector` below them resolve names and ask the station.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Sequence
from urllib.parse import unquote

import aiohttp
from yarl import URL

from ..protocol.errors import ProtocolError
from ..errors import NodeError

log = logging.getLogger("connector.destinations")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
RULE_OWNER = "destinations must belong to the sender"
RULE_PRIVATE = "no private destinations unless [dsp] allowed_destinations names them"
RULE_SHAPE = "destinations must be plain http(s) URLs"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(ProtocolError):
    """A peer-chosen URL this node will not send anything to (a DSP 400 naming the rule)."""

    status = 400
    code = "DestinationRefused"


class DestinationUncheckable(ProtocolError):
    """The station could not be asked whose address it is: denied, worth retrying (fail closed)."""

    status = 503
    code = "DestinationUncheckable"


class ForbiddenAddress(NodeError, OSError):
    """Raised by the HTTP client when a host resolves to an address it may not connect to.
    An OSError, so aiohttp reports it as a connection error and nothing is sent."""


# ------------------------------------------------------------------ pure parts
def address_class(ip: IPAddress) -> str | None:
    """Why `ip` is not a public destination ("loopback", "link-local", "private", "multicast",
    "unspecified", "reserved"), or None for a global unicast address. IPv4 addresses carried
    in IPv6 (IPv4-mapped, 6to4, NAT64) are judged as the IPv4 address they carry."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_class(embedded)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be 1..65535")
    return int(text)


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: a network (any port), an address or a host name, with an optional port."""

    network: IPNetwork | None = None
    name: str | None = None
    port: int | None = None

    def admits(self, host: str, port: int, ip: IPAddress) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return normalise_host(host) == self.name
        assert self.network is not None
        return ip in self.network or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
                                      and ip.ipv4_mapped in self.network)


def parse_allow_entry(text: str) -> AllowEntry:
    """`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`, `127.0.0.1:8282`, `::1`, `[::1]:8282`, `localhost`,
    `localhost:8282`. Raises ValueError naming the entry."""
    entry = text.strip()
    if not entry or any(c.isspace() for c in entry) or len(entry) > 255:
        raise ValueError(f"{text!r} is not an address, network or host name")
    if "/" in entry:
        try:
            return AllowEntry(network=ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not a network (such as 10.0.0.0/8)") from None
    port: int | None = None
    host = entry
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0 or (close + 1 < len(entry) and entry[close + 1] != ":"):
            raise ValueError(f"{entry!r}: write an IPv6 address with a port as [::1]:8282")
        host = entry[1:close]
        if close + 1 < len(entry):
            port = _port(entry[close + 2:], entry)
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        port = _port(port_text, entry)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = normalise_host(host)
        if not name or not all(part and len(part) <= 63 and all(c.isalnum() or c in "-_" for c in part)
                               for part in name.split(".")):
            raise ValueError(f"{entry!r} is not an address, network or host name") from None
        return AllowEntry(name=name, port=port)
    return AllowEntry(network=ipaddress.ip_network(ip), port=port)


@dataclass(frozen=True)
class AllowList:
    entries: tuple[AllowEntry, ...] = ()

    def admits(self, host: str, port: int, ip: IPAddress) -> bool:
        return any(e.admits(host, port, ip) for e in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)


def parse_allow_list(values: str | Iterable[str]) -> AllowList:
    """A comma-separated string or a list of entries (see `parse_allow_entry`)."""
    items = values.split(",") if isinstance(values, str) else list(values)
    return AllowList(tuple(parse_allow_entry(v) for v in items if v.strip()))


def permitted(host: str, port: int, ip: IPAddress, allow: AllowList) -> bool:
    """May the node connect to `ip` for a URL naming `host:port`?"""
    return address_class(ip) is None or allow.admits(host, port, ip)


def normalise_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def parse_destination(url: Any) -> URL:
    """The URL as the HTTP client will read it, if it is a plain absolute http(s) URL: no
    credentials, no dot segments, no whitespace or control characters. Raises
    DestinationRefused (which never repeats the URL)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"not a usable URL (rule: {RULE_SHAPE})")
    if any(ord(c) < 33 or ord(c) == 127 or c == "\\" for c in url):
        raise DestinationRefused(f"it contains whitespace, control characters or backslashes (rule: {RULE_SHAPE})")
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError):
        raise DestinationRefused(f"not a usable URL (rule: {RULE_SHAPE})") from None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host or not port:
        raise DestinationRefused(f"not an absolute http(s) URL (rule: {RULE_SHAPE})")
    if parsed.raw_user is not None or parsed.raw_password is not None or "@" in url.split("/", 3)[2]:
        raise DestinationRefused(f"it carries credentials in the URL (rule: {RULE_SHAPE})")
    rest = url.split("#", 1)[0].split("?", 1)[0].split("//", 1)[1]  # authority and path, as written
    if any(unquote(seg) in (".", "..") for seg in rest.split("/")[1:]):
        raise DestinationRefused(f"its path has dot segments (rule: {RULE_SHAPE})")
    return parsed


def belongs_to(url: str, bases: Iterable[str]) -> bool:
    """Does `url` lie under one of `bases` (same scheme, host and port, path under the base path)?
    Both are parsed as the HTTP client parses them; an unusable URL belongs nowhere."""
    try:
        target = parse_destination(url)
    except DestinationRefused:
        return False
    for base in bases:
        try:
            owned = URL(base)
            owned_port = owned.port
        except (ValueError, TypeError):
            continue
        if owned.scheme != target.scheme or not owned.raw_host or owned_port != target.port:
            continue
        if normalise_host(owned.raw_host) != normalise_host(target.raw_host or ""):
            continue
        prefix = owned.raw_path.rstrip("/") + "/"
        if (target.raw_path.rstrip("/") + "/").startswith(prefix):
            return True
    return False


# --------------------------------------------------------------------- I/O
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class DestinationGuard:
    """Checks the destinations peers choose, when their message arrives.

    `addresses_of(participant_id)` (the identity's) gives the addresses the station has
    registered for a participant, or None when there is no station (dev mode)."""

    def __init__(self, allow: AllowList, *, addresses_of: Callable[[str], Awaitable[frozenset[str] | None]] | None = None,
                 resolve: Resolve = system_resolve, trusted: Iterable[str] = (), resolve_timeout: float = 5.0) -> None:
        self.allow = allow
        self.addresses_of = addresses_of
        self.resolve = resolve
        self.resolve_timeout = resolve_timeout
        # Endpoints the operator configured (e.g. the clearing house): the client may connect to them.
        self.trusted = frozenset((normalise_host(u.raw_host or ""), u.port) for u in map(URL, trusted) if u.raw_host)

    async def check(self, url: Any, *, sender: str | None, what: str) -> str:
        """Raise DestinationRefused (400) or DestinationUncheckable (503) unless this node may
        send to `url` on behalf of a message from `sender`; returns the URL."""
        try:
            parsed = parse_destination(url)
        except DestinationRefused as exc:
            raise DestinationRefused(f"{what} refused: {exc.reason}") from None
        if sender is not None and self.addresses_of is not None:
            try:
                owned = await self.addresses_of(sender)
            except Exception as exc:  # noqa: BLE001 - a check that cannot be completed denies
                log.warning("could not read the registered addresses of %s: %s", sender, exc)
                raise DestinationUncheckable(
                    f"{what} could not be checked: the station's record of the sender could not be read "
                    f"(rule: {RULE_OWNER}); try again later") from None
            if owned is not None and not belongs_to(str(url), owned):
                raise DestinationRefused(
                    f"{what} refused: it is not an address registered for participant {sender[:200]} at the station "
                    f"(rule: {RULE_OWNER})")
        await self.check_resolved(parsed, what)
        return str(url)

    async def check_resolved(self, parsed: URL, what: str) -> None:
        host, port = parsed.raw_host or "", parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0)
        try:
            literal = ipaddress.ip_address(normalise_host(host))
            addresses: Sequence[str] = [str(literal)]
        except ValueError:
            try:
                addresses = await asyncio.wait_for(self.resolve(host.rstrip("."), port), self.resolve_timeout)
            except (OSError, asyncio.TimeoutError, UnicodeError) as exc:
                log.info("%s: %s:%s does not resolve: %s", what, host, port, exc)
                addresses = []
        if not addresses or not all(self.allowed(host, port, a) for a in addresses):
            log.warning("%s refused: %s:%s resolves to %s", what, host, port, ", ".join(map(str, addresses)) or "nothing")
            # One reason whether the name resolved to a private address or not at all: a peer must not
            # learn which names our resolver knows.
            raise DestinationRefused(f"{what} refused: its host does not resolve to public addresses only "
                                     f"(rule: {RULE_PRIVATE})")

    def allowed(self, host: str, port: int, address: str) -> bool:
        """The rule for a peer's URL: a public address or an allow-listed one."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return permitted(host, port, ip, self.allow)

    def connectable(self, host: str, port: int, address: str) -> bool:
        """The connect-time rule: allowed, or an endpoint the operator configured (never a peer's choice)."""
        return self.allowed(host, port, address) or (normalise_host(host), port) in self.trusted


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that refuses to connect to any address the guard does not permit,
    after DNS resolution (and for IP literals), so a rebinding name is refused at connect time."""

    def __init__(self, guard: DestinationGuard, **kwargs: Any) -> None:
        if not callable(getattr(aiohttp.TCPConnector, "_resolve_host", None)):  # fail closed on an aiohttp change
            raise RuntimeError("this aiohttp has no TCPConnector._resolve_host: destinations cannot be guarded")
        super().__init__(**kwargs)
        self.guard = guard

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[Any]:  # type: ignore[override]
        hosts = await super()._resolve_host(host, port, traces=traces)
        allowed = [h for h in hosts if self.guard.connectable(host, port, h["host"])]
        if len(allowed) != len(hosts):
            log.warning("refused to connect to %s:%s: it resolves to %s", host, port,
                        ", ".join(h["host"] for h in hosts))
            raise ForbiddenAddress(f"destination refused (rule: {RULE_PRIVATE})")
        return allowed


def forbidden(exc: BaseException) -> bool:
    """Was this client error the connect-time guard refusing the destination?"""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ForbiddenAddress) or isinstance(getattr(exc, "os_error", None), ForbiddenAddress):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


__all__ = ["AllowList", "DestinationGuard", "DestinationRefused", "DestinationUncheckable", "ForbiddenAddress",
           "GuardedConnector", "address_class", "belongs_to", "forbidden", "parse_allow_list", "parse_destination",
           "permitted", "RULE_OWNER", "RULE_PRIVATE"]
