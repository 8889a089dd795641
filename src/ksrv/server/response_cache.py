"""The response cache: answers a repeated identical request without calling the model again.

For deterministic models whose predict is costly (Triton has such a cache; KServe none). It
lives in the model server process, so each replica has its own, and a new revision (a new
process) starts empty: that is how a new revision invalidates it. Turned on by
`ksrv serve --response-cache-bytes N`; when off nothing here is imported and the request
path is unchanged, because `install` wraps the data plane's `infer` (and the REST handler, for
the `ksrv-cache` header, and gRPC's `ModelInfer` for its trailing metadata) at build time, the
way tracing does (`traced.py`).

The key is the model, its version, the verb and a canonical form of the decoded request: V2
tensors by name, datatype, shape and data bytes (so `[1, 2]` and `[1.0, 2.0]` of an FP32 input
are one key), parameters and requested outputs in sorted order (JSON spacing and key order
never matter); a V1 body as JSON with sorted keys. The request's id and headers are not part of
it (a hit answers with the caller's own id). Errors raise and are never stored; a streamed
answer (an async iterator) is passed on and never stored. `Cache-Control: no-cache` on the
request bypasses the cache: neither read nor written. Identical requests that miss while the
first of them is still at the model wait for its answer (single flight) rather than call the
model again; if that first call fails or is called off, each asks the model itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import hashlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from ksrv.errors import KsrvError
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.model.base import PREDICT, Headers, Model
from ksrv.protocol import rest_codec
from ksrv.protocol.v2 import InferRequest, InferResponse, response_ids
from ksrv.server.metrics import ResponseCacheMetrics, ServerMetrics

HEADER: Final = b"ksrv-cache"
HIT: Final = "hit"
MISS: Final = "miss"
# What one stored answer costs beyond its data (the key, the entry, the response object).
ENTRY_OVERHEAD_BYTES: Final = 256

Infer = Callable[..., Awaitable[Any]]
Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]
GRPCMethod = Callable[[Any, Any], Awaitable[Any]]

# What the last cached `infer` of this request did (hit or miss), for the REST header.
_outcome: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ksrv_response_cache", default=None
)


@dataclass(slots=True)
class _Entry:
    value: Any
    size: int
    expires_at: float
    model_name: str


class ResponseCache:
    """Answers by key, bounded by `max_bytes` (least recently used out first) and, with a
    `ttl_s`, by age; `clock` is injectable for tests."""

    def __init__(
        self,
        max_bytes: int,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.bytes = 0
        self._clock = clock
        self._on_evict = on_evict
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key, evicted=False)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: bytes, value: Any, size: int, model_name: str = "") -> bool:
        """Store `value`; False (nothing stored) when it alone is larger than the cache."""
        if size > self.max_bytes:
            return False
        if key in self._entries:
            self._remove(key, evicted=False)
        expires_at = self._clock() + self.ttl_s if self.ttl_s is not None else float("inf")
        self._entries[key] = _Entry(value, size, expires_at, model_name)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._remove(next(iter(self._entries)), evicted=True)
        return True

    def _remove(self, key: bytes, evicted: bool) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        if evicted and self._on_evict is not None:
            self._on_evict(entry.model_name)


def request_key(name: str, version: str | None, verb: str, payload: Any) -> bytes | None:
    """The canonical key of a decoded request, or None for one that is never cached."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(orjson.dumps([name, version, verb]))
    if isinstance(payload, InferRequest):
        _update_v2(digest, payload)
    elif isinstance(payload, dict):
        digest.update(b"v1")
        digest.update(_sorted_json(payload))
    else:
        return None
    return digest.digest()


def _update_v2(digest: Any, request: InferRequest) -> None:
    outputs = [
        [item.name, item.parameters]
        for item in sorted(request.request_outputs, key=lambda item: item.name)
    ]
    digest.update(b"v2")
    digest.update(_sorted_json([request.parameters, outputs, len(request.inputs)]))
    for item in request.inputs:  # the inputs' order is the caller's: models may use it
        parameters = {k: v for k, v in item.parameters.items() if k != "binary_data_size"}
        digest.update(_sorted_json([item.name, item.datatype, item.shape, parameters]))
        array = item.as_numpy()
        if array.dtype == object:
            for element in array.reshape(-1):
                data = element if isinstance(element, bytes) else str(element).encode()
                digest.update(len(data).to_bytes(8, "little"))
                digest.update(data)
        else:
            digest.update(np.ascontiguousarray(array).tobytes())


def _sorted_json(value: Any) -> bytes:
    return orjson.dumps(
        value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
    )


def answer_size(result: Any) -> int | None:
    """Roughly what storing `result` costs in bytes; None for one that is never stored."""
    if isinstance(result, InferResponse):
        size = ENTRY_OVERHEAD_BYTES
        for output in result.outputs:
            data = output.data  # as the model gave it: converting would change the answer
            if not isinstance(data, np.ndarray):
                size += len(_sorted_json(data))
            elif data.dtype == object:
                size += sum(len(e) if isinstance(e, bytes | str) else 8 for e in data.flat)
            else:
                size += data.nbytes
        return size
    if isinstance(result, dict | list | str | bytes):
        try:
            return ENTRY_OVERHEAD_BYTES + len(rest_codec.dumps(result))
        except (TypeError, KsrvError):
            return None
    return None  # streamed answers and anything else


def is_bypassed(headers: Headers | None) -> bool:
    """`Cache-Control: no-cache` (or `no-store`) on the request."""
    if not headers:
        return False
    value = headers.get("cache-control")
    return value is not None and ("no-cache" in value.lower() or "no-store" in value.lower())


def cached_infer(
    infer: Infer,
    cache: ResponseCache,
    metrics: ResponseCacheMetrics,
    resolve: Callable[[str, str | None], Model],
) -> Infer:
    """The data plane's `infer`, answering from `cache` when it can.

    An answer is served only while the model object that gave it is still the one `resolve`
    finds: a model reloaded in place (a multi-model server's TrainedModel given a new
    storageUri, a repository load) never gets its predecessor's answers.
    """
    hits, misses, stored_bytes = metrics.hits, metrics.misses, metrics.bytes
    # Misses at the model now, by key: the model that answers and its answer, once in.
    flying: dict[bytes, asyncio.Future[tuple[Model, Any]]] = {}

    async def infer_cached(
        name: str,
        payload: Any,
        headers: Headers,
        version: str | None = None,
        verb: str = PREDICT,
    ) -> Any:
        if is_bypassed(headers):
            return await infer(name, payload, headers, version, verb)
        try:
            key = request_key(name, version, verb, payload)
        except (KsrvError, TypeError, ValueError):
            key = None  # undecodable data: the model says what is wrong with it
        if key is None:
            return await infer(name, payload, headers, version, verb)
        model = resolve(name, version)
        found = cache.get(key)
        if found is not None and found[0]() is model:
            hits.labels(name).inc()
            _outcome.set(HIT)
            return _for_caller(found[1], payload)
        first = flying.get(key)
        if first is not None:
            await asyncio.wait([first])  # never cancels the first call, nor raises its error
            if not first.cancelled() and first.result()[0] is resolve(name, version):
                hits.labels(name).inc()
                _outcome.set(HIT)
                return _for_caller(first.result()[1], payload)
        misses.labels(name).inc()
        _outcome.set(MISS)
        answered: asyncio.Future[tuple[Model, Any]] = asyncio.get_running_loop().create_future()
        if key not in flying:
            flying[key] = answered
        try:
            result = await infer(name, payload, headers, version, verb)  # errors are not stored
        except BaseException:
            answered.cancel()  # failed or called off: the others ask the model themselves
            raise
        finally:
            if flying.get(key) is answered:
                del flying[key]
        size = answer_size(result)
        if size is None:
            answered.cancel()  # a stream: the others ask the model themselves
        else:
            answered.set_result((model, result))
            cache.put(key, (weakref.ref(model), result), size + len(key), name)
        stored_bytes.set(cache.bytes)
        return _for_caller(result, payload) if isinstance(result, InferResponse) else result

    return infer_cached


def _for_caller(stored: Any, payload: Any) -> Any:
    """A stored V2 answer with the caller's own id (a copy: the stored one stays as it is)."""
    if not isinstance(stored, InferResponse):
        return stored
    answer = copy.copy(stored)
    request_id = payload.id if isinstance(payload, InferRequest) else None
    answer.id = request_id or response_ids.next()
    return answer


def with_header(handler: Handler) -> Handler:
    """A REST handler whose cached inference answers say `ksrv-cache: hit|miss`."""

    async def handle(request: Request) -> Response | StreamingResponse:
        token = _outcome.set(None)
        try:
            response = await handler(request)
            outcome = _outcome.get()
        finally:
            _outcome.reset(token)
        if outcome is not None and response.status == 200:
            response.headers.append((HEADER, outcome.encode()))
        return response

    return handle


def with_trailing_metadata(method: GRPCMethod) -> GRPCMethod:
    """gRPC `ModelInfer` whose answers say `ksrv-cache: hit|miss` in trailing metadata."""

    async def infer(request: Any, context: Any) -> Any:
        token = _outcome.set(None)
        try:
            response = await method(request, context)
            outcome = _outcome.get()
        finally:
            _outcome.reset(token)
        if outcome is not None:
            context.set_trailing_metadata(((HEADER.decode(), outcome),))
        return response

    return infer


def install(app: Any, max_bytes: int, ttl_s: float | None) -> ResponseCache:
    """Put a cache in front of `app`'s (a `RESTApp`) data plane; gRPC shares the data plane."""
    dataplane = app.dataplane
    server_metrics: ServerMetrics = dataplane.metrics
    metrics = server_metrics.response_cache()
    evictions = metrics.evictions
    cache = ResponseCache(max_bytes, ttl_s, on_evict=lambda name: evictions.labels(name).inc())
    dataplane.infer = cached_infer(dataplane.infer, cache, metrics, dataplane.model)
    app.handle = with_header(app.handle)
    return cache
