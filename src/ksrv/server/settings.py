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


@dataclass(frozen=True, slots=True)
class PayloadLogSettings:
    """KServe's payload logger (the agent's `--log-*` flags), run inside the model server."""

    url: str  # http(s)://..., file:///path or stdout (docs/observability.md)
    mode: str = "all"  # all | request | response
    inference_service: str = ""
    namespace: str = ""
    component: str = ""
    endpoint: str = ""
    source_uri: str = ""  # "" -> the server's own http://host:port/
    metadata_headers: tuple[str, ...] = ()
    metadata_annotations: tuple[tuple[str, str], ...] = ()
    queue_size: int = 10_000  # events waiting to be sent; more are dropped and counted
    senders: int = 4  # events in flight to the sink at once
    attempts: int = 3  # tries per event (transport errors, 408, 429, 5xx)
    retry_backoff_s: float = 0.1  # doubled after each failed try
    timeout_s: float = 5.0
    report_interval_s: float = 60.0  # how often the counts are logged when they changed


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
    payload_log: PayloadLogSettings | None = None  # KServe's `logger`; None: nothing logged
    # The response cache (docs/response-cache.md): its size in bytes (None: off) and TTL.
    response_cache_bytes: int | None = None
    response_cache_ttl_s: float | None = None
    # Multi-model mode: the TrainedModels' models.json to watch, and the memory they may use.
    models_config: str | None = None
    memory_budget_bytes: int | None = None
