"""`connector compliance ...`: the cross-border records of a running node, through its management API
(the node's URL and API key come from its connector.toml)."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx
import typer

from .. import config as config_mod

app = typer.Typer(help="cross-border compliance: GBA Standard Contract records and filings", no_args_is_help=True)


def _get(directory: Path, path: str, params: dict | None = None) -> httpx.Response:
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    verify = str(directory / "keys" / "station-ca.crt") if settings.tls_enabled else True
    try:
        resp = httpx.get(settings.node.public_url.rstrip("/") + "/api/v1" + path, params=params, timeout=30,
                         headers={"X-Api-Key": settings.management_api_key}, verify=verify)
    except httpx.HTTPError as exc:
        typer.echo(f"error: the node did not answer ({type(exc).__name__}); is it running?", err=True)
        raise typer.Exit(1)
    if resp.status_code != 200:
        try:
            why = resp.json().get("error", resp.text)
        except ValueError:
            why = resp.text
        typer.echo(f"error: HTTP {resp.status_code}: {str(why)[:300]}", err=True)
        raise typer.Exit(1)
    return resp


@app.command()
def records(directory: Path = typer.Argument(..., help="node directory (its connector.toml)"),
            fmt: str = typer.Option("json", "--format", help="json or csv")) -> None:
    """Export the node's cross-border records (every agreement made under a cross-border policy)."""
    if fmt not in ("json", "csv"):
        typer.echo("error: --format must be json or csv", err=True)
        raise typer.Exit(2)
    sys.stdout.write(_get(directory, "/compliance/records", {"format": fmt}).text)
    if fmt == "json":
        sys.stdout.write("\n")
