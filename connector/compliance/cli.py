"""`connector compliance ...`: the cross-border records of a running node, through its management API
(the node's URL and API key come from its connector.toml)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import httpx
import typer

from .. import config as config_mod

app = typer.Typer(help="cross-border compliance: GBA Standard Contract records and filings", no_args_is_help=True)


def _call(directory: Path, method: str, path: str, params: dict | None = None, body: dict | None = None) -> httpx.Response:
    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    verify = str(directory / "keys" / "station-ca.crt") if settings.tls_enabled else True
    try:
        resp = httpx.request(method, settings.node.public_url.rstrip("/") + "/api/v1" + path, params=params,
                             json=body, timeout=30, headers={"X-Api-Key": settings.management_api_key}, verify=verify)
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
    sys.stdout.write(_call(directory, "GET", "/compliance/records", {"format": fmt}).text)
    if fmt == "json":
        sys.stdout.write("\n")


@app.command()
def filing(agreement_id: str = typer.Argument(..., help="the agreement's id"),
           directory: Path = typer.Option(Path("."), "--dir", "-d", help="node directory (its connector.toml)"),
           fmt: str = typer.Option("json", "--format", help="json, or html (printable)"),
           lang: str = typer.Option("en", "--lang", help="en, zh-Hant or zh-Hans (html)"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="write to this file instead of stdout"),
           filed_on: Optional[str] = typer.Option(None, "--filed-on", help="record that our party filed on DATE"),
           reference: Optional[str] = typer.Option(None, "--reference", help="the filing's reference (with --filed-on)")) -> None:
    """The filing pack of a cross-border agreement (what each party files, with whom, by when); with
    --filed-on DATE --reference R, record that our party filed it, which closes it."""
    path = f"/compliance/records/{quote(agreement_id, safe='')}/filing"
    if (filed_on is None) != (reference is None):
        typer.echo("error: --filed-on and --reference go together", err=True)
        raise typer.Exit(2)
    if filed_on is not None:
        resp = _call(directory, "POST", path, body={"filedOn": filed_on, "reference": reference})
        own = resp.json()["filing"]
        typer.echo(f"filed on {own['filedOn']} with {own['authority']['en']}, reference {own['reference']}")
        return
    if fmt not in ("json", "html"):
        typer.echo("error: --format must be json or html", err=True)
        raise typer.Exit(2)
    text = _call(directory, "GET", path, {"format": fmt, "lang": lang}).text
    if out is not None:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
    else:
        sys.stdout.write(text + ("\n" if fmt == "json" else ""))
