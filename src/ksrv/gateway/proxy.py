"""Forward one HTTP request to a replica of the chosen backend, as raw bytes.

Bodies are never decoded. The replica is the one with the fewest requests in flight (ties
rotate, so idle replicas all get traffic). A request is retried, at most twice, only when
its connection failed before any response byte arrived (refused, a pooled keep-alive
connection closed under us, a replica killed mid-request): inference calls are idempotent,
but a response that has begun may not be replayed.
"""

from __future__ import annotations

import asyncio
import time

from ksrv.errors import UpstreamTimeout
from ksrv.gateway.routes import Backend, Match, Replica
from ksrv.gateway.upstream import ReplicaPool, UpstreamDropped, UpstreamResponse
from ksrv.http.server import Request

MAX_RETRIES = 2
# RFC 9110 7.6.1 hop-by-hop fields, plus the framing we redo ourselves (the body arrives
# whole, so it leaves with a content-length) and the identity headers we set.
_DROP_REQUEST = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"kserve-isvc-name",
        b"kserve-isvc-namespace",
    }
)
_DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"date",
    }
)


class Proxy:
    """Connection pools per replica address, least-outstanding choice, safe retries."""

    def __init__(self) -> None:
        self.pools: dict[str, ReplicaPool] = {}
        self._turn = 0

    async def forward(self, request: Request, match: Match, backend: Backend) -> UpstreamResponse:
        """The replica's answer to `request` (any status), or UpstreamFailed/UpstreamTimeout."""
        service = match.service
        head = _request_head(request, match.target, service.name, service.namespace)
        loop = asyncio.get_running_loop()
        timeout_s = match.component.timeout_s or service.timeout_s
        deadline = loop.time() + timeout_s
        tried: list[ReplicaPool] = []
        last = UpstreamDropped("no attempt made", True)
        for _ in range(MAX_RETRIES + 1):
            pool = self.choose(backend.replicas, tried)
            try:
                return await pool.request(head, request.body, deadline)
            except UpstreamTimeout as exc:
                raise UpstreamTimeout(
                    f"{match.component.name} of {service.namespace}/{service.name} did not "
                    f"answer within {timeout_s:g} s ({exc.message})"
                ) from None
            except UpstreamDropped as exc:
                if not exc.is_retryable:
                    raise
                # Its other idle connections likely died with this one (a restarted replica):
                # the retry should not draw another stale one.
                pool.close_idle()
                tried.append(pool)
                last = exc
        raise UpstreamDropped(f"{last.message} (after {MAX_RETRIES} retries)", True)

    def choose(self, replicas: tuple[Replica, ...], tried: list[ReplicaPool]) -> ReplicaPool:
        """The replica with the fewest requests in flight, skipping ones that just failed."""
        pools = self.pools
        count = len(replicas)
        if count == 1:
            address = replicas[0].http
            pool = pools.get(address)
            if pool is None:
                pool = pools[address] = ReplicaPool(address)
            return pool
        self._turn += 1
        start = self._turn % count
        now = time.monotonic()
        best: ReplicaPool | None = None
        best_score = 0
        for i in range(count):
            address = replicas[(start + i) % count].http
            pool = pools.get(address)
            if pool is None:
                pool = pools[address] = ReplicaPool(address)
            # Replicas that failed (this request, or a connect lately) go last, not never:
            # when every replica failed, a fresh connection to one may still work.
            score = pool.outstanding
            if pool in tried:
                score += 1_000_000
            elif pool.down_until > now:
                score += 1000
            if best is None or score < best_score:
                best, best_score = pool, score
        assert best is not None
        return best

    def keep_only(self, addresses: set[str]) -> None:
        """Close the pools of replicas that left the route table."""
        for address in list(self.pools):
            if address not in addresses:
                self.pools.pop(address).close()

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


def _request_head(request: Request, target: bytes, name: str, namespace: str) -> bytes:
    parts = [request.method.encode(), b" ", target or b"/", b" HTTP/1.1\r\n"]
    forwarded_for = request.client.encode()
    drop = _DROP_REQUEST
    for key, value in request.raw_headers:
        if key == b"connection":
            drop = drop | _connection_options(value)
    for key, value in request.raw_headers:
        if key in drop:
            if key == b"x-forwarded-for":
                forwarded_for = value + b", " + forwarded_for
            continue
        parts += (key, b": ", value, b"\r\n")
    parts += (
        b"x-forwarded-for: ",
        forwarded_for,
        b"\r\nkserve-isvc-name: ",
        name.encode(),
        b"\r\nkserve-isvc-namespace: ",
        namespace.encode(),
        b"\r\ncontent-length: %d\r\n\r\n" % len(request.body),
    )
    return b"".join(parts)


def _connection_options(value: bytes) -> frozenset[bytes]:
    """Fields a `Connection` header names are hop-by-hop too (RFC 9110 7.6.1)."""
    options = {token.strip().lower() for token in value.split(b",")}
    options -= {b"close", b"keep-alive", b"x-forwarded-for", b""}
    return frozenset(options)


def response_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    """The upstream headers a client may see: no hop-by-hop fields, no framing."""
    drop = _DROP_RESPONSE
    for key, value in response.headers:
        if key == b"connection":
            drop = drop | _connection_options(value)
    return [item for item in response.headers if item[0] not in drop]
