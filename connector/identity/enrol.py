"""Enrolment of a node at the station: key and CSR here, certificate from the station.

The transport to the station is an `Enroller`, so that the admin-token flow of today can be
swapped for a one-time enrolment token later without touching the rest: the node makes its
key and CSR, an Enroller returns the signed certificate, the participant id and the CA
certificate, and `enrol_directory` checks and stores them next to the key:

* ``keys/node.crt`` — the participant certificate (also the node's TLS certificate under mTLS),
* ``keys/station-ca.crt`` — the station CA,
* ``keys/participant.json`` — the station's public record of the participant (organisation,
  jurisdiction, membership, security profile), the claims the self-description states.

Nothing is left behind when enrolment fails.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import aiohttp

from ..bodies import BodyTooLarge, read_limited
from .keys import write_private_key, write_public_file
from .pki import CertificateError, check_issued, load_certificate, make_csr, participant_id
from ..errors import IdentityError

PARTICIPANT_FILE = "participant.json"


class EnrolmentError(IdentityError):
    """Enrolment failed; the message says why in one line (never containing a secret)."""


@dataclass
class Enrolment:
    participant_id: str
    certificate_pem: str
    ca_pem: str
    record: dict[str, Any]


class Enroller(Protocol):
    async def enrol(self, *, name: str, jurisdiction: str, csr_pem: str, connector_url: str) -> Enrolment: ...


class AdminTokenEnroller:
    """Enrolment through the station's admin API (``POST /admin/participants``)."""

    def __init__(self, station_url: str, admin_token: str, *, timeout: float = 20.0) -> None:
        self.station_url = station_url.rstrip("/")
        self._token = admin_token
        self.timeout = timeout

    async def enrol(self, *, name: str, jurisdiction: str, csr_pem: str, connector_url: str) -> Enrolment:
        url = f"{self.station_url}/admin/participants"
        body = {"name": name, "jurisdiction": jurisdiction, "csr": csr_pem, "connectorUrl": connector_url}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
                async with http.post(url, json=body, headers={"Authorization": f"Bearer {self._token}"},
                                     allow_redirects=False) as resp:
                    raw = await read_limited(resp, 256 * 1024)
                    status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError, BodyTooLarge) as exc:
            raise EnrolmentError(f"cannot reach the station at {self.station_url}: {type(exc).__name__}") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if status != 201 or not isinstance(doc, dict):
            reason = doc.get("error") if isinstance(doc, dict) else None
            raise EnrolmentError(f"the station refused the enrolment ({status}): {reason or 'no reason given'}")
        try:
            return Enrolment(participant_id=doc["participantId"], certificate_pem=doc["certificate"],
                             ca_pem=doc["caCertificate"],
                             record={k: v for k, v in doc.items() if k not in ("certificate", "caCertificate")})
        except KeyError as exc:
            raise EnrolmentError(f"the station's answer lacks {exc.args[0]}") from None


def host_names(public_url: str) -> list[str]:
    host = urlparse(public_url).hostname or ""
    names = [host] if host else []
    if host in ("127.0.0.1", "localhost"):
        names = ["127.0.0.1", "localhost"]
    return names


async def enrol_directory(directory: Path, *, name: str, jurisdiction: str, public_url: str,
                          enroller: Enroller) -> Enrolment:
    """Make keys/node.key, enrol it, check and store the certificate. Removes what it created
    if anything fails (EnrolmentError)."""
    keys = Path(directory) / "keys"
    created_keys_dir = not keys.exists()
    keys.mkdir(parents=True, mode=0o700, exist_ok=True)
    made: list[Path] = []
    try:
        key_path = keys / "node.key"
        if key_path.exists():
            raise EnrolmentError(f"{key_path} already exists; refusing to reuse or overwrite a key")
        key = write_private_key(key_path)
        made.append(key_path)
        csr = make_csr(key, name, host_names(public_url)).decode()
        enrolment = await enroller.enrol(name=name, jurisdiction=jurisdiction, csr_pem=csr,
                                         connector_url=public_url)
        try:
            cert = load_certificate(enrolment.certificate_pem)
            ca = load_certificate(enrolment.ca_pem)
            check_issued(cert, ca, key)
            pid = participant_id(cert)
        except CertificateError as exc:
            raise EnrolmentError(f"the station's certificate is unusable: {exc}") from None
        if pid != enrolment.participant_id:
            raise EnrolmentError("the station's participant id does not match its certificate")
        for filename, data in (("node.crt", enrolment.certificate_pem), ("station-ca.crt", enrolment.ca_pem),
                               (PARTICIPANT_FILE, json.dumps(enrolment.record, indent=2))):
            write_public_file(keys / filename, data.encode())
            made.append(keys / filename)
        return enrolment
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        if created_keys_dir:
            shutil.rmtree(keys, ignore_errors=True)
        raise


def read_record(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "keys" / PARTICIPANT_FILE).read_text(encoding="utf-8"))


async def init_enrolled_node(directory: Path, *, name: str, station_url: str, enroller: Enroller, jurisdiction: str,
                             port: int = 8181, host: str = "127.0.0.1", public_url: str | None = None,
                             database_url: str | None = None, tls: bool = False) -> tuple[Path, Enrolment]:
    """`connector init DIR --station URL ...`: enrol, then write connector.toml in station mode
    with the participant id the station certified. Leaves nothing behind on failure."""
    from .. import config as config_mod
    from .sd import JURISDICTION_RE

    directory = Path(directory)
    if (directory / config_mod.CONFIG_FILE).exists():
        raise config_mod.ConfigError(f"{directory / config_mod.CONFIG_FILE} already exists; refusing to overwrite a node's configuration")
    if not name.strip():
        raise config_mod.ConfigError("--name must not be empty")
    if not JURISDICTION_RE.fullmatch(jurisdiction or ""):
        raise config_mod.ConfigError("--jurisdiction is required with --station: an ISO 3166 code or a station code "
                                     "such as HK, MO or CN-GD-SZ")
    parsed = urlparse(station_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise config_mod.ConfigError(f"--station must be the station's http(s) URL, got {station_url!r}")
    public_url = public_url or f"http{'s' if tls else ''}://{host}:{port}"
    if urlparse(public_url).scheme not in ("http", "https"):
        raise config_mod.ConfigError(f"--public-url must be an http(s) URL, got {public_url!r}")
    created_dir = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        enrolment = await enrol_directory(directory, name=name.strip(), jurisdiction=jurisdiction,
                                          public_url=public_url, enroller=enroller)
        try:
            path = config_mod.init_directory(directory, name=name.strip(), port=port, host=host, public_url=public_url,
                                             database_url=database_url, participant_id=enrolment.participant_id,
                                             jurisdiction=jurisdiction, station_url=station_url, tls=tls)
        except BaseException:
            for filename in ("node.key", "node.crt", "station-ca.crt", PARTICIPANT_FILE):
                (directory / "keys" / filename).unlink(missing_ok=True)
            raise
        return path, enrolment
    except BaseException:
        if created_dir:
            shutil.rmtree(directory, ignore_errors=True)
        raise
