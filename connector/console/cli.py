"""`connector user add DIR USERNAME --role ROLE`: local accounts of a node's operator console."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from .. import config as config_mod

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("add")
def add(directory: Path = typer.Argument(..., help="node directory"),
        username: str = typer.Argument(..., help="the name to sign in with"),
        role: str = typer.Option("viewer", help="viewer (reads), operator (also acts) or admin"),
        password_stdin: bool = typer.Option(False, "--password-stdin",
                                            help="read the password from standard input (else: prompt)"),
        replace: bool = typer.Option(False, help="set a new password and role for an existing user")) -> None:
    """Add a console user (the password is stored as an argon2id hash in the node's database)."""
    from ..store.db import Database
    from .auth import AccountError, add_user

    try:
        settings = config_mod.load(directory)
    except config_mod.ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)

    async def run() -> None:
        db = Database(settings.database_url)
        try:
            await db.migrate()
            await add_user(db, username, password, role, replace=replace)
        finally:
            await db.dispose()
    try:
        asyncio.run(run())
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"console user {username} ({role}) {'updated' if replace else 'added'}: sign in at "
               f"{settings.node.public_url.rstrip('/')}/console/")
