"""`ksrv token create|list|revoke`: bearer tokens for the management API and the gateway.

A thin client of `/ksrv/v1/tokens` (`control.api_tokens`); the secret is printed once, at
creation, and never again (the control plane keeps its SHA-256 only).
"""

from __future__ import annotations

import json
import time

import click

from ksrv.cli import tables
from ksrv.cli.api_client import ControlPlaneClient, server_option

TOKENS_PATH = "/ksrv/v1/tokens"


@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens (`ksrv up --auth`, `serving.kserve.io/enable-auth`)."""


@token.command()
@click.argument("name", required=False)
@click.option(
    "-n",
    "--namespace",
    help="Namespace the token holds in (default: `default` for invoke, every one for admin).",
)
@click.option(
    "--role",
    type=click.Choice(["invoke", "admin"]),
    default="invoke",
    show_default=True,
    help="invoke: call the namespace's InferenceServices at the gateway; admin: that and "
    "the management API.",
)
@server_option
def create(name: str | None, namespace: str | None, role: str, server: str) -> None:
    """Make a token; its secret is printed once, on stdout alone (for `$(...)`)."""
    body = {"name": name, "namespace": namespace, "role": role}
    with ControlPlaneClient(server) as client:
        created = client.request(
            "POST",
            TOKENS_PATH,
            content=json.dumps({k: v for k, v in body.items() if v}).encode(),
            headers={"content-type": "application/json"},
        ).json()
    click.echo(created["token"])
    click.echo(
        f'token "{created["name"]}" created (role {created["role"]}, namespace '
        f"{created['namespace']}); store it now: it is not shown again",
        err=True,
    )


@token.command(name="list")
@server_option
def list_tokens(server: str) -> None:
    """List the tokens (never their secrets)."""
    with ControlPlaneClient(server) as client:
        items = client.get_json(TOKENS_PATH)["items"]
    if not items:
        click.echo("No tokens found.", err=True)
        return
    now = time.time()
    rows = [["NAME", "NAMESPACE", "ROLE", "AGE"]]
    for item in items:
        age = tables.age(item["created"], now)
        rows.append([item["name"], item["namespace"], item["role"], age])
    click.echo(tables.render(rows))


@token.command()
@click.argument("name")
@server_option
def revoke(name: str, server: str) -> None:
    """Revoke a token: the gateway refuses it from its next route table on (at once)."""
    with ControlPlaneClient(server) as client:
        client.request("DELETE", f"{TOKENS_PATH}/{name}")
    click.echo(f'token "{name}" revoked')
