"""POSTing a step's body to its `serviceUrl`, over the gateway's keep-alive connections
(`ksrv.http.upstream.ReplicaPool`, one pool per address).

Why not httpx: a step call through it costs more CPU than the router's whole budget per hop
(bench/graph_router.py); here a call is one write of bytes and whatever the parser hands back.
Answers are taken whole (content-length, chunked, or ended by the connection closing): a graph
step's answer is a JSON document the router reads or merges. A kept-alive connection the
service had closed is retried once on a new one. A failure is raised as `UpstreamFailed`
(unreachable, cut off) or `UpstreamTimeout` (no answer in time), never as a raw socket error;
a deadline is checked with the gateway's sweeper (`ksrv.http.deadlines`), so a step's timeout
fires up to its tick late.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ksrv.errors import UpstreamFailed, UpstreamTimeout
from ksrv.http.deadlines import Deadlines
from ksrv.http.upstream import ReplicaPool, UpstreamDropped

# A call without a deadline still needs one for the sweeper: far enough never to fire.
_NO_DEADLINE_S: Final = 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes | None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a `serviceUrl` points, and the request line + Host header to send there."""

    host: str
    port: int
    is_tls: bool
    head: bytes  # "POST /path HTTP/1.1\r\nhost: ...\r\n"

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        is_tls = parts.scheme == "https"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if is_tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"POST {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode("latin-1")
        return cls(host, port, is_tls, head)


class StepClient:
    """A keep-alive pool per address; `post` reuses a connection or opens one."""

    def __init__(self) -> None:
        self.deadlines = Deadlines()
        self.pools: dict[tuple[str, int, bool], ReplicaPool] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(
        self,
        target: Target,
        body: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        deadline: float | None,
    ) -> Answer:
        """POST `body` (JSON) with `headers` to `target`; the answer, whatever its status.

        Raises:
            UpstreamFailed: the service could not be reached, or hung up without answering.
            UpstreamTimeout: no whole answer by `deadline` (loop time).
        """
        head = [target.head]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        data = b"".join(head)
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + _NO_DEADLINE_S
        pool = self._pool(target)
        try:
            try:
                answer = await pool.request(data, body, deadline)
            except UpstreamDropped as exc:
                if not exc.is_retryable or exc.is_refused:
                    raise
                pool.close_idle()  # the service closed its kept-alive connections: a new one
                answer = await pool.request(data, body, deadline)
            content = answer.body
            if answer.stream is not None:  # chunked, or ended by closing: taken whole
                async with asyncio.timeout_at(deadline):
                    content = b"".join([chunk async for chunk in answer.stream])
        except (UpstreamTimeout, TimeoutError):
            raise UpstreamTimeout("no answer in time") from None
        except UpstreamFailed as exc:
            raise UpstreamFailed(exc.message) from None
        content_type = next((v for k, v in answer.headers if k == b"content-type"), None)
        return Answer(answer.status, content, content_type)

    def _pool(self, target: Target) -> ReplicaPool:
        key = (target.host, target.port, target.is_tls)
        pool = self.pools.get(key)
        if pool is None:
            tls = None
            if target.is_tls:
                tls = self._tls = self._tls or ssl.create_default_context()
            host = f"[{target.host}]" if ":" in target.host else target.host
            pool = self.pools[key] = ReplicaPool(f"{host}:{target.port}", self.deadlines, tls)
        return pool

    def close(self) -> None:
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            pool.close()
        self.deadlines.close()
