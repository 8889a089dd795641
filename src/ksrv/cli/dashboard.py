"""`ksrv dashboard`: open the control plane's web dashboard in a browser (or print its URL).

The dashboard is served by the control plane itself (`control/dashboard.py`); this command
only checks that it answers and hands its URL to the `webbrowser` module. The token is never
put in the URL (a browser's argv and history would show it): with `ksrv up --auth` the page
asks for one, and this command says where the local admin token is.
"""

from __future__ import annotations

import os
import webbrowser
from pathlib import Path

import click

from ksrv.cli.api_client import ADMIN_TOKEN_FILE, ControlPlaneClient, server_option


@click.command()
@server_option
@click.option(
    "--browser/--no-browser",
    "enable_browser",
    default=True,
    show_default=True,
    help="Open the page in the default browser; --no-browser only prints its URL.",
)
def dashboard(server: str, enable_browser: bool) -> None:
    """Open the web dashboard of the control plane at --server."""
    url = f"{server.rstrip('/')}/dashboard/"
    with ControlPlaneClient(server) as client:
        client.request("GET", "/healthz")  # a down control plane: one clear line, exit 1
        client.request("HEAD", "/dashboard/")
    click.echo(f"dashboard: {url}")
    state_dir = Path(os.environ.get("KSRV_STATE_DIR") or Path.home() / ".ksrv")
    token_file = state_dir / ADMIN_TOKEN_FILE
    if token_file.exists():
        click.echo(f"if the page asks for a token: the admin token is in {token_file}")
    if enable_browser and not webbrowser.open(url):
        click.echo("no browser found here: open the URL above in one")
