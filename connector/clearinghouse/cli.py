"""``connector clearinghouse init|run|trust`` and ``connector audit verify``."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import List, Optional
from urllib.parse import quote, urlparse

import typer

from . import config as config_mod

app = typer.Typer(help="The clearing house: a publicly verifiable log of contract and transfer events.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
audit_app = typer.Typer(help="Verify a clearing house's log from outside, trusting only its public key.",
                        no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

TOKEN_ENV = "CONNECTOR_AUDIT_TOKEN"
MAX_SINCE_BYTES = 256 * 1024 * 1024


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def init(directory: Path = typer.Argument(..., help="clearing-house directory to create"),
         origin: Optional[str] = typer.Option(None, help="the log's name (checkpoint origin and key name), "
                                                        "e.g. station.example.hk/clearinghouse"),
         host: str = typer.Option("127.0.0.1", help="listen address"),
         port: int = typer.Option(8300, help="listen port"),
         public_url: Optional[str] = typer.Option(None, help="URL nodes use to reach the clearing house"),
         database_url: Optional[str] = typer.Option(None, help="default: SQLite file in the directory; or "
                                                               "postgresql+asyncpg://user@host/db"),
         shared_secret: Optional[str] = typer.Option(None, help="dev-mode station secret shared by test participants"),
         participant_keys: Optional[str] = typer.Option(None, help="directory or JSON file of participants' "
                                                                   "public keys (default: DIR/participants/)"),
         station_url: Optional[str] = typer.Option(None, help="take participants' keys from the station authority"),
         identity: str = typer.Option("dev-shared-secret", help="how callers prove who they are: 'station' "
                                                                 "(its tokens; needs --station-url) or "
                                                                 "'dev-shared-secret'"),
         auditor: Optional[List[str]] = typer.Option(None, help="participant id allowed to read every process "
                                                                "(repeatable)")) -> None:
    """Create a clearing-house directory: clearinghouse.toml, the log key (keys/log.key, 0600) and log.pub."""
    try:
        path, verifier = config_mod.init_directory(
            directory, origin=origin, host=host, port=port, public_url=public_url, database_url=database_url,
            shared_secret=shared_secret, participant_keys=participant_keys, station_url=station_url,
            auditors=auditor or [], identity=identity)
        config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    typer.echo(f"created {path}")
    typer.echo(f"verifier key: {verifier}")
    typer.echo(f"start it with: connector clearinghouse run {directory}")


@app.command()
def run(directory: Path = typer.Argument(..., help="clearing-house directory")) -> None:
    """Start the clearing house (prints 'listening on URL' when ready)."""
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    from .app import run as run_service
    raise typer.Exit(run_service(settings))


@app.command()
def trust(directory: Path = typer.Argument(..., help="clearing-house directory"),
          participant: Optional[str] = typer.Option(None, help="participant id"),
          public_key: Optional[Path] = typer.Option(None, help="PEM public key or certificate of the participant"),
          node: Optional[Path] = typer.Option(None, help="a node directory: take its participant id and the public "
                                                         "half of keys/node.key")) -> None:
    """Register a participant's public key in a clearing house that uses a key directory (dev mode)."""
    from .keys import public_key_from_pem, public_pem
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    if settings.participant_keys is None or not settings.participant_keys.is_dir():
        fail("this clearing house does not take keys from a directory ([participants] keys)")
    if node is not None:
        from .. import config as node_config
        try:
            node_settings = node_config.load(node)
        except node_config.ConfigError as exc:
            fail(str(exc))
        participant = participant or node_settings.node.participant_id
        public_key = node / "keys" / "node.key"
    if not participant or public_key is None:
        fail("give --participant and --public-key, or --node")
    try:
        key = public_key_from_pem(public_key.read_bytes(), str(public_key))
    except (OSError, ValueError) as exc:
        fail(str(exc))
    target = settings.participant_keys / f"{quote(participant, safe=':@')}.pem"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(public_pem(key))
    os.replace(tmp, target)
    typer.echo(f"trusted {participant} ({target})")


@audit_app.command()
def verify(clearinghouse: str = typer.Option(..., "--clearinghouse", help="clearing-house URL"),
           process: Optional[str] = typer.Option(None, "--process", help="process id to audit"),
           all_entries: bool = typer.Option(False, "--all", help="audit the whole log (auditor token)"),
           key: str = typer.Option(..., "--key", help="the log's verifier key, or a file holding it (log.pub)"),
           since: Optional[Path] = typer.Option(None, help="a checkpoint (signed note) or an audit state saved "
                                                           "with --save: check the log still extends it"),
           save: Optional[Path] = typer.Option(None, help="after a successful audit, save the checkpoint and the "
                                                          "verified leaf hashes here (for the next --since)"),
           keys: Optional[Path] = typer.Option(None, help="participants' public keys: directory of PEM files or "
                                                          "JSON map"),
           station: Optional[str] = typer.Option(None, help="take participants' keys from this station authority"),
           token_file: Optional[Path] = typer.Option(None, help=f"file holding the Authorization token "
                                                                f"(default: ${TOKEN_ENV})"),
           quiet: bool = typer.Option(False, help="print only failing entries and the verdict"),
           json_output: bool = typer.Option(False, "--json", help="print a JSON summary as the last line")) -> None:
    """Verify entries, signatures, inclusion and consistency; exit 1 if anything fails."""
    from ..ledger.checkpoint import CheckpointError, parse_verifier_key
    from .audit import audit_all, audit_process
    from .client import ClearingHouseClient, ClearingHouseError
    from .keys import LocalParticipantKeys, StationParticipantKeys
    from .verify import AuditState, LogVerificationError

    if bool(process) == all_entries:
        fail("give exactly one of --process PID and --all")
    parsed = urlparse(clearinghouse)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        fail(f"--clearinghouse must be an http(s) URL, got {clearinghouse!r}")
    key_text = key
    if Path(key).is_file():
        key_text = Path(key).read_text(encoding="utf-8").strip()
    try:
        verifier = parse_verifier_key(key_text)
    except CheckpointError as exc:
        fail(f"--key is not a verifier key: {exc}")
    if bool(keys) == bool(station):
        fail("give exactly one of --keys (participants' public keys) and --station (to check entry signatures)")
    token = os.environ.get(TOKEN_ENV, "")
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"--token-file: {exc.strerror}: {token_file}")
    if not token:
        fail(f"no token: set {TOKEN_ENV} or give --token-file")
    if not token.lower().startswith("bearer "):
        token = "Bearer " + token
    since_value: str | AuditState | None = None
    if since is not None:
        try:
            if since.stat().st_size > MAX_SINCE_BYTES:
                fail(f"--since {since} is larger than {MAX_SINCE_BYTES} bytes")
            text = since.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--since {since}: {getattr(exc, 'strerror', None) or exc}")
        if text.lstrip().startswith("{"):
            try:
                since_value = AuditState.from_json(json.loads(text))
            except (json.JSONDecodeError, LogVerificationError) as exc:
                fail(f"--since {since}: {exc}")
        else:
            since_value = text
    try:
        participant_keys = LocalParticipantKeys(keys) if keys else StationParticipantKeys(station or "")
    except (OSError, ValueError) as exc:
        fail(f"--keys: {exc}")

    remember = save is not None or isinstance(since_value, AuditState)

    async def go():  # noqa: ANN202
        async with ClearingHouseClient(clearinghouse, verifier, authorization=token) as client:
            try:
                if all_entries:
                    return await audit_all(client, participant_keys, since=since_value, emit=typer.echo, quiet=quiet,
                                           remember=remember)
                return await audit_process(client, process or "", participant_keys, since=since_value,
                                           emit=typer.echo, quiet=quiet, remember=remember)
            finally:
                close = getattr(participant_keys, "close", None)
                if close is not None:
                    await close()

    try:
        report = asyncio.run(go())
    except ClearingHouseError as exc:
        fail(str(exc))
    except LogVerificationError as exc:
        typer.echo(f"verdict: FAILED: {exc}")
        raise typer.Exit(1) from None
    typer.echo(report.verdict_line())
    if report.ok and save is not None:
        tmp = save.with_name(save.name + ".tmp")
        tmp.write_text(json.dumps(report.state().to_json()), encoding="utf-8")
        os.replace(tmp, save)
    if json_output:
        typer.echo(json.dumps(report.to_json()))
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:  # pragma: no cover - `python -m connector.clearinghouse.cli`
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


from ..console.clearinghouse import users_app  # noqa: E402

app.add_typer(users_app, name="user", help="local accounts of the clearing house's console (/console/)")
