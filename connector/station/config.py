"""Station configuration: ``station.toml`` in the station directory, overridable by
environment variables CONNECTOR_<SECTION>_<KEY> (e.g. CONNECTOR_STATION_LISTEN_PORT).

The directory also holds the CA (``ca.crt``, ``keys/ca.key``), the token-signing keys
(``keys/token-*.key``; the newest signs, all are published) and ``admin.token``. Every
private file is mode 0600 and is never logged."""
from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from ..config import ConfigError, read_sections, telemetry_of
from ..config import toml_string as _toml_str
from ..identity import jose
from ..telemetry import TelemetrySettings
from ..identity.dat import GENERIC_AUDIENCE
from ..identity.keys import private_pem, write_public_file, write_secret_file
from ..identity.pki import cert_pem, make_ca

CONFIG_FILE = "station.toml"
ADMIN_TOKEN_FILE = "admin.token"
CA_CERT_FILE = "ca.crt"


@dataclass
class StationSettings:
    directory: Path
    name: str
    listen_host: str
    listen_port: int
    public_url: str
    database_url: str
    token_lifetime: int = 3600
    #: audiences besides participants and the station itself that tokens may be issued for
    #: (services such as the clearing house: its audience, by default its public URL)
    service_audiences: tuple[str, ...] = ()
    #: WEAKENING: also issue tokens for idsc:IDS_CONNECTORS_ALL (which our receivers refuse anyway)
    allow_generic_audience: bool = False
    max_assertion_lifetime: int = 600
    registry_max_bytes: int = 1024 * 1024
    certificate_days: int = 365
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)  # [telemetry]
    #: [clearinghouse]: where the station logs the certificates it signs (its URL, its id as the
    #: tokens' audience, default the URL; and its pinned signed-note verifier key). Read again
    #: whenever station.toml changes, so they can be set on a running station (certs/station_log.py).
    clearinghouse_url: str = ""
    clearinghouse_audience: str = ""
    clearinghouse_verifier_key: str = ""

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")


SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "station": {"name": (str, True), "listen_host": (str, False), "listen_port": (int, False),
                "public_url": (str, False)},
    "database": {"url": (str, False)},
    "tokens": {"lifetime_seconds": (int, False), "audience": (str, False),
               "max_assertion_lifetime_seconds": (int, False), "certificate_days": (int, False),
               "service_audiences": (list, False), "allow_generic_audience": (bool, False)},
    "registry": {"max_body_bytes": (int, False)},
    "clearinghouse": {"url": (str, False), "audience": (str, False), "verifier_key": (str, False)},
}


def default_database_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{(directory / 'station.db').resolve()}"


def load(directory: str | Path, environ: Mapping[str, str] | None = None) -> StationSettings:
    environ = os.environ if environ is None else environ
    directory = Path(directory)
    checked = read_sections(directory / CONFIG_FILE, SCHEMA, env_prefix="CONNECTOR_", environ=environ,
                            create_hint=f"create the station with: connector station init {directory}")
    st = checked["station"]
    port = st.get("listen_port", 8090)
    if not 0 <= port <= 65535:
        raise ConfigError(f"setting [station] listen_port must be 0..65535, got {port}")
    host = st.get("listen_host", "127.0.0.1")
    public_url = st.get("public_url", f"http://{host}:{port}")
    parsed = urlparse(public_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ConfigError(f"setting [station] public_url must be an http(s) URL without query, got {public_url!r}")
    if not st["name"].strip():
        raise ConfigError("setting [station] name must not be empty")
    db_url = checked.get("database", {}).get("url") or default_database_url(directory)
    if not (db_url.startswith("sqlite+aiosqlite:///") or db_url.startswith("postgresql+asyncpg://")):
        raise ConfigError("setting [database] url must start with sqlite+aiosqlite:/// or postgresql+asyncpg://")
    tokens = checked.get("tokens", {})
    lifetime = tokens.get("lifetime_seconds", 3600)
    if not 60 <= lifetime <= 86400:
        raise ConfigError(f"setting [tokens] lifetime_seconds must be between 60 and 86400, got {lifetime}")
    max_assertion = tokens.get("max_assertion_lifetime_seconds", 600)
    if not 30 <= max_assertion <= 86400:
        raise ConfigError(f"setting [tokens] max_assertion_lifetime_seconds must be between 30 and 86400, got {max_assertion}")
    days = tokens.get("certificate_days", 365)
    if not 1 <= days <= 3650:
        raise ConfigError(f"setting [tokens] certificate_days must be between 1 and 3650, got {days}")
    if "audience" in tokens:
        raise ConfigError("setting [tokens] audience is no longer supported: every token is issued for the one "
                          "recipient named in the token request; remove the line (see [tokens] service_audiences)")
    services = tokens.get("service_audiences", [])
    if not all(isinstance(a, str) and 0 < len(a.strip()) <= 2000 and a.strip() != GENERIC_AUDIENCE for a in services):
        raise ConfigError("setting [tokens] service_audiences must be a list of service ids (e.g. the clearing "
                          "house's URL), not empty and not idsc:IDS_CONNECTORS_ALL")
    max_body = checked.get("registry", {}).get("max_body_bytes", 1024 * 1024)
    if not 4096 <= max_body <= 16 * 1024 * 1024:
        raise ConfigError(f"setting [registry] max_body_bytes must be between 4096 and 16777216, got {max_body}")
    ch = checked.get("clearinghouse", {})
    ch_url = ch.get("url", "").strip().rstrip("/")
    if ch_url and urlparse(ch_url).scheme not in ("http", "https"):
        raise ConfigError(f"setting [clearinghouse] url must be an http(s) URL, got {ch_url[:200]!r}")
    for name in (CA_CERT_FILE, "keys/ca.key", ADMIN_TOKEN_FILE):
        if not (directory / name).is_file():
            raise ConfigError(f"{directory / name} is missing (made by: connector station init)")
    if not list((directory / "keys").glob("token-*.key")):
        raise ConfigError(f"no token-signing key in {directory / 'keys'} (made by: connector station init)")
    return StationSettings(directory=directory, telemetry=telemetry_of(checked), name=st["name"], listen_host=host, listen_port=port,
                           public_url=public_url, database_url=db_url, token_lifetime=lifetime,
                           service_audiences=tuple(a.strip().rstrip("/") for a in services),
                           allow_generic_audience=tokens.get("allow_generic_audience", False),
                           max_assertion_lifetime=max_assertion, registry_max_bytes=max_body, certificate_days=days,
                           clearinghouse_url=ch_url, clearinghouse_audience=ch.get("audience", "").strip() or ch_url,
                           clearinghouse_verifier_key=ch.get("verifier_key", "").strip())


def new_token_key(directory: Path, alg: str) -> Path:
    """Add a token-signing key; the newest (by name) signs, the others stay published."""
    key = jose.generate_key(alg)
    seq = len(list((directory / "keys").glob("token-*.key"))) + 1
    path = directory / "keys" / f"token-{seq:04d}-{secrets.token_hex(3)}.key"
    write_secret_file(path, private_pem(key))
    return path


def init_directory(directory: str | Path, *, name: str = "Hong Kong Station", port: int = 8090,
                   host: str = "127.0.0.1", public_url: str | None = None, database_url: str | None = None,
                   token_alg: str = "ES256") -> Path:
    """Create the station: station.toml, the CA, a token-signing key and admin.token.
    Refuses to touch an existing station."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography import x509

    directory = Path(directory)
    path = directory / CONFIG_FILE
    if path.exists() or (directory / "keys" / "ca.key").exists():
        raise ConfigError(f"{directory} already holds a station; refusing to overwrite it")
    if not name.strip():
        raise ConfigError("--name must not be empty")
    if token_alg not in jose.ASYMMETRIC_ALGORITHMS:
        raise ConfigError(f"--token-alg must be one of {', '.join(sorted(jose.ASYMMETRIC_ALGORITHMS))}, got {token_alg!r}")
    public_url = public_url or f"http://{host}:{port}"
    parsed = urlparse(public_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"--public-url must be an http(s) URL, got {public_url!r}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = directory / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    write_secret_file(keys / "ca.key", private_pem(ca_key))
    ca = make_ca(ca_key, name, now=dt.datetime.now(dt.timezone.utc), serial=x509.random_serial_number())
    write_public_file(directory / CA_CERT_FILE, cert_pem(ca).encode())
    new_token_key(directory, token_alg)
    from ..certs.station_log import load_identity  # its clearing-house identity: replicas copy the same files
    load_identity(directory, name, ca_key, ca)
    write_secret_file(directory / ADMIN_TOKEN_FILE, (secrets.token_urlsafe(32) + "\n").encode())
    lines = [
        "# Hong Kong station authority. Every setting can be overridden by CONNECTOR_<SECTION>_<KEY>.",
        "[station]",
        f"name = {_toml_str(name)}",
        f"listen_host = {_toml_str(host)}",
        f"listen_port = {port}",
        "# the issuer of every token: peers fetch /.well-known/oauth-authorization-server from it",
        f"public_url = {_toml_str(public_url)}",
        "",
        "[database]",
        f"url = {_toml_str(database_url or default_database_url(directory))}",
        "",
        "[tokens]",
        "lifetime_seconds = 3600",
        "# every token names its one recipient: an enrolled participant, this station (registry) or one of",
        "# these services (e.g. the clearing house's URL)",
        "service_audiences = []",
        "# WEAKENING, off: also issue tokens for idsc:IDS_CONNECTORS_ALL (replayable at every connector)",
        "allow_generic_audience = false",
        "max_assertion_lifetime_seconds = 600",
        "certificate_days = 365",
        "",
        "[registry]",
        "max_body_bytes = 1048576",
        "",
        "[clearinghouse]",
        "# where the station logs the dataset certificates it signs: url, audience (its id; default the url)",
        "# and verifier_key (its signed-note key, pinned). Read again when this file changes.",
        "",
    ]
    write_secret_file(path, "\n".join(lines).encode())
    return path


def read_admin_token(directory: Path) -> str:
    token = (directory / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()
    if len(token) < 32:
        raise ConfigError(f"{directory / ADMIN_TOKEN_FILE} must hold a token of at least 32 characters")
    return token
