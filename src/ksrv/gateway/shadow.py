"""Shadow traffic: a copy of some requests goes to a revision whose answers nobody sees.

With `ksrv.dev/shadow-percent: "N"`, a component's route names a shadow revision (the latest,
while it is not rolled out). After a request of the component was answered by (or failed
at) its normal backend, `Shadower.offer` draws from its own seeded rng and, N% of the time,
sends the same request to a ready replica of the shadow in a background task: the real
answer is never delayed or changed by it. The shadow's answer is read and dropped; a
non-2xx status, a transport failure or a timeout counts as an error. Only replayable requests
are copied (a REST body the gateway streamed instead of buffering is gone once sent); a copy
that cannot go (streamed body, no ready replica, every replica at `containerConcurrency`, or
`MAX_IN_FLIGHT` copies already under way in this process) is skipped and counted as such.
Counts are cumulative per (namespace, revision) and travel to the control plane with the
traffic report (`gateway/traffic.py`); a revision that is no longer a shadow is forgotten.
Copies are not seen by the hooks: they are not the revision's demand for the autoscaler.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Final, Protocol

from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Backend, Match, RouteTable
from ksrv.http.upstream import UpstreamResponse
from ksrv.protocol.traffic import ShadowCountDoc

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 64
"""Copies one gateway process has under way at most; more are skipped."""

RevisionKey = tuple[str, str]
"""(namespace, revision)."""


class Sender(Protocol):
    """What a copy needs from a transport (`dispatch.Transport` satisfies it)."""

    balancer: Balancer[Any]

    def addresses(self, backend: Backend) -> tuple[str, ...]: ...

    async def send(self, endpoint: Endpoint[Any], call: Call, match: Match) -> Any: ...


class Shadower:
    """Decides which requests are copied, sends the copies, counts them."""

    def __init__(self, rng: random.Random | None = None, max_in_flight: int = MAX_IN_FLIGHT):
        self.rng = rng if rng is not None else random.Random()
        self.max_in_flight = max_in_flight
        self.counts: dict[RevisionKey, list[int]] = {}
        """(namespace, revision) -> [sent, errors, skipped]."""
        self.tasks: set[asyncio.Task[None]] = set()

    def offer(self, transport: Sender, call: Call, match: Match) -> None:
        """Copy `call` to the shadow of `match`'s component, if the draw says so."""
        shadow = match.component.shadow
        if shadow is None or self.rng.random() * 100.0 >= shadow.percent:
            return
        backend = shadow.component.backends[0]
        counts = self.counts.setdefault((match.service.namespace, backend.revision), [0, 0, 0])
        payload = _replayable(call.payload)
        if payload is None:
            counts[2] += 1  # streamed to the replica, not kept: nothing to replay
            return
        addresses = transport.addresses(backend)
        endpoint = None
        if addresses and len(self.tasks) < self.max_in_flight:
            endpoint = transport.balancer.take(addresses, shadow.component.concurrency)
        if endpoint is None:
            counts[2] += 1
            return
        counts[0] += 1
        copy = Match(match.service, shadow.component, match.target)
        copied = Call(call.transport, call.host, call.target, call.headers, payload, call.tag)
        task = asyncio.get_running_loop().create_task(
            self._send(transport, endpoint, copied, copy, counts)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(
        self,
        transport: Sender,
        endpoint: Endpoint[Any],
        call: Call,
        copy: Match,
        counts: list[int],
    ) -> None:
        try:
            answer = await transport.send(endpoint, call, copy)
            if isinstance(answer, UpstreamResponse):
                if answer.stream is not None:
                    async for _ in answer.stream:  # drain it: the replica finishes its work
                        pass
                if not 200 <= answer.status < 300:
                    counts[1] += 1
        except Exception as exc:  # a timeout, a dropped connection, a replica's gRPC status
            counts[1] += 1
            logger.debug("shadow copy to %s failed: %s", endpoint.address, exc)
        finally:
            transport.balancer.release(endpoint)

    def forget_except(self, table: RouteTable) -> None:
        """Drop the counts of revisions that are no longer any component's shadow."""
        current = {
            (service.namespace, component.shadow.component.backends[0].revision)
            for service in table.services
            for component in service.components.values()
            if component.shadow is not None
        }
        for key in set(self.counts) - current:
            del self.counts[key]

    def report(self) -> list[ShadowCountDoc]:
        """The cumulative counts, as the traffic report carries them."""
        return [
            {"namespace": ns, "revision": rev, "sent": c[0], "errors": c[1], "skipped": c[2]}
            for (ns, rev), c in sorted(self.counts.items())
        ]

    async def drain(self) -> None:
        """Wait for the copies under way (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


def _replayable(payload: Any) -> Any:
    """The transport's request as a copy may send it again, or None when it cannot be: a
    REST body streamed to the replica (`body_stream`) is gone. A gRPC request drops the
    client's deadline (`GRPCRequest.without_deadline`)."""
    if getattr(payload, "body_stream", None) is not None:
        return None
    without_deadline = getattr(payload, "without_deadline", None)
    return without_deadline() if callable(without_deadline) else payload
