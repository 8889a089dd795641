"""Async inference client: how a transformer reaches its predictor or explainer.

V1 and V2 over REST (one pooled `httpx.AsyncClient` per event loop and base URL) and V2 over
gRPC (one grpc.aio channel per loop and target). As in KServe, only the request id (if it is
a short token: `correlation`), the B3 trace id, the W3C trace context and the authorization
header travel on. The predictor's errors come back as ksrv errors: the caller's mistakes keep
their meaning, unreachable or failing becomes `UpstreamFailed`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ksrv import errors
from ksrv.protocol import rest_codec
from ksrv.protocol.correlation import sane_request_id
from ksrv.protocol.v2 import InferRequest

if TYPE_CHECKING:
    import httpx

_clients: dict[tuple[int, str], httpx.AsyncClient] = {}
_channels: dict[tuple[int, str], Any] = {}
# W3C trace context travels on too, so a trace passes through a transformer (that traces
# itself or not: `ksrv.telemetry.tracing` replaces it with its own span's when it does).
FORWARDED_HEADERS = ("x-request-id", "x-b3-traceid", "authorization", "traceparent", "tracestate")


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send a request: a server's base URL, the model's name and the protocol."""

    base_url: str
    model_name: str
    protocol: str = "v1"
    timeout_s: float = 600.0


def forwarded(headers: dict[str, str] | None) -> dict[str, str]:
    """The incoming headers a transformer passes on to its predictor."""
    if not headers:
        return {}
    passed_on = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    if "x-request-id" in passed_on and sane_request_id(passed_on["x-request-id"]) is None:
        del passed_on["x-request-id"]  # the predictor would not echo it either
    return passed_on


async def forward_predict(
    target: Target, payload: Any, headers: dict[str, str] | None = None
) -> Any:
    """Send `payload` to the target's predict endpoint; V2 answers become `InferResponse`."""
    passed_on = forwarded(headers)
    if target.protocol == "grpc-v2":
        return await _grpc_infer(target, payload, passed_on)
    if target.protocol == "v2":
        body = (
            rest_codec.encode_request(payload)
            if isinstance(payload, InferRequest)
            else rest_codec.dumps(payload)
        )
        path = f"/v2/models/{target.model_name}/infer"
        document = await _post(target, path, body, passed_on)
        return rest_codec.infer_response_from_dict(document, target.model_name)
    if target.protocol != "v1":
        raise errors.Unsupported(f"predictor protocol {target.protocol!r} is not supported")
    if isinstance(payload, InferRequest):
        payload = {"instances": payload.inputs[0].as_numpy()} if payload.inputs else {}
    path = f"/v1/models/{target.model_name}:predict"
    return await _post(target, path, rest_codec.dumps(payload), passed_on)


async def forward_explain(
    target: Target, payload: Any, headers: dict[str, str] | None = None
) -> Any:
    body = rest_codec.dumps(payload)
    path = f"/v1/models/{target.model_name}:explain"
    return await _post(target, path, body, forwarded(headers))


async def _grpc_infer(target: Target, payload: Any, metadata: dict[str, str]) -> Any:
    import grpc

    from ksrv.protocol import grpc_codec
    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc

    if not isinstance(payload, InferRequest):
        raise errors.InvalidInput(
            "a grpc-v2 predictor takes an InferRequest: return one from preprocess"
        )
    key = (id(asyncio.get_running_loop()), target.base_url)
    channel = _channels.get(key)
    if channel is None:
        channel = _channels[key] = grpc.aio.insecure_channel(target.base_url)
    message = grpc_codec.encode_request(payload)
    message.model_name = target.model_name
    try:
        response = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            message, timeout=target.timeout_s, metadata=tuple(metadata.items())
        )
    except grpc.aio.AioRpcError as exc:
        raise _grpc_error(exc, target) from None
    return grpc_codec.decode_response(response)


def _grpc_error(exc: Any, target: Target) -> errors.KsrvError:
    code, details = exc.code().name, exc.details() or ""
    if code == "INVALID_ARGUMENT":
        return errors.InvalidInput(details)
    if code == "NOT_FOUND":
        return errors.ModelNotFound(message=details)
    if code == "DEADLINE_EXCEEDED":
        return errors.UpstreamTimeout(f"{target.base_url} timed out")
    return errors.UpstreamFailed(f"{target.base_url} answered {code}: {details}")


async def _post(target: Target, path: str, body: bytes, headers: dict[str, str]) -> Any:
    import httpx

    http = _client(target.base_url, httpx)
    try:
        response = await http.post(
            path,
            content=body,
            headers={"content-type": "application/json", **headers},
            timeout=target.timeout_s,
        )
    except httpx.TimeoutException as exc:
        raise errors.UpstreamTimeout(f"{target.base_url}{path} timed out") from exc
    except httpx.HTTPError as exc:
        raise errors.UpstreamFailed(f"{target.base_url}{path} is unreachable: {exc}") from exc
    if response.status_code >= 400:
        raise _upstream_error(response.status_code, response.content, f"{target.base_url}{path}")
    return rest_codec.loads(response.content)


def _upstream_error(status: int, content: bytes, url: str) -> errors.KsrvError:
    try:
        message = str(rest_codec.loads(content).get("error", content[:200]))
    except (errors.InvalidInput, AttributeError):
        message = content[:200].decode(errors="replace")
    if status in (400, 413, 422):
        return errors.InvalidInput(message)
    if status == 404:
        return errors.ModelNotFound(message=message)
    return errors.UpstreamFailed(f"{url} answered {status}: {message}", status_code=status)


def _client(base_url: str, httpx: Any) -> httpx.AsyncClient:
    key = (id(asyncio.get_running_loop()), base_url)
    http = _clients.get(key)
    if http is None:
        http = _clients[key] = httpx.AsyncClient(base_url=base_url)
    return http
