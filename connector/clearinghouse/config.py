"""Clearing-house configuration: ``clearinghouse.toml`` in the clearing-house directory,
overridable by environment variables ``CONNECTOR_CH_<SECTION>_<KEY>`` (for example
``CONNECTOR_CH_DATABASE_URL``; lists such as ``[access] auditors`` take commas).

The log's Ed25519 key is ``keys/log.key`` (a C2SP signer key string, mode 0600); its
verifier key, the only thing an auditor needs to trust, is in ``log.pub``."""
from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..config import ConfigError, read_sections, telemetry_of
from ..config import toml_string as _toml_str
from ..telemetry import TelemetrySettings
from ..ledger.checkpoint import CheckpointError, parse_signer_key, signer_key_string, verifier_key_string

CONFIG_FILE = "clearinghouse.toml"
KEY_FILE = "keys/log.key"
PUBLIC_KEY_FILE = "log.pub"
PARTICIPANTS_DIR = "participants"
ENV_PREFIX = "CONNECTOR_CH_"
_ORIGIN_RE = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,200}", re.ASCII)  # printable, no space, no '+'


@dataclass
class ClearingHouseSettings:
    directory: Path
    listen_host: str
    listen_port: int
    public_url: str
    database_url: str
    signer_key: str = field(repr=False)
    identity_mode: str = "dev-shared-secret"
    identity_shared_secret: str = field(default="", repr=False)
    identity_audience: str = ""  # the token audience accepted: the clearing house's own id (default: public_url)
    identity_max_token_lifetime: int = 3600  # longest token lifetime accepted (the station's default)
    participant_keys: Path | None = None
    station_url: str = ""
    station_ca: Path | None = None
    key_cache_seconds: int = 300
    auditors: tuple[str, ...] = ()
    auditor_claim: tuple[str, str] | None = None
    max_entry_bytes: int = 4096
    max_batch: int = 512
    max_pending: int = 8192
    max_clock_skew_seconds: int = 300  # entries stamped further ahead of our clock are refused
    max_entry_age_seconds: int = 7 * 86400  # ... and entries stamped longer ago (see README: late deliveries)
    verify_workers: int = 1  # a process that checks entry signatures (0: in the event loop)
    diagnostics: bool = False  # POST /diagnostics/discard: a bare handler, the benchmark's baseline
    metrics_token: str = field(default="", repr=False)  # GET /metrics with this bearer token ("": no /metrics)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)  # [telemetry]


# section -> key -> (type, required)
SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "clearinghouse": {
        "listen_host": (str, False), "listen_port": (int, False), "public_url": (str, False),
        "max_entry_bytes": (int, False), "max_batch": (int, False), "max_pending": (int, False),
        "max_clock_skew_seconds": (int, False), "max_entry_age_seconds": (int, False), "diagnostics": (bool, False),
        "verify_workers": (int, False), "metrics_token": (str, False),
    },
    "database": {"url": (str, False)},
    "identity": {"mode": (str, False), "shared_secret": (str, False), "audience": (str, False),
                 "max_token_lifetime": (int, False)},
    "participants": {"keys": (str, False), "station_url": (str, False), "station_ca": (str, False),
                     "cache_seconds": (int, False)},
    "access": {"auditors": (list, False), "auditor_claim": (str, False)},
}
IDENTITY_MODES = ("dev-shared-secret", "station")


def default_database_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{(Path(directory) / 'clearinghouse.db').resolve()}"


def _bounded(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ConfigError(f"setting {name} must be between {low} and {high}, got {value}")
    return value


def read_signer_key(directory: Path) -> str:
    path = Path(directory) / KEY_FILE
    if not path.is_file():
        raise ConfigError(f"the log key {path} is missing (create the directory with: connector clearinghouse init DIR)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"the log key {path} is readable by others (mode {mode:04o}); chmod 600 it")
    text = path.read_text(encoding="utf-8").strip()
    try:
        parse_signer_key(text)
    except CheckpointError as exc:
        raise ConfigError(f"the log key {path} is not a valid signer key: {exc}") from None
    return text


def load(directory: str | Path, environ: Mapping[str, str] | None = None) -> ClearingHouseSettings:
    """Read DIR/clearinghouse.toml and the log key, apply overrides, validate. Raises ConfigError."""
    environ = os.environ if environ is None else environ
    directory = Path(directory)
    c = read_sections(directory / CONFIG_FILE, SCHEMA, env_prefix=ENV_PREFIX, environ=environ,
                      create_hint=f"create one with: connector clearinghouse init {directory}")

    ch = c["clearinghouse"]
    host = ch.get("listen_host", "127.0.0.1")
    port = _bounded("[clearinghouse] listen_port", ch.get("listen_port", 8300), 0, 65535)
    public_url = ch.get("public_url", f"http://{host}:{port}")
    parsed = urlparse(public_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"setting [clearinghouse] public_url must be an http(s) URL, got {public_url!r}")
    db_url = c["database"].get("url") or default_database_url(directory)
    if not (db_url.startswith("sqlite+aiosqlite:///") or db_url.startswith("postgresql+asyncpg://")):
        raise ConfigError("setting [database] url must start with sqlite+aiosqlite:/// or postgresql+asyncpg://, "
                          f"got {db_url.split('://')[0]}://...")
    mode = c["identity"].get("mode", "dev-shared-secret")
    if mode not in IDENTITY_MODES:
        raise ConfigError(f"setting [identity] mode must be one of {', '.join(IDENTITY_MODES)}, got {mode!r}")
    secret = c["identity"].get("shared_secret", "")
    if mode == "dev-shared-secret" and len(secret) < 16:
        raise ConfigError("setting [identity] shared_secret must be at least 16 characters in dev-shared-secret mode")
    audience = c["identity"].get("audience", "").strip() or public_url.rstrip("/")
    if len(audience) > 2000:
        raise ConfigError("setting [identity] audience must be at most 2000 characters")
    if audience == "idsc:IDS_CONNECTORS_ALL":
        raise ConfigError("setting [identity] audience must be the clearing house's own id (default: its public_url), "
                          "not idsc:IDS_CONNECTORS_ALL: a token for every connector can be replayed anywhere")
    parts = c["participants"]
    keys_path = parts.get("keys", "")
    station_url = parts.get("station_url", "")
    if bool(keys_path) == bool(station_url):
        raise ConfigError("exactly one of the settings [participants] keys (a directory or JSON file of public keys) "
                          "and [participants] station_url must be set")
    keys = None
    if keys_path:
        keys = Path(keys_path) if Path(keys_path).is_absolute() else directory / keys_path
        if not keys.exists():
            raise ConfigError(f"setting [participants] keys: {keys} does not exist")
    if station_url:
        su = urlparse(station_url)
        if su.scheme not in ("http", "https") or not su.netloc:
            raise ConfigError(f"setting [participants] station_url must be an http(s) URL, got {station_url!r}")
    ca = None
    if parts.get("station_ca"):
        ca = Path(parts["station_ca"]) if Path(parts["station_ca"]).is_absolute() else directory / parts["station_ca"]
        if not ca.is_file():
            raise ConfigError(f"setting [participants] station_ca: {ca} is not a file")
    claim = None
    if c["access"].get("auditor_claim"):
        name, sep, value = c["access"]["auditor_claim"].partition("=")
        if not sep or not name or not value:
            raise ConfigError("setting [access] auditor_claim must look like NAME=VALUE, e.g. role=auditor")
        claim = (name, value)
    return ClearingHouseSettings(
        telemetry=telemetry_of(c),
        directory=directory, listen_host=host, listen_port=port, public_url=public_url.rstrip("/"),
        database_url=db_url, signer_key=read_signer_key(directory), identity_mode=mode,
        identity_shared_secret=secret, identity_audience=audience,
        identity_max_token_lifetime=_bounded("[identity] max_token_lifetime",
                                             c["identity"].get("max_token_lifetime", 3600), 60, 86400),
        participant_keys=keys, station_url=station_url.rstrip("/"), station_ca=ca,
        key_cache_seconds=_bounded("[participants] cache_seconds", parts.get("cache_seconds", 300), 0, 86400),
        auditors=tuple(c["access"].get("auditors", [])), auditor_claim=claim,
        max_entry_bytes=_bounded("[clearinghouse] max_entry_bytes", ch.get("max_entry_bytes", 4096), 512, 65536),
        max_batch=_bounded("[clearinghouse] max_batch", ch.get("max_batch", 512), 1, 10000),
        max_pending=_bounded("[clearinghouse] max_pending", ch.get("max_pending", 8192), 1, 1_000_000),
        max_clock_skew_seconds=_bounded("[clearinghouse] max_clock_skew_seconds",
                                        ch.get("max_clock_skew_seconds", 300), 0, 86400),
        max_entry_age_seconds=_bounded("[clearinghouse] max_entry_age_seconds",
                                       ch.get("max_entry_age_seconds", 7 * 86400), 60, 366 * 86400),
        diagnostics=ch.get("diagnostics", False),
        verify_workers=_bounded("[clearinghouse] verify_workers", ch.get("verify_workers", 1), 0, 1),
        metrics_token=_metrics_token(ch.get("metrics_token", "")),
    )


def _metrics_token(value: str) -> str:
    if value and (len(value) < 16 or len(value) > 512 or not value.isascii() or not value.isprintable()):
        raise ConfigError("setting [clearinghouse] metrics_token must be 16 to 512 printable ASCII characters")
    return value


def _write_new(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def init_directory(directory: str | Path, *, origin: str | None = None, host: str = "127.0.0.1", port: int = 8300,
                   public_url: str | None = None, database_url: str | None = None,
                   shared_secret: str | None = None, participant_keys: str | None = None,
                   station_url: str | None = None, auditors: list[str] | None = None,
                   identity: str = "dev-shared-secret", audience: str | None = None) -> tuple[Path, str]:
    """Create DIR/clearinghouse.toml (0600), DIR/keys/log.key (0600), DIR/log.pub and DIR/participants/.

    Returns (config path, verifier key).  Refuses to overwrite an existing clearing house."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if path.exists() or (directory / KEY_FILE).exists():
        raise ConfigError(f"{directory} already holds a clearing house; refusing to overwrite it")
    origin = origin or f"hks.local/clearinghouse/{secrets.token_hex(4)}"
    if not _ORIGIN_RE.fullmatch(origin):
        raise ConfigError(f"--origin {origin!r} must be 1-200 printable characters without spaces or '+', "
                          "e.g. station.example.hk/clearinghouse")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    if participant_keys and station_url:
        raise ConfigError("give --participant-keys or --station-url, not both")
    if shared_secret is not None and len(shared_secret) < 16:
        raise ConfigError("--shared-secret must be at least 16 characters")
    if identity not in IDENTITY_MODES:
        raise ConfigError(f"--identity must be one of {', '.join(IDENTITY_MODES)}, got {identity!r}")
    if identity == "station" and not station_url:
        raise ConfigError("--identity station needs --station-url (the station verifies the callers' tokens)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir(mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    verifier = verifier_key_string(origin, key.public_key())
    _write_new(directory / KEY_FILE, signer_key_string(origin, key) + "\n", 0o600)
    (directory / PUBLIC_KEY_FILE).write_text(verifier + "\n", encoding="utf-8")
    if not station_url and not participant_keys:
        (directory / PARTICIPANTS_DIR).mkdir(exist_ok=True)
        participant_keys = PARTICIPANTS_DIR
    lines = [
        "# Hong Kong station connector: clearing-house configuration.",
        "# Every setting can be overridden by CONNECTOR_CH_<SECTION>_<KEY>.",
        "[clearinghouse]",
        f"listen_host = {_toml_str(host)}",
        f"listen_port = {port}",
        f"public_url = {_toml_str(public_url or f'http://{host}:{port}')}",
        "max_entry_bytes = 4096",
        "# 1: entry signatures are checked in a worker process (another core); 0: in the event loop",
        "verify_workers = 1",
        "",
        "[database]",
        f"url = {_toml_str(database_url)}" if database_url else
        '# url = "postgresql+asyncpg://user@host/db"   (default: clearinghouse.db in this directory)',
        "",
        "[identity]",
        *(["# Callers prove who they are with the station's Dynamic Attribute Tokens.", 'mode = "station"']
          if identity == "station" else
          ["# DEV MODE: callers prove who they are with a secret shared by the whole test station.",
           'mode = "dev-shared-secret"',
           f"shared_secret = {_toml_str(shared_secret or secrets.token_urlsafe(32))}"]),
        "# the one audience accepted in callers' tokens: this clearing house's id (default: public_url); nodes",
        "# name it in [clearinghouse] audience, and the station lists it in [tokens] service_audiences",
        f"audience = {_toml_str(audience)}" if audience else "# audience = \"https://ch.example.hk\"",
        "",
        "[participants]",
        "# Public keys that entries must be signed with: a directory of <participant id>.pem files or a JSON",
        "# map (keys = ...), or the station authority's registry (station_url = ...).",
        f"keys = {_toml_str(participant_keys)}" if participant_keys else f"station_url = {_toml_str(station_url or '')}",
        "",
        "[access]",
        "# Participants whose tokens may read every process (besides the parties of each process).",
        "auditors = [" + ", ".join(_toml_str(a) for a in (auditors or [])) + "]",
        "",
    ]
    _write_new(path, "\n".join(lines), 0o600)
    return path, verifier
