"""`ksrv serve`: run a model server for a model directory or a custom Model class."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from ksrv.api import runtime_selection
from ksrv.cli import telemetry
from ksrv.errors import KsrvError
from ksrv.server import app
from ksrv.server.settings import (
    DEFAULT_GRPC_MAX_MESSAGE_BYTES,
    DEFAULT_GRPC_THREADS,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_REQUEST_BYTES,
    PayloadLogSettings,
    ServerSettings,
)


def _payload_log_options(command: Any) -> Any:
    """KServe's agent flags for the payload logger (a component's `logger`)."""
    options = [
        click.option("--log-url", help="Send request/response CloudEvents here: http(s)://..., "
                     "file:///path or stdout (KServe's agent's --log-url)."),
        click.option("--log-mode", type=click.Choice(["all", "request", "response"]),
                     help="Which messages are logged (default: all)."),
        click.option("--log-metadata-headers", help="Comma-separated request headers to "
                     "send with each event (the `metadata` extension)."),
        click.option("--log-metadata-annotations", help="Comma-separated KEY=VALUE pairs "
                     "sent with each event (the `annotations` extension)."),
        click.option("--log-source-uri", help="The events' source (default: this server's "
                     "http://host:port/)."),
        click.option("--log-queue-size", type=click.IntRange(min=1), default=10_000,
                     show_default=True, help="Events waiting for the sink; more are dropped "
                     "(and counted) rather than slowing inference."),
        click.option("--inference-service", default="", help="InferenceService name on events."),
        click.option("--namespace", default="", help="Namespace on events."),
        click.option("--component", default="", help="Component on events (predictor, ...)."),
        click.option("--endpoint", default="", help="Endpoint on events (default, a canary)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _payload_log(options: dict[str, Any]) -> PayloadLogSettings | None:
    """The logger settings the flags give, or None without --log-url.

    Raises:
        click.UsageError: a --log-* flag without --log-url, or a malformed value.
    """
    url = options["log_url"]
    if not url:
        given = [name for name in ("log_mode", "log_metadata_headers",
                                   "log_metadata_annotations", "log_source_uri")
                 if options[name]]  # fmt: skip
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} needs --log-url")
        return None
    from ksrv.server import payload_log

    try:
        payload_log.check_url(url)
    except KsrvError as exc:
        raise click.UsageError(f"--log-url: {exc}") from exc
    annotations = []
    for pair in _split(options["log_metadata_annotations"]):
        key, has_value, value = pair.partition("=")
        if not key or not has_value:
            raise click.UsageError(f"--log-metadata-annotations: expected KEY=VALUE, got {pair!r}")
        annotations.append((key, value))
    return PayloadLogSettings(
        url=url,
        mode=options["log_mode"] or "all",
        inference_service=options["inference_service"],
        namespace=options["namespace"],
        component=options["component"],
        endpoint=options["endpoint"],
        source_uri=options["log_source_uri"] or "",
        metadata_headers=tuple(_split(options["log_metadata_headers"])),
        metadata_annotations=tuple(annotations),
        queue_size=options["log_queue_size"],
    )


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("model_class", required=False, metavar="[FILE.py:Class | module:Class]")
@click.option("--model-name", default="model", show_default=True, help="Name to serve under.")
@click.option("--model-dir", type=click.Path(), help="Directory holding the model files.")
@click.option(
    "--model-format",
    help="modelFormat of --model-dir as NAME[:VERSION], e.g. sklearn or sklearn:1; the runtime "
    "is chosen among ksrv's default ClusterServingRuntimes by KServe's selection rules.",
)
@click.option(
    "--storage-uri",
    help="Download the model from here first (s3://, gs://, https://, hf://, pvc://, ...); "
    "into --model-dir if given, else into the cache.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--http-port", default=8080, show_default=True, help="REST port.")
@click.option("--grpc-port", default=8081, show_default=True, help="gRPC port; 0 disables gRPC.")
@click.option(
    "--grpc-max-message-bytes",
    default=DEFAULT_GRPC_MAX_MESSAGE_BYTES,
    show_default=True,
    help="Largest gRPC message sent or received (KServe's default is 8388608).",
)
@click.option(
    "--grpc-threads",
    default=DEFAULT_GRPC_THREADS,
    show_default=True,
    help="gRPC calls taken at once per process; more wait in gRPC's queue.",
)
@click.option("--workers", default=1, show_default=True, help="Processes sharing the ports.")
@click.option(
    "--max-threads", default=4, show_default=True, help="Threads per process for sync handlers."
)
@click.option(
    "--max-batch-size",
    default=DEFAULT_MAX_BATCH_SIZE,
    show_default=True,
    help="Rows per merged call when concurrent requests to a built-in runtime (sklearn, "
    "xgboost, lightgbm) arrive together; 1 answers every request on its own.",
)
@click.option(
    "--max-latency-ms",
    type=click.IntRange(min=0),
    help="Run a batcher (KServe's batcher.maxLatency): a request waits up to this long for "
    "--max-batch-size rows, and onnx, pytorch and tensorflow models merge too.",
)
@click.option(
    "--max-request-bytes",
    default=DEFAULT_MAX_REQUEST_BYTES,
    show_default=True,
    help="Larger REST bodies get 413.",
)
@click.option(
    "--grace-period",
    default=30.0,
    show_default=True,
    help="Seconds SIGTERM waits for accepted requests to finish.",
)
@click.option("--predictor-host", help="Transformer mode: forward predict to this host:port.")
@click.option(
    "--predictor-protocol",
    default="v1",
    show_default=True,
    type=click.Choice(["v1", "v2", "grpc-v2"]),
)
@click.option(
    "--explainer",
    type=click.Choice(["shap", "art"]),
    help="Serve an explainer of the model at --predictor-host: shap (SHAP values) or art "
    "(KServe's ART explainer; its flags, e.g. --nb_classes 3, after `--`).",
)
@click.option(
    "--openai-route-prefix",
    default=None,
    help="Path prefix of the OpenAI routes (default: $KSERVE_OPENAI_ROUTE_PREFIX, else "
    "'openai'); '' serves them at /v1/..., as KServe does.",
)
@click.option(
    "--models-config",
    type=click.Path(),
    help="Multi-model mode: serve the TrainedModels this models.json lists (KServe's "
    "modelconfig), loaded on first request; the file is watched.",
)
@click.option(
    "--memory-budget",
    type=int,
    default=None,
    help="Multi-model mode: bytes the loaded models may take; the least recently used are "
    "unloaded to make room (default: no limit).",
)
@click.option(
    "--response-cache-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Answer repeated identical requests from a cache of this many bytes, least recently "
    "used out first (default: no cache; docs/response-cache.md).",
)
@click.option(
    "--response-cache-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a cached answer is served (default: until evicted).",
)
@click.option("--log-level", default="info", show_default=True)
@telemetry.otlp_option
@_payload_log_options
@click.argument("runtime_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- RUNTIME ARGS]")
def serve(
    model_class: str | None,
    model_name: str,
    model_dir: str | None,
    model_format: str | None,
    storage_uri: str | None,
    host: str,
    http_port: int,
    grpc_port: int,
    grpc_max_message_bytes: int,
    grpc_threads: int,
    workers: int,
    max_threads: int,
    max_batch_size: int,
    max_latency_ms: int | None,
    max_request_bytes: int,
    grace_period: float,
    predictor_host: str | None,
    predictor_protocol: str,
    explainer: str | None,
    openai_route_prefix: str | None,
    models_config: str | None,
    memory_budget: int | None,
    response_cache_bytes: int | None,
    response_cache_ttl: float | None,
    log_level: str,
    runtime_args: tuple[str, ...],
    **payload_log_options: Any,
) -> None:
    """Serve a model over KServe V1, Open Inference Protocol REST and gRPC.

    \b
    ksrv serve --model-format sklearn --model-dir ./iris --model-name iris
    ksrv serve my_model.py:MyModel --model-name custom
    ksrv serve --model-format huggingface --model-dir ./llm -- --max_model_len 512

    Arguments after `--` are the runtime's own flags (KServe's huggingfaceserver flags).
    """
    if model_class is not None and model_class.startswith("-"):
        # Runtime flags come after `--`; click hands the first one to the positional argument.
        runtime_args, model_class = (model_class, *runtime_args), None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        runtime = runtime_selection.default_ksrv_runtime(model_format) if model_format else None
    except KsrvError as exc:
        click.echo(f"ksrv serve: {exc}", err=True)
        sys.exit(2)
    settings = ServerSettings(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        workers=workers,
        max_threads=max_threads,
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        max_request_bytes=max_request_bytes,
        grpc_max_send_bytes=grpc_max_message_bytes,
        grpc_max_receive_bytes=grpc_max_message_bytes,
        grpc_threads=grpc_threads,
        grace_period_s=grace_period,
        log_level=log_level,
        openai_route_prefix=(
            openai_route_prefix
            if openai_route_prefix is not None
            # Read as KServe reads it; click would skip an empty variable, which means "/v1".
            else os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "openai")
        ),
        model_name=model_name,
        model_dir=model_dir,
        model_format=runtime,
        storage_uri=storage_uri,
        model_class=model_class,
        predictor_host=predictor_host,
        predictor_protocol=predictor_protocol,
        explainer=explainer,
        runtime_args=runtime_args,
        payload_log=_payload_log(payload_log_options),
        models_config=models_config,
        memory_budget_bytes=memory_budget,
        response_cache_bytes=response_cache_bytes,
        response_cache_ttl_s=response_cache_ttl,
    )
    try:
        app.serve(settings)
    except KsrvError as exc:
        click.echo(f"ksrv serve: {exc}", err=True)
        sys.exit(2)
