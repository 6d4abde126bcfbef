"""`connector station ...`: create and run the station authority."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import ConfigError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def init(directory: Path = typer.Argument(..., help="station directory to create"),
         name: str = typer.Option("Hong Kong Station", help="the station's name (in its CA certificate)"),
         port: int = typer.Option(8090, help="listen port"),
         host: str = typer.Option("127.0.0.1", help="listen address"),
         public_url: Optional[str] = typer.Option(None, help="the issuer URL participants use (default http://HOST:PORT)"),
         database_url: Optional[str] = typer.Option(None, help="default: SQLite file in the station directory"),
         token_alg: str = typer.Option("ES256", help="DAT signing algorithm: ES256, ES384, ES512 or EdDSA")) -> None:
    """Create the station: CA key and certificate, token-signing key, admin token."""
    from . import config as station_config

    try:
        path = station_config.init_directory(directory, name=name, port=port, host=host, public_url=public_url,
                                             database_url=database_url, token_alg=token_alg)
        settings = station_config.load(directory)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"created {path}")
    typer.echo(f"issuer: {settings.issuer}")
    typer.echo(f"admin token: in {directory / station_config.ADMIN_TOKEN_FILE} (mode 0600)")
    typer.echo(f"start it with: connector station run {directory}")


@app.command()
def run(directory: Path = typer.Argument(..., help="station directory")) -> None:
    """Start the station authority."""
    from . import config as station_config

    try:
        settings = station_config.load(directory)
    except ConfigError as exc:
        _fail(str(exc))
    from .app import run as run_station
    run_station(settings)


@app.command("rotate-key")
def rotate_key(directory: Path = typer.Argument(..., help="station directory"),
               token_alg: str = typer.Option("ES256", help="algorithm of the new key")) -> None:
    """Add a new token-signing key. After a restart it signs; older keys stay published so that
    tokens in flight still verify (receivers refetch the JWKS on an unknown kid)."""
    from . import config as station_config
    from ..identity import jose

    try:
        station_config.load(directory)
        if token_alg not in jose.ASYMMETRIC_ALGORITHMS:
            raise ConfigError(f"--token-alg must be one of {', '.join(sorted(jose.ASYMMETRIC_ALGORITHMS))}")
        path = station_config.new_token_key(Path(directory), token_alg)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"added {path.name}; restart the station to sign with it")


from ..console.station import users_app  # noqa: E402

app.add_typer(users_app, name="user", help="local accounts of the station's console (/console/)")
