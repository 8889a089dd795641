"""The REST adapter: V1, V2 (OIP) and the repository extension over `ksrv.http.server`.

No web framework: routing is a split on '/', because per-request framework overhead is most
of what separates a Python model server from the floor. Every error, ours or a bug, becomes
`{"error": "..."}` with the status `protocol.status` picks, here and nowhere else.

The OpenAI routes (`openai_routes.py`) are matched only under their prefix, after V2; V2's
generate extension (`generate.py`) only after `infer`, so neither costs the hot paths.

A model whose handler returns an async iterator (an `async def predict` that yields, as KServe
custom models may) has its chunks streamed to the client as they are produced.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from ksrv.errors import InvalidInput, KsrvError, PayloadTooLarge, RouteNotFound
from ksrv.http import body as http_body
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.protocol import correlation, rest_codec, status, v1
from ksrv.protocol.v2 import InferRequest, InferResponse
from ksrv.server import generate
from ksrv.server.dataplane import DataPlane
from ksrv.server.openai_routes import DEFAULT_PREFIX, OpenAIRoutes
from ksrv.telemetry import metrics as telemetry

logger = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")
_OCTETS = (b"content-type", b"application/octet-stream")
_METRICS = (b"content-type", telemetry.CONTENT_TYPE.encode())


def json_response(value: Any, status_code: int = 200) -> Response:
    return Response(rest_codec.dumps(value), status_code, [_JSON])


def error_response(exc: BaseException) -> Response:
    return json_response({"error": status.public_message(exc)}, status.http_status(exc))


def payload_too_large(size: int, limit: int) -> Response:
    return error_response(
        PayloadTooLarge(f"Request body of {size} bytes exceeds the limit of {limit} bytes")
    )


class RESTApp:
    """Answers whole HTTP requests (from `ksrv.http.server`) against one `DataPlane`."""

    def __init__(
        self,
        dataplane: DataPlane,
        max_request_bytes: int = http_body.DEFAULT_MAX_BODY_BYTES,
        openai_prefix: str = DEFAULT_PREFIX,
    ):
        self.dataplane = dataplane
        self.max_request_bytes = max_request_bytes
        self.openai = OpenAIRoutes(dataplane, openai_prefix)
        # The decode and encode steps, as attributes so tracing (`server/traced.py`) can wrap
        # them at build time; untraced, a call costs what a module function's does.
        self.decode_v2 = rest_codec.decode_request
        self.encode_v2 = _v2_result
        self.decode_v1 = _v1_payload
        self.encode_v1 = _v1_result

    async def handle(self, request: Request) -> Response | StreamingResponse:
        response: Response | StreamingResponse
        try:
            response = await self._route(request)
        except (KsrvError, NotImplementedError) as exc:
            response = error_response(exc)
        except Exception as exc:
            logger.exception("request failed: %s %s", request.method, request.path)
            response = error_response(exc)
        raw_id = request.header(b"x-request-id")
        if raw_id is not None:
            request_id = correlation.sane_request_id(raw_id.decode("latin-1"))
            if request_id is not None:
                response.headers.append((b"x-request-id", raw_id))
        return response

    def too_large(self, size: int) -> Response:
        return payload_too_large(size, self.max_request_bytes)

    async def _route(self, request: Request) -> Response | StreamingResponse:
        parts = request.path.strip("/").split("/")
        if parts[0] == "v2":
            return await self._route_v2(request, parts)
        if parts[0] == self.openai.first:
            rest = self.openai.match(parts)
            if rest is not None:
                return await self.openai.handle(request, rest)
        if parts[0] == "v1":
            return await self._route_v1(request, parts)
        if parts == [""] and request.method in ("GET", "HEAD"):
            return json_response({"status": "alive"})
        if parts == ["metrics"] and request.method in ("GET", "HEAD"):
            return Response(self.dataplane.metrics.exposition(), 200, [_METRICS])
        raise _not_found(request)

    # -- V2 / Open Inference Protocol ------------------------------------------------------
    async def _route_v2(self, request: Request, parts: list[str]) -> Response | StreamingResponse:
        method = request.method
        count = len(parts)
        if count >= 3 and parts[1] == "models":
            name, version, action = _model_path(parts)
            if action == "infer" and method == "POST":
                return await self._infer_v2(request, name, version)
            if action in ("generate", "generate_stream") and method == "POST":
                is_stream = action == "generate_stream"
                self.dataplane.model(name, version)
                with self.dataplane.metrics.count("v2", name):
                    return await generate.generate(
                        self.dataplane, name, version, request.body, is_stream
                    )
            if action == "ready" and method == "GET":
                is_ready = await self.dataplane.is_model_ready(name, version)
                return json_response({"name": name, "ready": is_ready}, 200 if is_ready else 503)
            if action == "" and method == "GET":
                return json_response(await self.dataplane.model_metadata(name, version))
            raise _not_found(request)
        if count == 1 and method == "GET":
            return json_response(self.dataplane.metadata())
        if count == 3 and parts[1] == "health" and method == "GET":
            if parts[2] == "live":
                return json_response({"live": True})
            if parts[2] == "ready":
                is_ready = await self.dataplane.is_server_ready()
                return json_response({"ready": is_ready}, 200 if is_ready else 503)
        if count == 2 and parts[1] == "models" and method == "GET":
            return json_response({"models": list(self.dataplane.repository.get_models())})
        if count >= 3 and parts[1] == "repository":
            return await self._route_repository(request, parts)
        raise _not_found(request)

    async def _infer_v2(
        self, request: Request, name: str, version: str | None
    ) -> Response | StreamingResponse:
        self.dataplane.model(name, version)  # unknown model: 404 before reading the body
        with self.dataplane.metrics.count("v2", name):
            body = request.body
            json_length = _json_length(request.headers)
            infer_request = self.decode_v2(body, name, json_length, version)
            result = await self.dataplane.infer(name, infer_request, request.headers, version)
            return self.encode_v2(result, infer_request)

    async def _route_repository(self, request: Request, parts: list[str]) -> Response:
        if parts[2] == "index" and len(parts) == 3 and request.method in ("GET", "POST"):
            return json_response(await self.dataplane.repository_index())
        if len(parts) == 5 and parts[2] == "models" and request.method == "POST":
            name, action = parts[3], parts[4]
            if action == "load":
                await self.dataplane.load(name)
                return json_response({"name": name, "load": True})
            if action == "unload":
                await self.dataplane.unload(name)
                return json_response({"name": name, "unload": True})
        raise _not_found(request)

    # -- V1 --------------------------------------------------------------------------------
    async def _route_v1(self, request: Request, parts: list[str]) -> Response | StreamingResponse:
        if len(parts) == 2 and parts[1] == "models" and request.method == "GET":
            return json_response({"models": list(self.dataplane.repository.get_models())})
        if len(parts) != 3 or parts[1] != "models":
            raise _not_found(request)
        name, _, verb = parts[2].rpartition(":")
        if not name:
            if request.method != "GET":
                raise _not_found(request)
            is_ready = await self.dataplane.is_model_ready(verb)
            return json_response({"name": verb, "ready": is_ready}, 200 if is_ready else 503)
        if verb not in ("predict", "explain") or request.method != "POST":
            raise _not_found(request)
        self.dataplane.model(name)
        with self.dataplane.metrics.count("v1", name):
            payload = self.decode_v1(request.body)
            result = await self.dataplane.infer(name, payload, request.headers, verb=verb)
            return self.encode_v1(result)


def _v1_payload(body: bytes) -> Any:
    return v1.check_request(rest_codec.loads(body, rest_codec.MAX_JSON_BYTES))


def _v1_result(result: Any) -> Response | StreamingResponse:
    if isinstance(result, InferResponse):
        body, json_length = rest_codec.encode_response(result)
        return _binary_or_json(body, json_length)
    if isinstance(result, bytes | str):
        body = result.encode() if isinstance(result, str) else result
        return Response(body, 200, [_OCTETS])
    if isinstance(result, AsyncIterator):
        return StreamingResponse(_encoded_chunks(result))
    return json_response(result)


def _model_path(parts: list[str]) -> tuple[str, str | None, str]:
    """`v2/models/{name}[/versions/{v}][/{action}]` -> (name, version, action)."""
    name = parts[2]
    rest = parts[3:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version = rest[1]
        rest = rest[2:]
    if len(rest) > 1:
        return name, version, "/".join(rest)
    return name, version, rest[0] if rest else ""


def _json_length(headers: dict[str, str]) -> int | None:
    value = headers.get(rest_codec.HEADER_CONTENT_LENGTH)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length must be an integer, got {value!r}")
    return int(value)


def _v2_result(result: Any, infer_request: InferRequest) -> Response | StreamingResponse:
    if isinstance(result, InferResponse):
        if infer_request.id:
            result.id = infer_request.id  # OIP: the response carries the request's id
        body, json_length = rest_codec.encode_response(result, infer_request)
        return _binary_or_json(body, json_length)
    if isinstance(result, AsyncIterator):
        return StreamingResponse(_encoded_chunks(result))
    return json_response(result)


async def _encoded_chunks(chunks: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """A model's streamed chunks as bytes: str as UTF-8, other values as JSON lines.

    Closing this generator (the client hung up) closes the model's own generator too.
    """
    try:
        async for chunk in chunks:
            if isinstance(chunk, bytes):
                yield chunk
            elif isinstance(chunk, str):
                yield chunk.encode()
            else:
                yield rest_codec.dumps(chunk) + b"\n"
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _binary_or_json(body: bytes, json_length: int | None) -> Response:
    if json_length is None:
        return Response(body, 200, [_JSON])
    headers = [_OCTETS, (b"inference-header-content-length", str(json_length).encode())]
    return Response(body, 200, headers)


def _not_found(request: Request) -> RouteNotFound:
    return RouteNotFound(f"No route for {request.method} {request.path}")
