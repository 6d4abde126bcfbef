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
         tck: bool = typer.Option(False, help="enable the TCK profile (seeded ids, webhooks)")) -> None:
    """Create a node directory: connector.toml and keys/."""
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
              participant: str = typer.Option(..., help="participant id the token names")) -> None:
    """Print a dev-mode Authorization value for a participant (e.g. for the DSP TCK)."""
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        fail(str(exc))
    from .identity import DevSharedSecret
    typer.echo("Bearer " + DevSharedSecret(settings.node.participant_id, settings.identity_shared_secret).token_for(participant))


@app.command()
def demo(json_output: bool = typer.Option(False, "--json", help="print a JSON summary as the last line"),
         keep: Optional[Path] = typer.Option(None, help="keep the node directories here")) -> None:
    """Start two participants on loopback, publish an asset and negotiate contracts."""
    from .demo import run_demo
    code = run_demo(json_output=json_output, keep=keep)
    raise typer.Exit(code)


from .policy.cli import app as policy_app  # noqa: E402

app.add_typer(policy_app, name="policy", help="check and explain ODRL usage policies")

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
