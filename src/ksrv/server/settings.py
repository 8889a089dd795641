"""`ServerSettings`: everything a model server process needs, built once by the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from ksrv.http import body as http_body

# The gateway in front of a replica uses the same default, so it never buffers a body the
# replica would refuse.
DEFAULT_MAX_REQUEST_BYTES = http_body.DEFAULT_MAX_BODY_BYTES
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_GRPC_THREADS = 32
# KServe's gRPC default is 8 MiB; ksrv accepts as much over gRPC as over REST.
DEFAULT_GRPC_MAX_MESSAGE_BYTES = DEFAULT_MAX_REQUEST_BYTES


@dataclass(slots=True)
class ServerSettings:
    """How to serve: ports, processes, limits, and which model(s) to load."""

    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    workers: int = 1
    max_threads: int = 1
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE  # rows per merged call; 1 turns merging off
    max_latency_ms: int | None = None  # a batcher's wait for a full batch; None: no waiting
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    grpc_max_send_bytes: int = DEFAULT_GRPC_MAX_MESSAGE_BYTES
    grpc_max_receive_bytes: int = DEFAULT_GRPC_MAX_MESSAGE_BYTES
    grpc_threads: int = DEFAULT_GRPC_THREADS
    grace_period_s: float = 30.0
    timeout_keep_alive_s: int = 65
    log_level: str = "info"
    openai_route_prefix: str = "openai"  # KServe's KSERVE_OPENAI_ROUTE_PREFIX; "" -> /v1/...
    # What to serve: a runtime for a model directory, or a custom Model class.
    model_name: str = "model"
    model_dir: str | None = None
    storage_uri: str | None = None  # downloaded to model_dir (or the cache) before loading
    model_format: str | None = None
    model_class: str | None = None
    runtime_args: tuple[str, ...] = ()  # the runtime's own flags (huggingface's --task, ...)
    explainer: str | None = None  # e.g. "shap": explain the model at predictor_host
    predictor_host: str | None = None
    predictor_protocol: str = "v1"
    predictor_use_ssl: bool = False
