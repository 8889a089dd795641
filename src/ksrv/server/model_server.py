"""`ModelServer` and `parser`: KServe's entry points for custom-model scripts.

A KServe script builds `ArgumentParser(parents=[model_server.parser])` and calls
`ModelServer().start([model])`; both work unchanged. As in KServe, constructor arguments left
out fall back to the script's command-line flags (`--http_port`, `--workers`, ...), which are
read when a `ModelServer` is created, never at import.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from ksrv.errors import ServerNotReady
from ksrv.model.base import Model
from ksrv.server import app
from ksrv.server.settings import DEFAULT_MAX_REQUEST_BYTES, ServerSettings


def _bool(value: str) -> bool:
    return value.strip().lower() in ("y", "yes", "t", "true", "on", "1")


parser = argparse.ArgumentParser(add_help=False)
parser.add_argument("--http_port", type=int, default=8080, help="REST port")
parser.add_argument("--grpc_port", type=int, default=8081, help="gRPC port")
parser.add_argument("--host", default="0.0.0.0", help="address to bind (KServe binds all)")
parser.add_argument("--workers", type=int, default=1, help="REST worker processes")
parser.add_argument("--max_threads", type=int, default=4, help="threads for sync handlers")
parser.add_argument("--max_asyncio_workers", type=int, default=None)
parser.add_argument("--enable_grpc", type=_bool, default=True)
parser.add_argument("--enable_docs_url", type=_bool, default=False)
parser.add_argument("--enable_latency_logging", type=_bool, default=True)
parser.add_argument("--configure_logging", type=_bool, default=True)
parser.add_argument("--log_config_file", default=None)
parser.add_argument("--access_log_format", default=None)
parser.add_argument("--event-loop", dest="event_loop", default="auto")
parser.add_argument("--timeout-keep-alive", dest="timeout_keep_alive", type=int, default=65)
parser.add_argument("--model_name", default="model", help="name the model is served under")
parser.add_argument("--predictor_host", default=None, help="transformer: predictor host:port")
parser.add_argument(
    "--predictor_protocol",
    "--protocol",
    dest="predictor_protocol",
    default="v1",
    choices=["v1", "v2", "grpc-v2"],
)
parser.add_argument("--predictor_use_ssl", type=_bool, default=False)
parser.add_argument("--predictor_request_timeout_seconds", type=float, default=600)
parser.add_argument("--predictor_request_retries", type=int, default=0)
parser.add_argument("--enable_predictor_health_check", action="store_true")
parser.add_argument("--grpc_max_send_message_length", type=int, default=8 * 1024 * 1024)
parser.add_argument("--grpc_max_receive_message_length", type=int, default=8 * 1024 * 1024)
parser.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)


class ModelServer:
    """Serves a list of `Model`s over REST, as `kserve.ModelServer` does."""

    def __init__(
        self,
        http_port: int | None = None,
        grpc_port: int | None = None,
        workers: int | None = None,
        max_threads: int | None = None,
        max_asyncio_workers: int | None = None,
        registered_models: Any = None,
        enable_grpc: bool | None = None,
        enable_docs_url: bool | None = None,
        enable_latency_logging: bool | None = None,
        access_log_format: str | None = None,
        grace_period: int = 30,
        predictor_config: Any = None,
        host: str | None = None,
        max_request_bytes: int | None = None,
    ) -> None:
        flags, _ = parser.parse_known_args()
        is_grpc = enable_grpc if enable_grpc is not None else flags.enable_grpc
        self.settings = ServerSettings(
            host=host if host is not None else flags.host,
            http_port=http_port if http_port is not None else flags.http_port,
            grpc_port=(grpc_port if grpc_port is not None else flags.grpc_port) if is_grpc else 0,
            workers=workers if workers is not None else flags.workers,
            max_threads=max_threads if max_threads is not None else flags.max_threads,
            max_request_bytes=(
                max_request_bytes if max_request_bytes is not None else flags.max_request_bytes
            ),
            grace_period_s=float(grace_period),
            grpc_max_send_bytes=flags.grpc_max_send_message_length,
            grpc_max_receive_bytes=flags.grpc_max_receive_message_length,
            timeout_keep_alive_s=flags.timeout_keep_alive,
            # KServe reads it from the environment too (at import; here when created).
            openai_route_prefix=os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "openai"),
        )
        self.registered_models = registered_models
        self.enable_logging_setup = flags.configure_logging

    def start(self, models: list[Model]) -> None:
        """Load (if needed) and serve `models` until SIGTERM."""
        for model in models:
            if not isinstance(model, Model):
                raise RuntimeError(f"{model!r} is not a ksrv.Model")
        if self.enable_logging_setup:
            # As KServe's `--configure_logging` (on by default): without it a script prints
            # nothing, not even where it listens. A no-op when the script set up logging itself.
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
            )
        try:
            app.serve(self.settings, list(models))
        except ServerNotReady as exc:  # a port in use: one line, as `ksrv serve` says it
            raise SystemExit(f"ksrv: {exc}") from None
