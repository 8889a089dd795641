"""`ksrv forkserver`: the warm process the control plane forks model-server replicas from.

Started by the control plane, not by people (hidden from `ksrv --help`). Importing `ksrv serve`
and the gRPC service here, once, is the point: every replica forked from this process finds
them imported (see `ksrv.server.forked`).
"""

from __future__ import annotations

import logging
import socket

import click

from ksrv.server import forked

MODULE = "ksrv.cli.main"


@click.command(hidden=True)
@click.option(
    "--fd", required=True, type=int, help="The control plane's end of a Unix socket pair."
)
@click.option(
    "--preload",
    default="sklearn",
    show_default=True,
    help="Model formats whose runtimes are imported at once (others on first use), "
    "comma-separated.",
)
def forkserver(fd: int, preload: str) -> None:
    """Fork `ksrv serve` replicas on request from a warm, pre-imported process."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # What every replica needs whatever it serves. uvloop and the gRPC service are imported
    # lazily by `ksrv serve`, so they are pulled in here too (importing creates no gRPC objects).
    import uvloop  # noqa: F401

    import ksrv.cli.serve  # noqa: F401
    from ksrv.server import grpc_service  # noqa: F401

    formats = [name for name in preload.split(",") if name]
    forked.serve(socket.socket(fileno=fd), _run_replica, MODULE, formats)


def _run_replica(args: list[str]) -> int:
    """`ksrv ARGS` in this (forked) process, as `python -m ksrv.cli.main ARGS` would run."""
    from ksrv.cli.main import cli

    cli.main(args=args, prog_name="ksrv")  # standalone mode: always raises SystemExit
    return 0
