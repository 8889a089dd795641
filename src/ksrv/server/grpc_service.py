"""The gRPC adapter: `inference.GRPCInferenceService` around the data plane.

Thin by design: decode with `grpc_codec`, call `DataPlane`, encode. Every failure leaves as
the status code `protocol.status` gives its kind (INVALID_ARGUMENT for the caller's mistakes,
NOT_FOUND, UNAVAILABLE, ...); only a bug becomes INTERNAL.

The servicer is written once, async, and runs on the server's event loop beside REST. gRPC
itself is grpcio's threaded server, not grpc.aio: its per-call machinery costs about 90 us
here against grpc.aio's 130 us, and its threads hand each call to the loop, where calls that
arrive together meet in the coalescer (`ksrv.server.batching`) and share one model call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from ksrv.errors import InferenceError, KsrvError
from ksrv.protocol import grpc_codec, rest_codec, status
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.v2 import InferRequest, InferResponse
from ksrv.server.dataplane import DataPlane
from ksrv.server.settings import DEFAULT_GRPC_THREADS
from ksrv.telemetry import tracing

if TYPE_CHECKING:
    from ksrv.server.payload_log import PayloadLog

logger = logging.getLogger(__name__)


SERVICE = "inference.GRPCInferenceService"
REQUEST_TYPES = {
    "ServerLive": pb.ServerLiveRequest,
    "ServerReady": pb.ServerReadyRequest,
    "ModelReady": pb.ModelReadyRequest,
    "ServerMetadata": pb.ServerMetadataRequest,
    "ModelMetadata": pb.ModelMetadataRequest,
    "ModelInfer": pb.ModelInferRequest,
    "RepositoryModelLoad": pb.RepositoryModelLoadRequest,
    "RepositoryModelUnload": pb.RepositoryModelUnloadRequest,
}


class InferenceServicer:
    """Answers every RPC of the OIP gRPC service from one `DataPlane`."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.dataplane.is_server_ready())

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        try:
            is_ready = await self.dataplane.is_model_ready(request.name, request.version or None)
        except Exception as exc:
            await _abort(context, exc)
        return pb.ModelReadyResponse(ready=is_ready)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.dataplane.metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        try:
            metadata = await self.dataplane.model_metadata(request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=metadata["name"],
                versions=metadata.get("versions", []),
                platform=metadata["platform"],
                inputs=[_tensor_metadata(item) for item in metadata["inputs"]],
                outputs=[_tensor_metadata(item) for item in metadata["outputs"]],
            )
        except Exception as exc:
            await _abort(context, exc)

    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        try:
            name = request.model_name
            version = request.model_version or None
            self.dataplane.model(name, version)
            with self.dataplane.metrics.count("grpc", name):
                infer_request = grpc_codec.decode_request(request)
                headers = _headers(context)
                result = await self.dataplane.infer(name, infer_request, headers, version)
                response = _as_infer_response(result, infer_request)
                return grpc_codec.encode_response(response, infer_request)
        except Exception as exc:
            await _abort(context, exc)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        try:
            await self.dataplane.load(request.model_name)
        except Exception as exc:
            await _abort(context, exc)
        return pb.RepositoryModelLoadResponse(model_name=request.model_name, isLoaded=True)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        try:
            await self.dataplane.unload(request.model_name)
        except Exception as exc:
            await _abort(context, exc)
        return pb.RepositoryModelUnloadResponse(model_name=request.model_name, isUnloaded=True)


def _tensor_metadata(item: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=item["name"], datatype=item["datatype"], shape=item["shape"]
    )


def _headers(context: Any) -> dict[str, str]:
    metadata = context.invocation_metadata() or ()
    return {key: value for key, value in metadata if isinstance(value, str)}


def _as_infer_response(result: Any, request: InferRequest) -> InferResponse:
    if isinstance(result, InferResponse):
        if request.id:
            result.id = request.id
        return result
    if isinstance(result, dict) and "outputs" in result:
        response = rest_codec.infer_response_from_dict(result, request.model_name)
        response.id = request.id or response.id
        return response
    raise InferenceError(
        f"Model '{request.model_name}' returned {type(result).__name__}, which gRPC cannot "
        "carry; return an InferResponse"
    )


async def _abort(context: Any, exc: BaseException) -> NoReturn:
    if not isinstance(exc, KsrvError | NotImplementedError):
        logger.exception("gRPC request failed")
    code = getattr(grpc.StatusCode, status.grpc_code(exc))
    await context.abort(code, status.public_message(exc))
    raise AssertionError("context.abort returned")  # it always raises


class _Undecodable:
    """Stands in for a request whose bytes are not the expected protobuf message."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(message_type: Any) -> Any:
    # grpcio answers UNKNOWN when a deserializer raises; garbage is the caller's mistake.
    def deserialize(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except Exception as exc:
            return _Undecodable(f"{message_type.DESCRIPTOR.name}: {exc}")

    return deserialize


def _guarded(method: Any) -> Any:
    async def handle(request: Any, context: Any) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request is not a valid protobuf message ({request.reason})",
            )
        return await method(request, context)

    return handle


class _Aborted(Exception):
    """`context.abort` on the loop, carried back to the gRPC thread that owns the call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _LoopContext:
    """What the async servicer needs of a threaded call's context, usable from the loop."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise _Aborted(code, details)

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._context.set_trailing_metadata(metadata)


AsyncMethod = Callable[[Any, Any], Coroutine[Any, Any, Any]]


def _on_loop(method: AsyncMethod, loop: asyncio.AbstractEventLoop) -> Any:
    """A threaded handler that runs `method` on `loop` and waits for its answer.

    A call that ends early (the client cancelled, its deadline passed) cancels the work on
    the loop, so abandoned calls do not hold a thread until the model answers.
    """

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        call = asyncio.run_coroutine_threadsafe(method(request, _LoopContext(context)), loop)
        # Runs when the RPC ends (a no-op once answered); False if it has ended already.
        if not context.add_callback(call.cancel):
            call.cancel()
        try:
            return call.result()
        except _Aborted as aborted:
            context.abort(aborted.code, aborted.details)
        except concurrent.futures.CancelledError:
            if context.is_active():  # the server gave up on it (stopping), not the client
                context.abort(grpc.StatusCode.UNAVAILABLE, "the server is stopping")
            context.abort(grpc.StatusCode.CANCELLED, "the call ended before its answer")

    return handle


def _handlers(
    servicer: InferenceServicer,
    loop: asyncio.AbstractEventLoop,
    payload_log: PayloadLog | None = None,
    is_cached: bool = False,
) -> Any:
    methods = {name: getattr(servicer, name) for name in REQUEST_TYPES}
    if is_cached:
        from ksrv.server.response_cache import with_trailing_metadata

        methods["ModelInfer"] = with_trailing_metadata(methods["ModelInfer"])
    if payload_log is not None:
        from ksrv.server.payload_capture import logged_infer

        methods["ModelInfer"] = logged_infer(methods["ModelInfer"], payload_log)
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _on_loop(_guarded(methods[name]), loop),
            request_deserializer=_lenient(message_type),
            response_serializer=lambda message: message.SerializeToString(),
        )
        for name, message_type in REQUEST_TYPES.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class GRPCServer:
    """grpcio's threaded server answering from the data plane on the running event loop."""

    def __init__(self, server: grpc.Server, threads: concurrent.futures.ThreadPoolExecutor):
        self._server = server
        self._threads = threads

    async def start(self) -> None:
        self._server.start()

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls; let calls in flight finish within `grace_s`."""
        stopped = self._server.stop(grace_s)
        await asyncio.get_running_loop().run_in_executor(None, stopped.wait)
        self._threads.shutdown(wait=False)


def build_server(
    dataplane: DataPlane,
    port: int,
    host: str,
    max_send_bytes: int,
    max_receive_bytes: int,
    threads: int = DEFAULT_GRPC_THREADS,
    is_shared: bool = False,
    payload_log: PayloadLog | None = None,
    is_cached: bool = False,
) -> GRPCServer:
    """A gRPC server on host:port; `threads` calls are taken at once, more wait in gRPC's
    queue. Build it on the serving loop. `is_shared`: forked workers of this server bind
    the same port (SO_REUSEPORT); otherwise no other process can (grpcio's default would
    let a stray server answer some of the calls). `payload_log`: where `ModelInfer`'s
    payloads go (KServe's `logger`). `is_cached`: a response cache is on, and `ModelInfer`
    says `ksrv-cache: hit|miss` in its trailing metadata."""
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="ksrv-grpc")
    server = grpc.server(
        pool,
        options=[
            ("grpc.max_send_message_length", max_send_bytes),
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.so_reuseport", int(is_shared)),
        ],
    )
    loop = asyncio.get_running_loop()
    servicer = InferenceServicer(dataplane)
    if tracing.tracer() is not None:
        from ksrv.server import traced

        traced.instrument_grpc(servicer)
    server.add_generic_rpc_handlers((_handlers(servicer, loop, payload_log, is_cached),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server.add_insecure_port(address)
    return GRPCServer(server, pool)
