"""Node configuration: `connector.toml` in the node directory, overridable by
environment variables named CONNECTOR_<SECTION>_<KEY> (e.g. CONNECTOR_NODE_LISTEN_PORT)."""
from __future__ import annotations

import os
import secrets
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from .telemetry import SCHEMA as TELEMETRY_SCHEMA, TelemetrySettings, settings_from as _telemetry_from
from .errors import SetupError

CONFIG_FILE = "connector.toml"


class ConfigError(SetupError):
    """A setting is missing or wrong. The message names the setting."""


@dataclass
class NodeSettings:
    participant_id: str
    name: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8181
    public_url: str = "http://127.0.0.1:8181"
    jurisdiction: str = ""  # e.g. HK, CN-GD-SZ; a station claim, self-asserted in dev mode


@dataclass
class Settings:
    directory: Path
    node: NodeSettings
    database_url: str
    management_api_key: str
    identity_mode: str = "dev-shared-secret"
    identity_shared_secret: str = ""
    identity_station_url: str = ""  # station mode: the station authority's issuer URL
    identity_max_token_lifetime: int = 3600  # the longest token lifetime accepted (the station's default)
    tls_enabled: bool = False  # mTLS between nodes with station certificates (station mode only)
    max_body_bytes: int = 1024 * 1024
    # a body that leaves the JSON-LD fast path: limits, and the worker processes that expand it
    jsonld_max_bytes: int = 1024 * 1024
    jsonld_max_depth: int = 32
    jsonld_max_nodes: int = 50_000
    jsonld_timeout_ms: int = 5000
    jsonld_workers: int = 1
    jsonld_memory_mib: int = 512  # what one body may make a worker allocate
    tck_enabled: bool = False
    # the outbox ([outbox]): retried with capped exponential backoff and jitter until delivered or
    # the deadline of the message's kind passes (None: never); then a dead letter
    outbox_message_deadline: float | None = 86400.0
    outbox_clearinghouse_deadline: float | None = None
    outbox_retry_initial: float = 0.5
    outbox_retry_max: float = 300.0
    outbox_lease_seconds: float = 30.0
    # private, loopback, link-local ... destinations this node may nevertheless send to (see node/destinations.py)
    allowed_destinations: tuple[str, ...] = ()
    dataplane_data_root: Path | None = None  # files an asset may name live under it
    dataplane_upstream_hosts: tuple[str, ...] = ()  # hosts an HTTP asset may fetch from
    dataplane_token_ttl: int = 3600  # seconds a pull token is valid (suspension revokes at once)
    dataplane_upstream_timeout: int = 30  # seconds an HTTP upstream may stay silent
    clearinghouse_url: str = ""  # where every protocol event and data access is logged (none: not logged)
    clearinghouse_verifier_key: str = ""  # the log's public key, pinned: receipts must verify against it
    clearinghouse_audience: str = ""  # the clearing house's id, our tokens' audience there (default: its url)
    clearinghouse_audit_interval: int = 600  # seconds between audits of the kept receipts (0: only on demand)
    clearinghouse_audit_batch: int = 1000  # receipts re-checked per scheduled audit (the next run goes on from there)
    compute_memory_mb: int = 256  # [compute] what one computation may hold in memory (DuckDB memory_limit)
    compute_time_ms: int = 10000  # [compute] how long one computation may run before it is interrupted
    compute_concurrency: int = 2  # [compute] computations run at once (others wait their turn)
    # refusals in the access log are kept at least this long (PDPO s.27: a log of refusals, at least 4 years)
    compliance_refusal_retention_days: int = 1461
    console_enabled: bool = True  # the operator console at /console/ ([console] enabled = false turns it off)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)  # [telemetry]: traces and log format
    extra: dict[str, Any] = field(default_factory=dict)

    def dsp_base(self, version: str) -> str:
        return f"{self.node.public_url.rstrip('/')}/dsp/{version}"


# section -> key -> (type, required)
SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "node": {
        "participant_id": (str, True),
        "name": (str, True),
        "listen_host": (str, False),
        "listen_port": (int, False),
        "public_url": (str, False),
        "jurisdiction": (str, False),
    },
    "database": {"url": (str, False)},
    "management": {"api_key": (str, True)},
    "identity": {"mode": (str, False), "shared_secret": (str, False), "station_url": (str, False),
                 "audience": (str, False), "max_token_lifetime": (int, False)},
    "tls": {"enabled": (bool, False)},
    "dsp": {"max_body_bytes": (int, False), "outbox_attempts": (int, False), "allowed_destinations": (list, False),
            "jsonld_max_bytes": (int, False), "jsonld_max_depth": (int, False), "jsonld_max_nodes": (int, False),
            "jsonld_timeout_ms": (int, False), "jsonld_workers": (int, False), "jsonld_memory_mib": (int, False)},
    "tck": {"enabled": (bool, False)},
    "outbox": {"message_deadline_seconds": (int, False), "clearinghouse_deadline_seconds": (int, False),
               "retry_initial_ms": (int, False), "retry_max_seconds": (int, False), "lease_seconds": (int, False)},
    "dataplane": {"data_root": (str, False), "upstream_hosts": (str, False), "token_ttl": (int, False),
                  "upstream_timeout": (int, False)},
    "clearinghouse": {"url": (str, False), "verifier_key": (str, False), "audience": (str, False),
                      "audit_interval": (int, False), "audit_batch": (int, False)},
    "compute": {"memory_limit_mb": (int, False), "time_limit_ms": (int, False), "concurrency": (int, False)},
    "compliance": {"refusal_retention_days": (int, False)},
    "console": {"enabled": (bool, False)},
}


IDENTITY_MODES = ("station", "dev-shared-secret", "edc-iam-mock-test-only")
STATION_FILES = ("node.key", "node.crt", "station-ca.crt", "participant.json")


def _check_station_files(directory: Path, participant_id: str) -> None:
    """Station mode needs the enrolment's files, and [node] participant_id must be the
    certificate's SKI:keyid:AKI."""
    keys = directory / "keys"
    for name in STATION_FILES:
        if not (keys / name).is_file():
            raise ConfigError(f"{keys / name} is missing (station mode needs an enrolled node: connector init DIR --station URL ...)")
    from .identity.pki import CertificateError, load_certificate, participant_id as cert_participant_id

    try:
        cert_id = cert_participant_id(load_certificate((keys / "node.crt").read_bytes()))
    except CertificateError as exc:
        raise ConfigError(f"{keys / 'node.crt'} is unusable: {exc}") from None
    if cert_id != participant_id:
        raise ConfigError(f"setting [node] participant_id must be the certificate's id {cert_id} in station mode, "
                          f"got {participant_id!r}")


def default_database_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{(directory / 'node.db').resolve()}"


def _coerce(section: str, key: str, value: Any, kind: type) -> Any:
    name = f"[{section}] {key}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"setting {name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"setting {name} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be an integer, got {value!r}") from None
    if kind is list:  # a TOML array, or a comma-separated environment value
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"setting {name} must be a list of non-empty strings")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"setting {name} must be a string, got {value!r}")
    return value


def read_sections(path: Path, schema: Mapping[str, Mapping[str, tuple[type, bool]]], *, env_prefix: str,
                  environ: Mapping[str, str], create_hint: str) -> dict[str, dict[str, Any]]:
    """Read a TOML file against `schema` (section -> key -> (type, required)), apply
    <env_prefix><SECTION>_<KEY> overrides, coerce the types. Every section is in the result.
    Used by the node, the station and the clearing house; raises ConfigError naming the setting."""
    schema = {**schema, "telemetry": TELEMETRY_SCHEMA}  # every service has the [telemetry] section
    if not path.is_file():
        raise ConfigError(f"no {path.name} in {path.parent} ({create_hint})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    values: dict[str, dict[str, Any]] = {}
    for section, keys in raw.items():
        if section not in schema:
            raise ConfigError(f"unknown section [{section}] in {path}")
        if not isinstance(keys, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
        for key, value in keys.items():
            if key not in schema[section]:
                raise ConfigError(f"unknown setting [{section}] {key} in {path}")
            values.setdefault(section, {})[key] = value
    for env_name, env_value in environ.items():
        if env_name.startswith(env_prefix):
            section, _, key = env_name[len(env_prefix):].lower().partition("_")
            if section in schema and key in schema[section]:
                values.setdefault(section, {})[key] = env_value
    checked: dict[str, dict[str, Any]] = {section: {} for section in schema}
    for section, keys in schema.items():
        for key, (kind, required) in keys.items():
            if key in values.get(section, {}):
                checked[section][key] = _coerce(section, key, values[section][key], kind)
            elif required:
                raise ConfigError(f"setting [{section}] {key} is missing (env {env_prefix}{section.upper()}_{key.upper()})")
    return checked


def telemetry_of(checked: Mapping[str, dict[str, Any]]) -> TelemetrySettings:
    """The [telemetry] section of any service's checked config (see connector/telemetry.py)."""
    try:
        return _telemetry_from(checked.get("telemetry", {}))
    except ValueError as exc:
        raise ConfigError(f"setting {exc}") from None


def load(directory: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read DIR/connector.toml, apply CONNECTOR_* overrides, validate. Raises ConfigError."""
    environ = os.environ if environ is None else environ
    directory = Path(directory)
    checked = read_sections(directory / CONFIG_FILE, SCHEMA, env_prefix="CONNECTOR_", environ=environ,
                            create_hint=f"create one with: connector init {directory} --name ORG")

    node = NodeSettings(**checked["node"])
    if not 0 <= node.listen_port <= 65535:
        raise ConfigError(f"setting [node] listen_port must be 0..65535, got {node.listen_port}")
    public = urlparse(node.public_url)
    if public.scheme not in ("http", "https") or not public.netloc:
        raise ConfigError(f"setting [node] public_url must be an http(s) URL, got {node.public_url!r}")
    api_key = checked["management"]["api_key"]
    if len(api_key) < 16:
        raise ConfigError("setting [management] api_key must be at least 16 characters (the node refuses to start without one)")
    db_url = checked.get("database", {}).get("url") or default_database_url(directory)
    if not (db_url.startswith("sqlite+aiosqlite:///") or db_url.startswith("postgresql+asyncpg://")):
        raise ConfigError(
            f"setting [database] url must start with sqlite+aiosqlite:/// or postgresql+asyncpg://, got {db_url.split('://')[0]}://..."
        )
    identity = checked.get("identity", {})
    mode = identity.get("mode")
    # The shared-secret dev mode is an explicit opt-in: a configuration must name its mode.
    if mode is None:
        raise ConfigError("setting [identity] mode is missing: 'station' (tokens from the station authority) "
                          "or 'dev-shared-secret' (development only)")
    if mode not in IDENTITY_MODES:
        raise ConfigError("setting [identity] mode must be 'station', 'dev-shared-secret' (development only) or "
                          f"'edc-iam-mock-test-only' (interop tests only), got {mode!r}")
    secret = identity.get("shared_secret", "")
    station_url = identity.get("station_url", "").rstrip("/")
    if "audience" in identity:
        raise ConfigError("setting [identity] audience is no longer supported: a node accepts only tokens whose "
                          "audience is its own participant id; remove the line")
    max_lifetime = identity.get("max_token_lifetime", 3600)
    if not 60 <= max_lifetime <= 86400:
        raise ConfigError(f"setting [identity] max_token_lifetime must be between 60 and 86400 seconds, got {max_lifetime}")
    tls_enabled = checked.get("tls", {}).get("enabled", False)
    if mode == "dev-shared-secret":
        if len(secret) < 16:
            raise ConfigError("setting [identity] shared_secret must be at least 16 characters in dev-shared-secret mode")
        if tls_enabled:
            raise ConfigError("setting [tls] enabled needs [identity] mode = 'station' (certificates come from the station)")
    elif mode == "edc-iam-mock-test-only":  # interop tests with Eclipse EDC's iam-mock: proves nothing
        if environ.get("CONNECTOR_IDENTITY_MODE") == mode:
            raise ConfigError("setting [identity] mode = 'edc-iam-mock-test-only' (unsigned EDC test tokens) must be "
                              "written in connector.toml, not set through CONNECTOR_IDENTITY_MODE")
        if tls_enabled:
            raise ConfigError("setting [tls] enabled needs [identity] mode = 'station' (certificates come from the station)")
    else:
        parsed_station = urlparse(station_url)
        if parsed_station.scheme not in ("http", "https") or not parsed_station.netloc:
            raise ConfigError(f"setting [identity] station_url must be the station's http(s) URL in station mode, got {station_url!r}")
        _check_station_files(directory, node.participant_id)
        if tls_enabled and public.scheme != "https":
            raise ConfigError(f"setting [node] public_url must be https:// when [tls] enabled is true, got {node.public_url!r}")
    dsp = checked.get("dsp", {})
    max_body = dsp.get("max_body_bytes", 1024 * 1024)
    if not 1024 <= max_body <= 64 * 1024 * 1024:
        raise ConfigError(f"setting [dsp] max_body_bytes must be between 1024 and 67108864, got {max_body}")
    allowed = tuple(dsp.get("allowed_destinations", ()))
    from .node.destinations import parse_allow_list
    try:
        parse_allow_list(allowed)
    except ValueError as exc:
        raise ConfigError(f"setting [dsp] allowed_destinations: {exc} (entries such as 127.0.0.1, localhost:8282, "
                          "10.0.0.0/8, [::1]:8282)") from None
    return Settings(
        directory=directory,
        node=node,
        database_url=db_url,
        management_api_key=api_key,
        identity_mode=mode,
        identity_shared_secret=secret,
        identity_station_url=station_url,
        identity_max_token_lifetime=max_lifetime,
        tls_enabled=tls_enabled,
        max_body_bytes=max_body,
        **_outbox(checked.get("outbox", {}), dsp),
        allowed_destinations=allowed,
        **_jsonld(dsp),
        tck_enabled=checked.get("tck", {}).get("enabled", False),
        **_dataplane(checked.get("dataplane", {}), directory),
        **_clearinghouse(checked.get("clearinghouse", {})),
        **_compute(checked.get("compute", {})),
        compliance_refusal_retention_days=_refusal_retention(checked.get("compliance", {})),
        console_enabled=checked.get("console", {}).get("enabled", True),
        telemetry=telemetry_of(checked),
    )


MIN_REFUSAL_RETENTION_DAYS = 1461  # 4 years, one of them a leap year


def _refusal_retention(values: dict[str, Any]) -> int:
    days = values.get("refusal_retention_days", MIN_REFUSAL_RETENTION_DAYS)
    if not MIN_REFUSAL_RETENTION_DAYS <= days <= 36600:
        raise ConfigError(f"setting [compliance] refusal_retention_days must be between {MIN_REFUSAL_RETENTION_DAYS} "
                          f"(4 years: PDPO s.27 keeps a log of refusals at least that long) and 36600, got {days}")
    return days


def _jsonld(dsp: dict[str, Any]) -> dict[str, Any]:
    """[dsp] jsonld_*: what a body that needs JSON-LD processing may cost (each bounded)."""
    out = {}
    for key, default, low, high in (("jsonld_max_bytes", 1024 * 1024, 1024, 64 * 1024 * 1024),
                                    ("jsonld_max_depth", 32, 4, 1000),
                                    ("jsonld_max_nodes", 50_000, 100, 10_000_000),
                                    ("jsonld_timeout_ms", 5000, 50, 600_000),
                                    ("jsonld_workers", 1, 1, 32),
                                    ("jsonld_memory_mib", 512, 64, 16384)):
        value = dsp.get(key, default)
        if not low <= value <= high:
            raise ConfigError(f"setting [dsp] {key} must be between {low} and {high}, got {value}")
        out[key] = value
    return out


def _outbox(values: dict[str, Any], dsp: dict[str, Any]) -> dict[str, Any]:
    """[outbox]: a message is retried until it is delivered or the deadline of its kind passes
    (0: never). [dsp] outbox_attempts (an attempt cap that gave up silently) is refused."""
    if "outbox_attempts" in dsp:
        raise ConfigError("setting [dsp] outbox_attempts was removed: a message is now retried until it is delivered "
                          "or [outbox] message_deadline_seconds passes (default 86400; clearing-house entries: "
                          "[outbox] clearinghouse_deadline_seconds, default 0 = never); remove the setting")
    out: dict[str, Any] = {}
    for key, field_name, default, low, high in (
            ("message_deadline_seconds", "outbox_message_deadline", 86400, 0, 366 * 86400),
            ("clearinghouse_deadline_seconds", "outbox_clearinghouse_deadline", 0, 0, 366 * 86400),
            ("retry_initial_ms", "outbox_retry_initial", 500, 10, 600_000),
            ("retry_max_seconds", "outbox_retry_max", 300, 1, 86400),
            ("lease_seconds", "outbox_lease_seconds", 30, 1, 3600)):
        value = values.get(key, default)
        if not low <= value <= high:
            raise ConfigError(f"setting [outbox] {key} must be between {low} and {high}, got {value}")
        out[field_name] = value
    for name in ("outbox_message_deadline", "outbox_clearinghouse_deadline"):
        out[name] = float(out[name]) if out[name] else None  # 0: never given up
    out["outbox_retry_initial"] = out["outbox_retry_initial"] / 1000
    out["outbox_retry_max"] = float(out["outbox_retry_max"])
    out["outbox_lease_seconds"] = float(out["outbox_lease_seconds"])
    return out


def _clearinghouse(values: dict[str, Any]) -> dict[str, Any]:
    url = values.get("url", "").rstrip("/")
    key = values.get("verifier_key", "")
    if url:
        if urlparse(url).scheme not in ("http", "https"):
            raise ConfigError(f"setting [clearinghouse] url must be an http(s) URL, got {url!r}")
        if not key:
            raise ConfigError("setting [clearinghouse] verifier_key is missing: receipts cannot be verified without "
                              "the log's public key (connector clearinghouse init prints it)")
        from .ledger.checkpoint import parse_verifier_key
        try:
            parse_verifier_key(key)
        except ValueError as exc:
            raise ConfigError(f"setting [clearinghouse] verifier_key is not a verifier key: {exc}") from None
    audience = values.get("audience", "").strip() or url
    if len(audience) > 2000 or audience == "idsc:IDS_CONNECTORS_ALL":
        raise ConfigError("setting [clearinghouse] audience must be the clearing house's own id (default: its url)")
    interval = values.get("audit_interval", 600)
    if not (interval == 0 or 1 <= interval <= 7 * 86400):
        raise ConfigError(f"setting [clearinghouse] audit_interval must be 0 (on demand only) or 1 to 604800 seconds, "
                          f"got {interval}")
    batch = values.get("audit_batch", 1000)
    if not 1 <= batch <= 100_000:
        raise ConfigError(f"setting [clearinghouse] audit_batch must be between 1 and 100000, got {batch}")
    return {"clearinghouse_url": url, "clearinghouse_verifier_key": key, "clearinghouse_audience": audience,
            "clearinghouse_audit_interval": interval, "clearinghouse_audit_batch": batch}


def _dataplane(values: dict[str, Any], directory: Path) -> dict[str, Any]:
    root = Path(values.get("data_root") or directory / "data")
    if not root.is_absolute():
        root = directory / root
    hosts = tuple(h.strip().lower() for h in values.get("upstream_hosts", "").split(",") if h.strip())
    for host in hosts:
        if "/" in host or ":" in host:
            raise ConfigError(f"setting [dataplane] upstream_hosts must list host names, got {host!r}")
    ttl = values.get("token_ttl", 3600)
    if not 10 <= ttl <= 86400:
        raise ConfigError(f"setting [dataplane] token_ttl must be between 10 and 86400 seconds, got {ttl}")
    silence = values.get("upstream_timeout", 30)
    if not 1 <= silence <= 600:
        raise ConfigError(f"setting [dataplane] upstream_timeout must be between 1 and 600 seconds, got {silence}")
    return {"dataplane_data_root": root, "dataplane_upstream_hosts": hosts, "dataplane_token_ttl": ttl,
            "dataplane_upstream_timeout": silence}


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string (the configuration writers of all three services use it)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_toml_str = toml_string


def init_directory(directory: str | Path, *, name: str, port: int = 8181, host: str = "127.0.0.1",
                   public_url: str | None = None, database_url: str | None = None,
                   shared_secret: str | None = None, participant_id: str | None = None,
                   jurisdiction: str = "", tck: bool = False, station_url: str | None = None,
                   tls: bool = False) -> Path:
    """Create DIR/connector.toml and DIR/keys/. Refuses to overwrite an existing node.

    With `station_url` the node is in station mode: its key, certificate and participant id
    come from enrolment (connector.identity.enrol.enrol_directory, run first); otherwise it
    is in the explicit dev-shared-secret mode."""
    from .identity.keys import write_private_key

    directory = Path(directory)
    path = directory / CONFIG_FILE
    if path.exists():
        raise ConfigError(f"{path} already exists; refusing to overwrite a node's configuration")
    if not name.strip():
        raise ConfigError("--name must not be empty")
    # The node's own directories are its owner's alone (an existing directory is left as it is).
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = directory / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    (directory / "data").mkdir(mode=0o700, exist_ok=True)  # the default [dataplane] data_root
    if station_url is None:
        write_private_key(keys / "node.key")
    elif not participant_id:
        raise ConfigError("station mode needs the participant id from enrolment")
    participant_id = participant_id or f"urn:hks:participant:{uuid.uuid4()}"
    public_url = public_url or f"http{'s' if tls else ''}://{host}:{port}"
    lines = [
        "# Hong Kong station connector: participant node configuration.",
        "# Every setting can be overridden by CONNECTOR_<SECTION>_<KEY>.",
        "[node]",
        f"participant_id = {_toml_str(participant_id)}",
        f"name = {_toml_str(name)}",
        f"listen_host = {_toml_str(host)}",
        f"listen_port = {port}",
        f"public_url = {_toml_str(public_url)}",
        f"jurisdiction = {_toml_str(jurisdiction)}",
        "",
        "[database]",
        f"url = {_toml_str(database_url or default_database_url(directory))}",
        "",
        "[management]",
        f"api_key = {_toml_str(secrets.token_urlsafe(32))}",
        "",
        "[identity]",
        *([
            "# Dynamic Attribute Tokens from the station authority on every call, checked on every request.",
            'mode = "station"',
            f"station_url = {_toml_str(station_url.rstrip('/'))}",
        ] if station_url is not None else [
            "# DEV MODE: peers prove who they are with a secret shared by the whole test station.",
            "# Use `connector init DIR --station URL ...` to enrol with the station authority instead.",
            'mode = "dev-shared-secret"',
            f"shared_secret = {_toml_str(shared_secret or secrets.token_urlsafe(32))}",
        ]),
        "",
        "[tls]",
        "# mTLS between nodes with the station certificate in keys/ (station mode only)",
        f"enabled = {'true' if tls else 'false'}",
        "",
        "[dsp]",
        "max_body_bytes = 1048576",
        "# Peers' callback, push and data endpoints and HTTP upstream assets on loopback, private, link-local",
        "# or multicast addresses are refused unless named here (addresses, networks, host names, optional port):",
        # The TCK calls back from this machine: a --tck node allows loopback (a production node allows nothing).
        'allowed_destinations = "127.0.0.1, localhost, ::1"' if tck
        else '# allowed_destinations = "127.0.0.1, localhost:8282, 10.0.0.0/8"',
        "",
        "[tck]",
        f"enabled = {'true' if tck else 'false'}",
        "",
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return path


def _compute(values: dict[str, Any]) -> dict[str, Any]:
    """[compute]: the bounds of one computation-only query (connector/compute)."""
    out = {}
    for key, name, default, low, high in (("memory_limit_mb", "compute_memory_mb", 256, 16, 65536),
                                          ("time_limit_ms", "compute_time_ms", 10000, 10, 600_000),
                                          ("concurrency", "compute_concurrency", 2, 1, 64)):
        value = values.get(key, default)
        if not low <= value <= high:
            raise ConfigError(f"setting [compute] {key} must be between {low} and {high}, got {value}")
        out[name] = value
    return out
