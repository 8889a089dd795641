"""`ksrv gateway`: one HTTP port and one gRPC port in front of every InferenceService."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from ksrv.cli import exposure
from ksrv.errors import KsrvError

logger = logging.getLogger(__name__)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--http-port", default=8080, show_default=True, help="HTTP port.")
@click.option("--grpc-port", default=8081, show_default=True, help="gRPC port; 0 disables gRPC.")
@click.option(
    "--routes-url",
    help="Route table to long-poll, e.g. http://127.0.0.1:8090/ksrv/v1/routes; "
    "without it the gateway serves an empty table.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="KSRV_GATEWAY_WORKERS",
    help="Gateway processes sharing the HTTP and gRPC ports (env KSRV_GATEWAY_WORKERS).",
)
@click.option(
    "--seed",
    type=int,
    envvar="KSRV_GATEWAY_SEED",
    hidden=True,
    help="Seed the traffic split's random choice, so a test's split is reproducible "
    "(env KSRV_GATEWAY_SEED).",
)
@click.option(
    "--control-token-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="File holding the token the gateway calls --routes-url with (`ksrv up --auth`).",
)
@click.option(
    "--control-ca",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="CA (or the certificate itself) an https --routes-url must present.",
)
@exposure.tls_options
@exposure.insecure_option
def gateway(
    host: str,
    http_port: int,
    grpc_port: int,
    routes_url: str | None,
    workers: int,
    seed: int | None,
    control_token_file: Path | None,
    control_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    is_insecure_no_auth: bool,
) -> None:
    """Route requests by host or /serving/NS/NAME path to the ready replicas."""
    tls = exposure.checked_tls(tls_cert, tls_key)
    # With a control plane that requires tokens, the services that ask for auth get it.
    enable_auth = control_token_file is not None
    warning = exposure.check({"gateway": host}, is_insecure_no_auth, enable_auth, bool(tls))
    from ksrv.gateway import app, auth
    from ksrv.http import listeners

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if warning:
        click.echo(warning, err=True)
        logger.warning(warning)
    # `ksrv up` binds the HTTP port itself and hands it down, so it stays open across restarts
    # (and takes it back through `handover` when it restarts itself).
    inherited = listeners.inherited(os.environ)
    handover = os.environ.pop(listeners.HANDOVER_ENV, None)
    try:
        app.serve_gateway(
            host,
            http_port,
            grpc_port,
            routes_url,
            workers,
            inherited,
            Path(handover) if handover else None,
            seed=seed,
            security=auth.GatewaySecurity(tls, control_token_file, control_ca),
        )
    except KsrvError as exc:
        click.echo(f"ksrv gateway: {exc}", err=True)
        sys.exit(2)
