"""`Model`: the class custom-model authors subclass, as in KServe.

Handlers (`preprocess`, `predict`, `postprocess`, `explain`) may be sync or async. Unlike
KServe, sync handlers never run on the event loop: consecutive sync steps run together in one
trip to the server's thread pool, so a slow `predict` cannot stall health checks or other
requests. Without its own `predict`, a model with a `predictor_host` is a transformer and
forwards to its predictor over V1 or V2 REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ksrv.errors import InvalidInput
from ksrv.protocol import client
from ksrv.protocol.v2 import InferRequest
from ksrv.telemetry import tracing

PREDICT = "predict"
EXPLAIN = "explain"

Headers = dict[str, str]
Payload = dict[str, Any] | InferRequest | Any
Step = Callable[[Any, Headers], Any]
StepObservers = Mapping[str, Callable[[float], None]]
"""`observe(seconds)` per timed step: "preprocess", "predict", "postprocess", "explain"."""

_PIPELINE_STEPS = ("preprocess", "predict", "postprocess")
# How a pipeline step runs: awaited, in the thread pool, or directly on the loop.
_ASYNC, _SYNC, _INLINE = "async", "sync", "inline"


@dataclass(slots=True)
class PredictorConfig:
    """Where a transformer forwards `predict` (KServe's `PredictorConfig`)."""

    predictor_host: str | None = None
    predictor_protocol: str = "v1"
    predictor_use_ssl: bool = False
    predictor_request_timeout_seconds: float = 600.0


class SyncCost:
    """How costly a model's sync handlers are, to decide whether they may run on the loop.

    A thread handoff costs 50-100 us, as much as a small scikit-learn predict. So a model that
    opts in (`Model.enable_inline_sync`) and whose sync steps have averaged under
    `INLINE_LIMIT_S` of CPU time runs them on the event loop; an inline call that holds the
    loop longer than `STALL_S` sends it back to the pool until its average is cheap again.
    CPU time, not wall time, feeds the average: in the pool, wall time also counts waiting for
    the GIL (gRPC's poller thread holds it now and then), which would keep a cheap model out.
    Models that do not opt in (custom models by default) always use the pool, so a slow
    `predict` never stalls the server.
    """

    INLINE_LIMIT_S = 0.001
    STALL_S = 0.01
    _WEIGHT = 0.1

    __slots__ = ("average_s", "enabled")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.average_s: float | None = None

    def is_cheap(self) -> bool:
        return self.enabled and self.average_s is not None and self.average_s < self.INLINE_LIMIT_S

    def timed(self, function: Callable[[], Any], is_inline: bool = False) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function()
        finally:
            self.record(time.thread_time() - cpu, time.perf_counter() - wall, is_inline)

    def record(self, cpu_s: float, wall_s: float = 0.0, is_inline: bool = False) -> None:
        if is_inline and wall_s > self.STALL_S:
            self.average_s = wall_s
        elif self.average_s is None or cpu_s > self.STALL_S:
            self.average_s = cpu_s
        else:
            self.average_s += self._WEIGHT * (cpu_s - self.average_s)


class Model:
    """A named model with a `ready` flag and a preprocess -> predict -> postprocess pipeline."""

    # Built-in runtimes whose sync handlers are short CPU work set this (see SyncCost).
    enable_inline_sync = False
    # Built-in runtimes whose predict answers each row on its own set this: the server may
    # then merge concurrent requests into one call (see ksrv.server.batching). A merged call
    # sees the first request's headers.
    batchable = False
    # Set by the server (`observe_steps`): each step's duration goes to its observer.
    step_observers: StepObservers | None = None
    # Runtimes whose inputs' first dimension is the batch (onnx, pytorch, tensorflow) set this:
    # they merge only when the server runs a batcher (`--max-latency-ms`, KServe's `batcher`).
    enable_batcher = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that changes the pipeline must say again that its rows are independent.
        changes_pipeline = any(name in cls.__dict__ for name in _PIPELINE_STEPS)
        if changes_pipeline and "batchable" not in cls.__dict__:
            cls.batchable = False
        if changes_pipeline and "enable_batcher" not in cls.__dict__:
            cls.enable_batcher = False

    def __init__(
        self,
        name: str,
        predictor_config: PredictorConfig | None = None,
        return_response_headers: bool = False,
    ) -> None:
        config = predictor_config or PredictorConfig()
        self.name = name
        self.ready = False
        self.engine = False
        self.return_response_headers = return_response_headers
        # Transformer mode: where `predict` and `explain` forward when not overridden.
        self.predictor_host = config.predictor_host
        self.explainer_host: str | None = None
        self.protocol = config.predictor_protocol
        self.use_ssl = config.predictor_use_ssl
        self.timeout = config.predictor_request_timeout_seconds
        self._pipelines: dict[str, list[tuple[str, list[Step]]]] = {}
        self._sync_cost = SyncCost(enabled=self.enable_inline_sync)

    # -- lifecycle -------------------------------------------------------------------------
    def load(self) -> bool:
        """Load weights; subclasses override, set `self.ready = True` and return it."""
        self.ready = True
        return self.ready

    def start(self) -> None:
        """Called by the server before serving (KServe semantics: marks the model ready)."""
        self.ready = True

    def stop(self) -> None:
        """Called when the model is unloaded or the server stops."""
        self.ready = False

    async def healthy(self) -> bool:
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: `[{"name", "datatype", "shape"}]` of the inputs; empty if unknown."""
        return []

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata: `[{"name", "datatype", "shape"}]` of the outputs; empty if unknown."""
        return []

    # -- handlers (override any of them) ---------------------------------------------------
    def preprocess(self, payload: Payload, headers: Headers | None = None) -> Payload:
        return payload

    def postprocess(self, result: Any, headers: Headers | None = None) -> Any:
        return result

    async def predict(self, payload: Payload, headers: Headers | None = None) -> Any:
        if not self.predictor_host:
            raise NotImplementedError(
                f"Model '{self.name}' has no predict() and no predictor host to forward to"
            )
        target = self._predictor_target(self.predictor_host)
        if tracing.tracer() is None:
            return await client.forward_predict(target, payload, headers)
        with _client_span(target, "predict") as outgoing:
            return await client.forward_predict(target, payload, {**(headers or {}), **outgoing})

    async def explain(self, payload: Payload, headers: Headers | None = None) -> Any:
        if not self.explainer_host:
            raise NotImplementedError(f"Model '{self.name}' has no explainer")
        target = self._predictor_target(self.explainer_host)
        if tracing.tracer() is None:
            return await client.forward_explain(target, payload, headers)
        with _client_span(target, "explain") as outgoing:
            return await client.forward_explain(target, payload, {**(headers or {}), **outgoing})

    def validate(self, payload: Payload) -> Payload:
        """KServe's envelope check: `inputs` / `instances` must be lists."""
        if isinstance(payload, dict):
            for key in ("inputs", "instances"):
                if key in payload and not isinstance(payload[key], list):
                    raise InvalidInput(f'Expected "{key}" to be a list')
        return payload

    # -- the pipeline ----------------------------------------------------------------------
    def observe_steps(self, observers: StepObservers) -> None:
        """Time preprocess, predict|explain and postprocess from the next call on, each
        into its observer (as KServe's step histograms), the identity ones too."""
        self.step_observers = observers
        self._pipelines.clear()

    async def __call__(
        self,
        payload: Payload,
        headers: Headers | None = None,
        verb: str = PREDICT,
        run_sync: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run preprocess -> validate -> predict|explain -> postprocess on `payload`.

        `run_sync` runs a blocking callable off the event loop (the server passes its pool);
        without it, sync steps go to the loop's default executor.
        """
        headers = headers if headers is not None else {}
        segments = self._pipelines.get(verb) or self._build_pipeline(verb)
        value = payload
        for mode, steps in segments:
            if mode == _ASYNC:
                value = await steps[0](value, headers)
            elif mode == _INLINE:
                value = _chain(steps, value, headers)()
            elif self._sync_cost.is_cheap():
                value = self._sync_cost.timed(_chain(steps, value, headers), is_inline=True)
            else:
                value = await (run_sync or _default_executor)(
                    functools.partial(self._sync_cost.timed, _chain(steps, value, headers))
                )
        return value

    def _build_pipeline(self, verb: str) -> list[tuple[str, list[Step]]]:
        """Segments of the pipeline: each async step alone, consecutive sync steps together."""
        main = self.explain if verb == EXPLAIN else self.predict
        observers = self.step_observers or {}
        segments: list[tuple[str, list[Step]]] = []
        for name, handler, default in (
            ("preprocess", self.preprocess, Model.preprocess),
            ("", self.validate, Model.validate),
            (verb, main, None),
            ("postprocess", self.postprocess, Model.postprocess),
        ):
            observe = observers.get(name)
            is_default = default is not None and getattr(handler, "__func__", None) is default
            if is_default and default is not Model.validate and observe is None:
                continue  # identity steps cost nothing when skipped
            if is_default or inspect.isasyncgenfunction(handler):
                # KServe's envelope check takes microseconds; calling an async generator
                # function only creates the generator (its body runs as it is streamed).
                mode = _INLINE
            else:
                mode = _ASYNC if inspect.iscoroutinefunction(handler) else _SYNC
            step = _with_headers(handler)
            if observe is not None:
                step = _timed_async(step, observe) if mode == _ASYNC else _timed(step, observe)
            if not is_default and tracing.tracer() is not None:
                span = getattr(handler, "__name__", "step")
                step = (tracing.traced_async if mode == _ASYNC else tracing.traced)(span, step)
            if mode != _ASYNC and segments and segments[-1][0] != _ASYNC:
                # Join the previous run of sync steps; one real sync step makes it all sync.
                previous_mode, steps = segments[-1]
                segments[-1] = (_SYNC if _SYNC in (mode, previous_mode) else _INLINE, steps)
                steps.append(step)
            else:
                segments.append((mode, [step]))
        self._pipelines[verb] = segments
        return segments

    def _predictor_target(self, host: str) -> client.Target:
        scheme = "https" if self.use_ssl else "http"
        if self.protocol == "grpc-v2":
            base = host.split("://", 1)[-1]  # gRPC dials host:port
        else:
            base = host if "://" in host else f"{scheme}://{host}"
        return client.Target(
            base_url=base, model_name=self.name, protocol=self.protocol, timeout_s=self.timeout
        )


@contextlib.contextmanager
def _client_span(target: client.Target, verb: str) -> Iterator[dict[str, str]]:
    """A CLIENT span for a call to the predictor (or explainer); yields its trace headers."""
    address = target.base_url.split("://", 1)[-1].rstrip("/")
    host, _, port = address.rpartition(":")
    attributes: dict[str, Any] = {
        "server.address": host or address,
        tracing.MODEL_NAME: target.model_name,
        tracing.INFERENCE_PROTOCOL: target.protocol,
        "ksrv.verb": verb,
    }
    if port.isdigit():
        attributes["server.port"] = int(port)
    if target.protocol == "grpc-v2":
        attributes["rpc.system"] = "grpc"
        name = "inference.GRPCInferenceService/ModelInfer"
    else:
        attributes["http.request.method"] = "POST"
        name = "POST"
    with tracing.span(name, "CLIENT", attributes):
        yield tracing.outgoing_headers()


def _with_headers(handler: Callable[..., Any]) -> Step:
    """Call `handler(value, headers)` if it takes headers, else `handler(value)`."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    takes_headers = len(parameters) >= 2 or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters
    )
    if takes_headers:
        return handler

    def without_headers(value: Any, _headers: Headers) -> Any:
        return handler(value)

    return without_headers


def _timed(step: Step, observe: Callable[[float], None]) -> Step:
    def timed(value: Any, headers: Headers) -> Any:
        started = time.perf_counter()
        try:
            return step(value, headers)
        finally:
            observe(time.perf_counter() - started)

    return timed


def _timed_async(step: Step, observe: Callable[[float], None]) -> Step:
    async def timed(value: Any, headers: Headers) -> Any:
        started = time.perf_counter()
        try:
            return await step(value, headers)
        finally:
            observe(time.perf_counter() - started)

    return timed


def _chain(steps: list[Step], value: Any, headers: Headers) -> Callable[[], Any]:
    def run() -> Any:
        result = value
        for step in steps:
            result = step(result, headers)
        return result

    return run


async def _default_executor(function: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function)
