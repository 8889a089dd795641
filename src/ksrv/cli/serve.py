"""`ksrv serve`: run a model server for a model directory or a custom Model class."""

from __future__ import annotations

import logging
import sys

import click

from ksrv.errors import KsrvError
from ksrv.server import app
from ksrv.server.settings import DEFAULT_MAX_REQUEST_BYTES, ServerSettings


@click.command()
@click.argument("model_class", required=False, metavar="[FILE.py:Class | module:Class]")
@click.option("--model-name", default="model", show_default=True, help="Name to serve under.")
@click.option("--model-dir", type=click.Path(), help="Directory holding the model files.")
@click.option("--model-format", help="Runtime for --model-dir, e.g. sklearn.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--http-port", default=8080, show_default=True, help="REST port.")
@click.option(
    "--grpc-port",
    default=8081,
    show_default=True,
    help="gRPC port; 0 disables gRPC (gRPC itself arrives with issue #3).",
)
@click.option("--workers", default=1, show_default=True, help="Processes sharing the port.")
@click.option(
    "--max-threads",
    default=4,
    show_default=True,
    help="Threads per process that run sync model handlers.",
)
@click.option(
    "--max-request-bytes",
    default=DEFAULT_MAX_REQUEST_BYTES,
    show_default=True,
    help="Larger request bodies get 413.",
)
@click.option(
    "--grace-period",
    default=30.0,
    show_default=True,
    help="Seconds SIGTERM waits for accepted requests to finish.",
)
@click.option("--predictor-host", help="Transformer mode: forward predict to this host:port.")
@click.option(
    "--predictor-protocol", default="v1", show_default=True, type=click.Choice(["v1", "v2"])
)
@click.option("--log-level", default="info", show_default=True)
def serve(model_class: str | None, **options: object) -> None:
    """Serve one model over KServe V1 and Open Inference Protocol (V2) REST.

    \b
    ksrv serve --model-format sklearn --model-dir ./iris --model-name iris
    ksrv serve my_model.py:MyModel --model-name custom
    """
    settings = ServerSettings(
        host=str(options["host"]),
        http_port=int(options["http_port"]),  # type: ignore[call-overload]
        grpc_port=int(options["grpc_port"]),  # type: ignore[call-overload]
        workers=int(options["workers"]),  # type: ignore[call-overload]
        max_threads=int(options["max_threads"]),  # type: ignore[call-overload]
        max_request_bytes=int(options["max_request_bytes"]),  # type: ignore[call-overload]
        grace_period_s=float(options["grace_period"]),  # type: ignore[arg-type]
        log_level=str(options["log_level"]),
        model_name=str(options["model_name"]),
        model_dir=options["model_dir"],  # type: ignore[arg-type]
        model_format=options["model_format"],  # type: ignore[arg-type]
        model_class=model_class,
        predictor_host=options["predictor_host"],  # type: ignore[arg-type]
        predictor_protocol=str(options["predictor_protocol"]),
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        app.serve(settings)
    except KsrvError as exc:
        click.echo(f"ksrv serve: {exc}", err=True)
        sys.exit(2)
