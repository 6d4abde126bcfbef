"""The `connector` command."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from . import config as config_mod

app = typer.Typer(help="Hong Kong station connector: participant node, station authority and clearing house.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def init(directory: Path = typer.Argument(..., help="node directory to create"),
         name: str = typer.Option(..., "--name", help="organisation name"),
         port: int = typer.Option(8181, help="listen port"),
         host: str = typer.Option("127.0.0.1", help="listen address"),
         public_url: Optional[str] = typer.Option(None, help="URL peers use to reach this node"),
         database_url: Optional[str] = typer.Option(None, help="default: SQLite file in the node directory"),
         shared_secret: Optional[str] = typer.Option(None, help="dev-mode station secret shared by all test participants"),
         participant_id: Optional[str] = typer.Option(None, help="default: a new urn:hks:participant:<uuid>"),
         jurisdiction: str = typer.Option("", help="where the organisation is, e.g. HK or CN-GD-SZ"),
         tck: bool = typer.Option(False, help="enable the TCK profile (seeded ids, webhooks)"),
         station: Optional[str] = typer.Option(None, help="enrol with the station authority at this URL "
                                               "(station mode); without it the node uses the dev shared secret"),
         admin_token: Optional[str] = typer.Option(None, envvar="CONNECTOR_STATION_ADMIN_TOKEN",
                                                   help="the station's admin token (or env CONNECTOR_STATION_ADMIN_TOKEN)"),
         tls: bool = typer.Option(False, help="station mode: mTLS between nodes with the station certificate")) -> None:
    """Create a node directory: connector.toml and keys/ (with --station: enrolled at the station)."""
    if station is not None:
        _init_enrolled(directory, name=name, port=port, host=host, public_url=public_url, database_url=database_url,
                       jurisdiction=jurisdiction, station=station, admin_token=admin_token, tls=tls,
                       conflicting={"--shared-secret": shared_secret, "--participant-id": participant_id,
                                    "--tck": tck or None})
        return
    if tls:
        fail("--tls needs --station URL (certificates come from the station)")
    try:
        path = config_mod.init_directory(directory, name=name, port=port, host=host, public_url=public_url,
                                         database_url=database_url, shared_secret=shared_secret,
                                         participant_id=participant_id, jurisdiction=jurisdiction, tck=tck)
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    typer.echo(f"created {path}")
    typer.echo(f"participant id: {settings.node.participant_id}")
    typer.echo(f"start it with: connector run {directory}")


def _init_enrolled(directory: Path, *, name: str, port: int, host: str, public_url: Optional[str],
                   database_url: Optional[str], jurisdiction: str, station: str, admin_token: Optional[str],
                   tls: bool, conflicting: dict) -> None:
    import asyncio

    from .identity.enrol import AdminTokenEnroller, EnrolmentError, init_enrolled_node

    for option, value in conflicting.items():
        if value is not None:
            fail(f"{option} cannot be combined with --station (the station certifies the participant id)")
    if not admin_token:
        fail("--station needs --admin-token (or env CONNECTOR_STATION_ADMIN_TOKEN)")
    try:
        path, enrolment = asyncio.run(init_enrolled_node(
            directory, name=name, station_url=station, enroller=AdminTokenEnroller(station, admin_token),
            jurisdiction=jurisdiction, port=port, host=host, public_url=public_url, database_url=database_url, tls=tls))
        settings = config_mod.load(directory)
    except (config_mod.ConfigError, EnrolmentError) as exc:
        fail(str(exc))
    typer.echo(f"created {path}")
    typer.echo(f"enrolled at {station.rstrip('/')} as {enrolment.record.get('organisation')} "
               f"({enrolment.record.get('jurisdiction')})")
    typer.echo(f"participant id: {settings.node.participant_id}")
    typer.echo(f"certificate: {directory / 'keys' / 'node.crt'}")
    typer.echo(f"start it with: connector run {directory}")


@app.command()
def search(directory: Path = typer.Argument(..., help="node directory (its enrolled key gets the token)"),
           q: Optional[str] = typer.Option(None, "--q", "-q", help="keywords (all must match)"),
           jurisdiction: Optional[str] = typer.Option(None, help="the provider's jurisdiction(s), comma-separated"),
           theme: Optional[str] = typer.Option(None, help="data theme: HEAL, TRAN, ... or health, transport, ..."),
           purpose: Optional[str] = typer.Option(None, help="only offers usable for this purpose, e.g. "
                                                 "hks:MedicalResearch, research"),
           usable_by: Optional[str] = typer.Option(None, help="only offers usable by an organisation in this "
                                                   "jurisdiction (default with --purpose: your own)"),
           limit: int = typer.Option(50, help="at most this many results"),
           json_output: bool = typer.Option(False, "--json", help="print the results as one JSON object")) -> None:
    """Search the station registry for partners' offers."""
    import asyncio
    import json

    from .identity.search import SearchError, search_registry

    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    if settings.identity_mode != "station":
        fail("connector search needs a node enrolled at the station ([identity] mode = \"station\")")
    params = {k: v for k, v in {"q": q, "jurisdiction": jurisdiction, "theme": theme, "purpose": purpose,
                                "usableBy": usable_by, "limit": str(limit)}.items() if v}
    try:
        found = asyncio.run(search_registry(settings, params))
    except SearchError as exc:
        fail(str(exc), 1)
    if json_output:
        typer.echo(json.dumps(found))
        return
    results = found.get("results", [])
    if not results:
        typer.echo("no offers found")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in ("organisation", "jurisdiction", "dataset", "offer", "title", "address"):
        table.add_column(column)
    for r in results:
        table.add_row(r["organisation"], r.get("jurisdiction") or "", r["datasetId"], r["offerId"], r["title"],
                      r["counterPartyAddress"])
    Console(width=200).print(table)


@app.command()
def catalog(directory: Path = typer.Argument(..., help="node directory (the node must be running)"),
            address: str = typer.Option(..., "--address", help="the provider's address (its DSP root URL)"),
            participant: Optional[str] = typer.Option(None, "--id", help="the provider's participant id "
                                                      "(required in station mode)"),
            page_size: int = typer.Option(100, "--page-size", min=1, max=1000, help="datasets per page"),
            version: Optional[str] = typer.Option(None, "--dsp-version", help="2025-1 or 2024-1"),
            json_lines: bool = typer.Option(False, "--json", help="one JSON dataset per line")) -> None:
    """List a provider's whole catalog, page by page, through the running node."""
    import httpx

    from .catalog_cli import CatalogCliError, print_catalog

    try:
        count = print_catalog(directory, address, participant, page_size, json_lines, version, typer.echo)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    except (CatalogCliError, OSError) as exc:
        fail(str(exc), 1)
    except httpx.HTTPError as exc:
        fail(f"the node is not answering its management API (is it running?): {type(exc).__name__}", 1)
    if not json_lines:
        typer.echo(f"{count} datasets", err=True)


@app.command()
def run(directory: Path = typer.Argument(..., help="node directory")) -> None:
    """Start the participant node."""
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    from .node.app import run as run_node
    run_node(settings)


@app.command("dev-token")
def dev_token(directory: Path = typer.Argument(..., help="node directory whose shared secret to use"),
              participant: str = typer.Option(..., help="participant id the token names"),
              audience: Optional[str] = typer.Option(None, help="the one recipient the token is good at "
                                                                "(default: this node; e.g. a clearing house's URL)")) -> None:
    """Print a dev-mode Authorization value naming a participant, good at one recipient only (e.g. for the DSP TCK)."""
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    if settings.identity_mode != "dev-shared-secret":
        fail("dev-token works only in the dev-shared-secret identity mode")
    from .identity import DevSharedSecret
    # the token is good at one recipient only: this node (its participant id) unless told otherwise
    typer.echo("Bearer " + DevSharedSecret(settings.node.participant_id, settings.identity_shared_secret).token_for(
        participant, audience=audience or settings.node.participant_id))


@app.command()
def demo(json_output: bool = typer.Option(False, "--json", help="print a JSON summary as the last line"),
         keep: Optional[Path] = typer.Option(None, help="keep the node directories here"),
         console: bool = typer.Option(False, "--console", help="then keep everything running and print each "
                                      "organisation's console URL and a demo login (Ctrl-C stops)")) -> None:
    """Start the station and two enrolled participants on loopback, publish, search and negotiate."""
    from .demo import run_demo
    code = run_demo(json_output=json_output, keep=keep, console=console)
    raise typer.Exit(code)


from .cli_policy import app as policy_app  # noqa: E402
from .station.cli import app as station_app  # noqa: E402

app.add_typer(station_app, name="station", help="create and run the station authority (identities, tokens, registry)")

app.add_typer(policy_app, name="policy", help="check and explain ODRL usage policies")
from .console.cli import app as user_app  # noqa: E402

app.add_typer(user_app, name="user", help="local accounts of the node's operator console (/console/)")

from .compliance.cli import app as compliance_app  # noqa: E402

app.add_typer(compliance_app, name="compliance", help="cross-border records and filings (GBA Standard Contract)")

from .certs.cli import app as asset_app, verify_command  # noqa: E402

app.add_typer(asset_app, name="asset", help="dataset registration certificates (register, certificate)")
app.command("verify-certificate")(verify_command)

try:  # the clearing house's commands, when present
    from .clearinghouse.cli import app as clearinghouse_app, audit_app
except ImportError:  # pragma: no cover
    clearinghouse_app = audit_app = None
if clearinghouse_app is not None:
    app.add_typer(clearinghouse_app, name="clearinghouse", help="run the clearing house (transparency log)")
    app.add_typer(audit_app, name="audit", help="verify the clearing house's log from outside")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
