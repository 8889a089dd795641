"""Async REST inference client: how a transformer reaches its predictor or explainer.

One pooled `httpx.AsyncClient` per event loop and base URL. The predictor's errors come back
as ksrv errors: its 4xx keep their meaning, unreachable or 5xx becomes `UpstreamFailed`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ksrv import errors
from ksrv.protocol import rest_codec
from ksrv.protocol.v2 import InferRequest

if TYPE_CHECKING:
    import httpx

_clients: dict[tuple[int, str], httpx.AsyncClient] = {}


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send a request: a server's base URL, the model's name and the protocol."""

    base_url: str
    model_name: str
    protocol: str = "v1"
    timeout_s: float = 600.0


async def forward_predict(target: Target, payload: Any) -> Any:
    """POST `payload` to the target's predict endpoint; V2 answers become `InferResponse`."""
    if target.protocol == "v2":
        body = (
            rest_codec.encode_request(payload)
            if isinstance(payload, InferRequest)
            else rest_codec.dumps(payload)
        )
        path = f"/v2/models/{target.model_name}/infer"
        document = await _post(target, path, body)
        return rest_codec.infer_response_from_dict(document, target.model_name)
    if target.protocol != "v1":
        raise errors.Unsupported(f"predictor protocol {target.protocol!r} is not supported")
    if isinstance(payload, InferRequest):
        payload = {"instances": payload.inputs[0].as_numpy()} if payload.inputs else {}
    return await _post(target, f"/v1/models/{target.model_name}:predict", rest_codec.dumps(payload))


async def forward_explain(target: Target, payload: Any) -> Any:
    body = rest_codec.dumps(payload)
    return await _post(target, f"/v1/models/{target.model_name}:explain", body)


async def _post(target: Target, path: str, body: bytes) -> Any:
    import httpx

    http = _client(target.base_url, httpx)
    try:
        response = await http.post(
            path,
            content=body,
            headers={"content-type": "application/json"},
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
