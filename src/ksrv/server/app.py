"""Build and run a model server: `build_models`, `build_app`, `serve`.

Models load before the port opens, so a server that answers is a server that can predict.
With `workers > 1` the parent binds the socket, loads the models once and forks the workers
(they share the loaded models copy-on-write), then supervises them: a worker that dies is
replaced; SIGTERM drains every worker, which answers each request it already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import importlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ksrv import storage
from ksrv.errors import InvalidInput, ModelNotFound, ModelNotReady
from ksrv.http import listeners, workers
from ksrv.http import server as http
from ksrv.model.base import Model
from ksrv.model.openai import OpenAIGenerativeModel
from ksrv.model.repository import ModelRepository
from ksrv.runtimes import registry
from ksrv.server import multi_model
from ksrv.server.dataplane import DataPlane
from ksrv.server.remote_pickle import remote_pickle_warning
from ksrv.server.rest import RESTApp
from ksrv.server.settings import ServerSettings
from ksrv.telemetry import metrics as telemetry
from ksrv.telemetry import tracing

if TYPE_CHECKING:
    from ksrv.server.payload_log import PayloadLog

logger = logging.getLogger(__name__)

# How long a stopping server keeps sending the payloads still queued (after draining).
PAYLOAD_LOG_FLUSH_S = 5.0


def load_class(target: str) -> type[Model]:
    """`path/to/file.py:Class` or `package.module:Class` -> the class."""
    location, _, attribute = target.rpartition(":")
    if not location or not attribute:
        raise InvalidInput(f"expected FILE.py:Class or module:Class, got {target!r}")
    if location.endswith(".py") or os.sep in location:
        path = Path(location).resolve()
        if not path.is_file():
            raise InvalidInput(f"model file {path} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise InvalidInput(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        sys.path.insert(0, str(path.parent))
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    cls = getattr(module, attribute, None)
    if not isinstance(cls, type) or not issubclass(cls, Model):
        raise InvalidInput(f"{target} is not a subclass of ksrv.Model")
    return cls


def build_models(settings: ServerSettings) -> list[Model]:
    """The model(s) the settings name, not yet loaded (none for a multi-model server: its
    TrainedModels load on demand)."""
    if settings.models_config:
        if settings.model_format:  # its TrainedModels' first requests must not import it
            preload = getattr(registry.runtime_class(settings.model_format), "preload", None)
            if preload is not None:
                preload()
        return []
    if settings.explainer:
        if not settings.predictor_host:
            raise InvalidInput("--explainer needs --predictor-host: the model to explain")
        explainer = registry.explainer_class(settings.explainer)
        if settings.runtime_args:  # KServe's ART explainer flags (`explainer.art.config`)
            if not getattr(explainer, "takes_runtime_args", False):
                raise InvalidInput(f"the {settings.explainer} explainer takes no runtime arguments")
            return [explainer(settings.model_name, settings.predictor_host, settings.runtime_args)]
        return [explainer(settings.model_name, settings.predictor_host)]
    if settings.model_class:
        model = load_class(settings.model_class)(settings.model_name)
    elif settings.model_format:
        if not settings.model_dir:
            raise InvalidInput("--model-dir is required with --model-format")
        return _runtime_models(
            settings.model_format,
            Path(settings.model_dir),
            settings.model_name,
            settings.runtime_args,
        )
    else:
        raise InvalidInput("name a model: --model-format with --model-dir, or FILE.py:Class")
    if settings.runtime_args:
        raise InvalidInput("runtime arguments after -- are for a --model-format runtime")
    if settings.predictor_host:
        model.predictor_host = settings.predictor_host
        model.protocol = settings.predictor_protocol
        model.use_ssl = settings.predictor_use_ssl
    return [model]


def _runtime_models(
    model_format: str, model_dir: Path, name: str, args: tuple[str, ...] = ()
) -> list[Model]:
    """One model for a directory with a model file; else, as KServe does, one model per
    subdirectory that holds one (multi-model mode; more arrive through the repository API).
    `args` go to runtimes that take flags of their own (`takes_runtime_args`)."""
    runtime = registry.runtime_class(model_format)
    if args and not getattr(runtime, "takes_runtime_args", False):
        raise InvalidInput(
            f"the {model_format} runtime takes no runtime arguments (got {' '.join(args)})"
        )
    if not model_dir.is_dir() and not model_dir.is_file():
        raise InvalidInput(f"--model-dir {model_dir} does not exist")
    if runtime.has_model_file(model_dir):
        model = runtime(name, model_dir, args) if args else runtime(name, model_dir)
        if isinstance(model, _FetchesURIs):
            model.fetch_uri = storage.download
        adapters = model.adapters() if isinstance(model, OpenAIGenerativeModel) else []
        return [model, *adapters]  # the base loads first; its adapters follow it
    models = [
        runtime(sub.name, sub)
        for sub in sorted(model_dir.iterdir())
        if sub.is_dir() and runtime.has_model_file(sub)
    ]
    if not models:
        raise ModelNotFound(
            message=f"{model_dir} holds no file the {model_format} runtime can load, "
            "directly or in a subdirectory"
        )
    logger.warning(
        "no model file in %s: serving it as a model repository with %d model(s)",
        model_dir,
        len(models),
    )
    return models


@runtime_checkable
class _FetchesURIs(Protocol):
    """A runtime that fetches more than its model (the huggingface runtime's LoRA adapters)."""

    fetch_uri: Callable[[str], Path] | None


def model_loader(settings: ServerSettings) -> Any:
    """Repository loader: `{model_dir}/{name}` through the configured runtime, if any."""
    if not (settings.model_format and settings.model_dir):
        return None
    runtime = registry.runtime_class(settings.model_format)
    root = Path(settings.model_dir)

    def load(name: str) -> Model | None:
        directory = root / name
        return runtime(name, directory) if directory.is_dir() else None

    return load


def load_models(models: list[Model]) -> dict[str, float]:
    """Load every model that is not ready yet; any failure stops the server from starting.

    Returns:
        How long each model it loaded took, in seconds, by name.
    """
    load_s = {}
    for model in models:
        if model.ready:
            continue
        started = time.perf_counter()
        result = model.load()
        load_s[model.name] = time.perf_counter() - started
        if result is True:
            model.ready = True
        if not model.ready:
            raise ModelNotReady(model.name, "load() did not make it ready")
    return load_s


def build_app(settings: ServerSettings, models: list[Model]) -> RESTApp:
    repository = (
        multi_model.multi_model_repository(settings.models_config, settings.memory_budget_bytes)
        if settings.models_config
        else ModelRepository(loader=model_loader(settings))
    )
    for model in models:
        repository.update(model)
    max_latency_ms = settings.max_latency_ms
    dataplane = DataPlane(
        repository,
        max_threads=settings.max_threads,
        max_batch_size=settings.max_batch_size,
        max_latency_s=None if max_latency_ms is None else max_latency_ms / 1000,
    )
    engines = [m for m in models if isinstance(m, OpenAIGenerativeModel)]
    if engines:
        dataplane.metrics.watch_engines(
            lambda: [(m.name, load) for m in engines if (load := m.engine_load()) is not None]
        )
    app = RESTApp(
        dataplane,
        max_request_bytes=settings.max_request_bytes,
        openai_prefix=settings.openai_route_prefix,
    )
    if settings.response_cache_bytes:
        from ksrv.server import response_cache

        response_cache.install(app, settings.response_cache_bytes, settings.response_cache_ttl_s)
    sinks = [model for model in models if hasattr(model, "receive_event")]
    if sinks:  # a detector: the payload logger's events arrive at POST /
        from ksrv.server import event_sink

        if settings.workers > 1:
            raise InvalidInput("a detector keeps its window in one process: --workers must be 1")

        event_sink.install(app, sinks)
    if tracing.tracer() is not None:
        from ksrv.server import traced

        traced.instrument_rest(app)
    return app


async def _serve_forever(
    settings: ServerSettings, app: RESTApp, listener: socket.socket | None = None
) -> None:
    """REST and gRPC on one event loop until SIGTERM/SIGINT, then drain both."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    payload_log = _start_payload_log(settings)
    handle = app.handle
    stop_payload_metrics = None
    if payload_log is not None:
        from ksrv.server.payload_capture import LoggedREST

        stop_payload_metrics = app.dataplane.metrics.watch_payload_log(payload_log.stats)

        handle = LoggedREST(app.handle, payload_log).handle
    rest = http.HTTPServer(
        handle,
        max_body_bytes=settings.max_request_bytes,
        too_large=app.too_large,
        keep_alive_s=settings.timeout_keep_alive_s,
    )
    await rest.start(settings.host, settings.http_port, sock=listener)
    watcher = None
    if isinstance(app.dataplane.repository, multi_model.TrainedModelRepository):
        watcher = loop.create_task(app.dataplane.repository.models.watch())
    grpc_server = None
    if settings.grpc_port:
        from ksrv.server import grpc_service

        grpc_server = grpc_service.build_server(
            app.dataplane,
            settings.grpc_port,
            settings.host,
            settings.grpc_max_send_bytes,
            settings.grpc_max_receive_bytes,
            settings.grpc_threads,
            is_shared=settings.workers > 1,
            payload_log=payload_log,
            is_cached=bool(settings.response_cache_bytes),
        )
        await grpc_server.start()
    logger.info(
        "%s (pid %s)", _listening_line(settings.host, rest.port, settings.grpc_port), os.getpid()
    )
    await stop.wait()
    logger.info("draining: answering accepted requests for up to %ss", settings.grace_period_s)
    app.dataplane.is_draining = True
    draining = [rest.shutdown(settings.grace_period_s)]
    if grpc_server is not None:
        draining.append(grpc_server.stop(settings.grace_period_s))
    await asyncio.gather(*draining)
    if watcher is not None:
        watcher.cancel()
    app.dataplane.shutdown()
    if payload_log is not None:
        await loop.run_in_executor(None, payload_log.close, PAYLOAD_LOG_FLUSH_S)
    if stop_payload_metrics is not None:
        stop_payload_metrics.set()  # one last copy of the counts, then the thread ends
    tracing.shutdown()  # the spans still buffered leave now (a forked worker has no atexit)


def _start_payload_log(settings: ServerSettings) -> PayloadLog | None:
    """KServe's payload logger in this process (each forked worker runs its own)."""
    if settings.payload_log is None:
        return None
    from ksrv.server.payload_log import PayloadLog

    address = f"[{settings.host}]" if ":" in settings.host else settings.host
    log = PayloadLog(settings.payload_log, f"http://{address}:{settings.http_port}/")
    log.start()
    return log


def _listening_line(host: str, http_port: int, grpc_port: int) -> str:
    """`ksrv model server listening on http://HOST:PORT (gRPC HOST:PORT)`: what to call."""
    address = f"[{host}]" if ":" in host else host
    grpc = f" (gRPC {address}:{grpc_port})" if grpc_port else " (gRPC off)"
    return f"ksrv model server listening on http://{address}:{http_port}{grpc}"


def _run(settings: ServerSettings, app: RESTApp, listener: socket.socket | None = None) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_serve_forever(settings, app, listener))
    else:
        uvloop.run(_serve_forever(settings, app, listener))


def fetch_model(settings: ServerSettings) -> ServerSettings:
    """KServe's storage initializer, in process: `storage_uri` -> files, then `model_dir`.

    With `model_dir` set the files go there (as to /mnt/models); otherwise the cache is used.
    """
    assert settings.storage_uri
    path = storage.download(settings.storage_uri, settings.model_dir)
    scheme = storage.scheme_of(settings.storage_uri)
    warning = remote_pickle_warning(settings.storage_uri, Path(path), scheme)
    if warning:
        logger.warning(warning)
    return dataclasses.replace(settings, model_dir=str(path))


def serve(settings: ServerSettings, models: list[Model] | None = None) -> None:
    """Load the models and serve them until SIGTERM/SIGINT.

    Raises:
        ServerNotReady: the HTTP or gRPC port is in use (checked before the models load).
    """
    # One socket, bound now (the port is ours while the models load) without SO_REUSEPORT:
    # the workers share it, nobody else can. It listens once the models are loaded.
    listener = listeners.reserve(settings.host, settings.http_port, "HTTP")
    try:
        with contextlib.ExitStack() as metrics_files:
            if settings.workers > 1:  # each scrape reads the sum over the workers
                metrics_files.enter_context(telemetry.shared_across_workers("ksrv-server-"))
            _serve_loaded(settings, models, listener)
    finally:
        listener.close()


def _serve_loaded(
    settings: ServerSettings, models: list[Model] | None, listener: socket.socket
) -> None:
    """`serve` once the HTTP port is ours."""
    _check_grpc_port(settings)
    if settings.storage_uri and models is None:
        settings = fetch_model(settings)
    models = models if models is not None else build_models(settings)
    load_s = load_models(models)
    tracing.configure(settings.model_name)
    app = build_app(settings, models)
    for name, seconds in load_s.items():
        app.dataplane.metrics.record_load(name, seconds)
    # Loaded frameworks leave millions of long-lived objects; without this, every full
    # collection walks them all and stalls the loop for tens of ms (the p99 at high
    # concurrency). Frozen objects are also never written by the GC, so forked workers
    # keep sharing their pages.
    gc.collect()
    gc.freeze()
    listeners.start_listening(listener, "HTTP")
    _check_grpc_port(settings)
    if settings.workers <= 1:
        _run(settings, app, listener)
    else:
        workers.supervise(
            settings.workers,
            lambda _index: _run(settings, app, listener),
            on_exit=telemetry.worker_exited,
        )


def _check_grpc_port(settings: ServerSettings) -> None:
    """Fail with the port's name while nothing has started, not halfway through."""
    if settings.grpc_port:
        listeners.check_free(settings.host, settings.grpc_port, "gRPC")
