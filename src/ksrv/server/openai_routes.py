"""The OpenAI-compatible REST routes: `{prefix}/v1/completions`, `chat/completions`,
`embeddings`, `rerank`, `models[/{m}]`, as KServe serves them.

The prefix is KServe's `KSERVE_OPENAI_ROUTE_PREFIX` (default `openai`); empty serves `/v1/...`,
where V1's own `GET /v1/models[/{m}]` win, as they do in KServe (registered first there).
The body's `model` picks the model. Every error is answered in OpenAI's envelope, with the
status `protocol/status.py` gives its kind. Streamed answers: `openai_stream.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ksrv.errors import KsrvError, MethodNotAllowed, ModelNotReady, RouteNotFound
from ksrv.http import sse
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.model.base import Model
from ksrv.model.openai import OpenAIEncoderModel, OpenAIGenerativeModel, OpenAIModel
from ksrv.protocol.openai import errors as openai_errors
from ksrv.protocol.openai.chat import ChatCompletionRequest
from ksrv.protocol.openai.common import ModelCard, ModelList
from ksrv.protocol.openai.completions import CompletionRequest
from ksrv.protocol.openai.embeddings import EmbeddingRequest, RerankRequest, as_base64
from ksrv.server import openai_stream
from ksrv.server.dataplane import DataPlane
from ksrv.server.metrics import Generation

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "openai"
_JSON = (b"content-type", b"application/json")
_POST_ROUTES = ("completions", "chat/completions", "embeddings", "rerank")

R = TypeVar("R", bound=BaseModel)
Answer = Response | StreamingResponse


def json_answer(value: BaseModel, status_code: int = 200) -> Response:
    return Response(value.model_dump_json().encode(), status_code, [_JSON])


def error_answer(exc: BaseException) -> Response:
    status_code, body = openai_errors.envelope(exc)
    return json_answer(body, status_code)


def decode(kind: type[R], body: bytes) -> R:
    """The body as `kind`; any problem is a 400 naming the parameter."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        raise openai_errors.from_validation(exc) from None


class OpenAIRoutes:
    """Answers the OpenAI routes under one prefix against a `DataPlane`'s repository."""

    def __init__(self, dataplane: DataPlane, prefix: str = DEFAULT_PREFIX) -> None:
        self.dataplane = dataplane
        self.prefix = [part for part in prefix.strip("/").split("/") if part]
        self.first = self.prefix[0] if self.prefix else "v1"
        self.started = int(time.time())

    def match(self, parts: list[str]) -> list[str] | None:
        """The path after `{prefix}/v1/`, or None when the path is not an OpenAI route."""
        size = len(self.prefix)
        if parts[:size] != self.prefix or parts[size : size + 1] != ["v1"]:
            return None
        rest = parts[size + 1 :]
        if not self.prefix and rest[:1] == ["models"]:
            return None  # bare /v1/models: KServe's V1 routes come first
        return rest

    async def handle(self, request: Request, rest: list[str]) -> Answer:
        try:
            return await self._route(request, rest)
        except (KsrvError, NotImplementedError) as exc:
            return error_answer(exc)
        except Exception as exc:
            logger.exception("request failed: %s %s", request.method, request.path)
            return error_answer(exc)

    async def _route(self, request: Request, rest: list[str]) -> Answer:
        route = "/".join(rest)
        if route in _POST_ROUTES:
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
            if route == "completions":
                return await self._completion(request)
            if route == "chat/completions":
                return await self._chat_completion(request)
            if route == "embeddings":
                return await self._embedding(request)
            return await self._rerank(request)
        if rest[:1] == ["models"] and request.method in ("GET", "HEAD"):
            if len(rest) == 1:
                return json_answer(self.model_list())
            return await self._model_card("/".join(rest[1:]))  # ids may hold '/'
        raise RouteNotFound(f"No route for {request.method} {request.path}")

    # -- models ----------------------------------------------------------------------------
    def model_list(self) -> ModelList:
        models = self.dataplane.repository.get_models()
        return ModelList(
            data=[
                self._card(name, model)
                for name, model in models.items()
                if isinstance(model, OpenAIModel)
            ]
        )

    def _card(self, name: str, model: OpenAIModel) -> ModelCard:
        return ModelCard(id=name, created=self.started, root=model.root, parent=model.parent)

    async def _model_card(self, name: str) -> Response:
        model = self.dataplane.model(name)
        if not isinstance(model, OpenAIModel):
            raise openai_errors.OpenAIInvalidRequest(
                f"Model {name} is not served through the OpenAI API", "model"
            )
        if not await model.healthy():
            raise ModelNotReady(name)
        return json_answer(self._card(name, model))

    def _ready(self, name: str, kind: type[Model], api: str) -> Any:
        model = self.dataplane.model(name)
        if not isinstance(model, kind):
            # KServe's answer: 400, the model exists but does not serve this API.
            raise openai_errors.OpenAIInvalidRequest(
                f"Model {name} does not support the {api} API", "model"
            )
        if not model.ready:
            raise ModelNotReady(name)
        return model

    # -- endpoints -------------------------------------------------------------------------
    async def _completion(self, request: Request) -> Answer:
        params = _streamable(decode(CompletionRequest, request.body))
        model = self._ready(params.model, OpenAIGenerativeModel, "Completions")
        started = time.perf_counter()
        with self.dataplane.metrics.count("openai", params.model):
            result = await model.create_completion(params, None, _context(request))
            generation = self.dataplane.metrics.generation(params.model)
            return await _answer(result, params.include_usage(), generation, started)

    async def _chat_completion(self, request: Request) -> Answer:
        params = _streamable(decode(ChatCompletionRequest, request.body))
        model = self._ready(params.model, OpenAIGenerativeModel, "Chat Completions")
        started = time.perf_counter()
        with self.dataplane.metrics.count("openai", params.model):
            result = await model.create_chat_completion(params, None, _context(request))
            generation = self.dataplane.metrics.generation(params.model)
            return await _answer(result, params.include_usage(), generation, started)

    async def _embedding(self, request: Request) -> Answer:
        params = decode(EmbeddingRequest, request.body)
        model = self._ready(params.model, OpenAIEncoderModel, "Embeddings")
        with self.dataplane.metrics.count("openai", params.model):
            result = await model.create_embedding(params, None, _context(request))
            if params.encoding_format == "base64":
                result = as_base64(result)
            return json_answer(result)

    async def _rerank(self, request: Request) -> Answer:
        params = decode(RerankRequest, request.body)
        model = self._ready(params.model, OpenAIEncoderModel, "Rerank")
        with self.dataplane.metrics.count("openai", params.model):
            return json_answer(await model.create_rerank(params, None, _context(request)))


S = TypeVar("S", CompletionRequest, ChatCompletionRequest)


def _streamable(params: S) -> S:
    """OpenAI refuses `stream_options` on a request that does not stream."""
    if params.stream_options is not None and not params.stream:
        raise openai_errors.OpenAIInvalidRequest(
            "stream_options is only allowed when stream is true", "stream_options"
        )
    return params


def _context(request: Request) -> dict[str, Any]:
    return {"headers": request.headers}


async def _answer(
    result: Any, include_usage: bool, generation: Generation, started: float
) -> Answer:
    """A whole answer as JSON; an async iterator of chunks as OpenAI's event stream. Its
    tokens are counted (and a stream's first chunk timed) into `generation`."""
    if isinstance(result, BaseModel):
        generation.usage(getattr(result, "usage", None))
        return json_answer(result)
    if isinstance(result, AsyncIterator):
        stream = await openai_stream.Prefetched.start(result)
        generation.first_token(time.perf_counter() - started)
        events = openai_stream.openai_events(stream, include_usage, generation.usage)
        return StreamingResponse(events, headers=list(sse.HEADERS))
    raise TypeError(f"an OpenAI model returned {type(result).__name__}, not a response")
