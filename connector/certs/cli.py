"""`connector asset register|certificate` (a running node, through its management API) and
`connector verify-certificate` (offline: only the station's and the clearing house's public keys)."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import httpx
import typer

from .certificate import MAX_BUNDLE_BYTES, CertificateError, verify_bundle

#: how long `asset certificate` waits for the station to log an approved certificate
LOGGING_WAIT_SECONDS = 30.0
app = typer.Typer(help="dataset registration certificates of a running node", no_args_is_help=True)


def _call(directory: Path, method: str, path: str) -> dict:
    from ..compliance.cli import _call as call_node  # the node's URL and API key from its connector.toml

    return call_node(directory, method, path).json()


@app.command()
def register(directory: Path = typer.Argument(..., help="node directory (its connector.toml)"),
             asset_id: str = typer.Argument(..., help="the asset (dataset) id")) -> None:
    """Compute the asset's SHA-256 and ask the station for a registration certificate (the station's
    operator reviews it; then `connector asset certificate` fetches, logs and advertises it). An asset
    that already has a certificate is registered as a new version, replacing it."""
    doc = _call(directory, "POST", f"/assets/{quote(asset_id, safe='')}/registration")
    replaces = f", replacing certificate {doc['replaces']}" if doc.get("replaces") else ""
    typer.echo(f"registration request {doc['request']} sent for {asset_id} (sha256 {doc['sha256']}){replaces}; "
               "waiting for the station's review")


@app.command()
def certificate(directory: Path = typer.Argument(..., help="node directory (its connector.toml)"),
                asset_id: str = typer.Argument(..., help="the asset (dataset) id"),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the certificate file here")) -> None:
    """Ask the station how the review went; once approved and logged at the clearing house by the
    station, the certificate is advertised in the catalog. With --out, write the certificate file."""
    doc = _call(directory, "POST", f"/assets/{quote(asset_id, safe='')}/registration/refresh")
    deadline = time.monotonic() + LOGGING_WAIT_SECONDS
    while doc["status"] == "logging" and time.monotonic() < deadline:  # the station's entry is on its way
        time.sleep(0.5)
        doc = _call(directory, "POST", f"/assets/{quote(asset_id, safe='')}/registration/refresh")
    typer.echo(f"{asset_id}: {doc['status']}" + (f" ({doc['reason']})" if doc.get("reason") else ""))
    if doc["status"] == "approved" and out is not None:
        bundle = _call(directory, "GET", f"/assets/{quote(asset_id, safe='')}/certificate")
        out.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")
    if doc["status"] != "approved":
        raise typer.Exit(1 if doc["status"] == "rejected" else 3)


def _text(source: str, what: str, limit: int = MAX_BUNDLE_BYTES * 4) -> str:
    """A file's text, or an http(s) URL's body (the revocation list or keys may be fetched)."""
    if source.startswith(("http://", "https://")):
        try:
            resp = httpx.get(source, timeout=30, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise CertificateError(f"the {what} could not be fetched ({type(exc).__name__})") from None
        if resp.status_code != 200 or len(resp.content) > limit:
            raise CertificateError(f"the {what} could not be fetched (HTTP {resp.status_code})")
        return resp.text
    path = Path(source)
    if not path.is_file() or path.stat().st_size > limit:
        raise CertificateError(f"the {what} file is missing or over {limit} bytes")
    return path.read_text(encoding="utf-8").strip()


def verify_command(file: Path = typer.Argument(..., help="the certificate file (JSON bundle)"),
                   station_keys: str = typer.Option(..., "--station-keys", help="the station's JWKS (file or URL)"),
                   clearinghouse_key: str = typer.Option(..., "--clearinghouse-key",
                                                         help="the clearing house's verifier key (text or file)"),
                   revocations: Optional[str] = typer.Option(None, "--revocations",
                                                             help="the station's signed revocation list (file or URL)"),
                   data: Optional[Path] = typer.Option(None, "--data", help="check these bytes against the digest"),
                   owner: Optional[str] = typer.Option(None, "--owner", help="the participant the dataset must be of"),
                   dataset: Optional[str] = typer.Option(None, "--dataset", help="the dataset id it must be for"),
                   at: Optional[str] = typer.Option(None, "--at", help="check as of this time (ISO 8601, default: now): "
                                                    "the revocation list must be current then")) -> None:
    """Check a dataset registration certificate offline: the station's signature, the clearing house's
    inclusion proof against its signed checkpoint, and where given the revocation list, the data's
    SHA-256, the owner and the dataset id. A revocation list past its next update is refused (an old
    list could hide a later revocation). Exit 0 when it verifies, 1 (with the reason) when not."""
    try:
        when = _time(at) if at is not None else datetime.now(timezone.utc)
        bundle = json.loads(_text(str(file), "certificate"))
        jwks = json.loads(_text(station_keys, "station's JWKS"))
        ch_key = clearinghouse_key if not Path(clearinghouse_key).is_file() else _text(clearinghouse_key, "key")
        listed = _text(revocations, "revocation list") if revocations is not None else None
        digest = None
        if data is not None:
            if not data.is_file():
                raise CertificateError("the --data file is missing")
            h = hashlib.sha256()
            with open(data, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        ok = verify_bundle(bundle, station_jwks=jwks, clearinghouse_key=ch_key, revocations=listed,
                           data_sha256=digest, owner=owner, dataset_id=dataset, at=when)
    except json.JSONDecodeError:
        typer.echo("REFUSED: the certificate or the keys are not JSON", err=True)
        raise typer.Exit(1)
    except CertificateError as exc:
        typer.echo(f"REFUSED: {exc}", err=True)
        raise typer.Exit(1)
    c = ok.claims
    typer.echo(f"VERIFIED: certificate {c['serial']} for dataset {c['datasetId']} of {c['owner']} "
               f"(sha256 {c['sha256']}, issued {c['issuedAt']}"
               + (f", replaces {c['replaces']}" if c.get("replaces") else "")
               + f"), logged at index {ok.leaf_index} of a tree of {ok.tree_size}"
               + ("; the data matches" if digest else "") + (f"; not revoked (revocation list {ok.revocations_number})" if listed else ""))


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CertificateError(f"--at {text[:40]!r} is not an ISO 8601 time (e.g. 2026-12-02T08:30:00Z)") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)
