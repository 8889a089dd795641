"""Replica choice for both gateway transports: least outstanding, ties rotate, failures last.

A `Balancer` keeps one `Endpoint` per replica address: its requests in flight, until when it
counts as down (it refused a connection), and the transport's connection object for it (a
REST `ReplicaPool` or a gRPC channel, made by the `connect` callable it was given). REST and
gRPC each own one balancer, because they reach different ports, but they choose alike.
`containerConcurrency` N is a hard limit here (Knative's activator throttler): `take` gives
no endpoint whose N slots are all in flight, `wait` queues for one, first come first served,
and `release` hands a freed slot straight to the oldest waiter that may use it, so a newcomer
never overtakes the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")

# How long a replica that refused a connection is put last, unless no other is left.
DOWN_S = 2.0
# Scores: a replica that failed this very request goes after one that failed lately, which
# goes after any healthy one however busy (in-flight counts stay far below these).
_FAILED_NOW = 1_000_000
_FAILED_LATELY = 1000


class Endpoint(Generic[C]):
    """One replica address as the balancer sees it."""

    __slots__ = ("address", "conn", "down_until", "outstanding")

    def __init__(self, address: str, conn: C) -> None:
        self.address = address
        self.conn = conn
        self.outstanding = 0
        self.down_until = 0.0

    def mark_down(self, now: float | None = None) -> None:
        """It refused a connection: put it last for `DOWN_S`."""
        self.down_until = (time.monotonic() if now is None else now) + DOWN_S


class Balancer(Generic[C]):
    """Endpoints by address and the choice among them."""

    def __init__(self, connect: Callable[[str], C]) -> None:
        self.connect = connect
        self.endpoints: dict[str, Endpoint[C]] = {}
        self._turn = 0
        self._waiters: deque[tuple[tuple[str, ...], asyncio.Future[Endpoint[C] | None]]] = deque()

    def endpoint(self, address: str) -> Endpoint[C]:
        endpoint = self.endpoints.get(address)
        if endpoint is None:
            endpoint = self.endpoints[address] = Endpoint(address, self.connect(address))
        return endpoint

    def choose(
        self,
        addresses: tuple[str, ...],
        tried: list[Endpoint[C]] | None = None,
        now: float | None = None,
    ) -> Endpoint[C]:
        """The endpoint with the fewest requests in flight; ties rotate; failed ones go last.

        Replicas that failed (this request, or a connect lately) go last, not never: when
        every replica failed, a fresh connection to one may still work. `now` (monotonic
        seconds; the clock's, when None) decides which marks are still "lately".
        """
        endpoints = self.endpoints
        count = len(addresses)
        if count == 1 and not tried:
            endpoint = endpoints.get(addresses[0])
            return endpoint if endpoint is not None else self.endpoint(addresses[0])
        self._turn += 1
        start = self._turn % count
        if now is None:
            now = time.monotonic()
        best: Endpoint[C] | None = None
        best_score = 0
        for i in range(count):
            address = addresses[(start + i) % count]
            endpoint = endpoints.get(address)
            if endpoint is None:
                endpoint = self.endpoint(address)
            score = endpoint.outstanding
            if tried and endpoint in tried:
                score += _FAILED_NOW
            elif endpoint.down_until > now:
                score += _FAILED_LATELY
            if best is None or score < best_score:
                best, best_score = endpoint, score
        assert best is not None
        return best

    def take(self, addresses: tuple[str, ...], limit: int) -> Endpoint[C] | None:
        """The chosen endpoint, counted in flight; None when `limit` (0: none) requests are
        in flight at every one of them, or others queue for them already."""
        if limit and self._waiters and self._is_queued_for(addresses):
            return None
        endpoint = self.choose(addresses)
        if limit and endpoint.outstanding >= limit:
            return None
        endpoint.outstanding += 1
        return endpoint

    def take_preferring(
        self, addresses: tuple[str, ...], preferred: list[str], limit: int, margin: int
    ) -> Endpoint[C] | None:
        """The least busy of `preferred` that is up (counted in flight), unless it has
        `margin` or more requests in flight beyond `take`'s choice, or no free slot, or others
        queue: then `take`'s choice (`model_affinity`: the replicas that hold a model).
        """
        now = time.monotonic()
        best = min(
            (self.endpoint(address) for address in preferred),
            key=lambda e: (e.down_until > now, e.outstanding),
        )
        least = self.choose(addresses, now=now)
        is_free = not (limit and best.outstanding >= limit) and not self._waiters
        if is_free and best.down_until <= now and best.outstanding - least.outstanding < margin:
            best.outstanding += 1
            return best
        return self.take(addresses, limit)

    async def wait(self, addresses: tuple[str, ...]) -> Endpoint[C] | None:
        """Queue for a slot at one of `addresses`: the endpoint (counted in flight) when one
        is released to this waiter, or None when `wake_all` says the replicas changed."""
        future: asyncio.Future[Endpoint[C] | None] = asyncio.get_running_loop().create_future()
        waiter = (addresses, future)
        self._waiters.append(waiter)
        try:
            return await future
        except BaseException:
            handed = future.result() if future.done() and not future.cancelled() else None
            if handed is not None:
                self.release(handed)  # handed a slot just as it gave up: pass it on
            else:
                future.cancel()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, endpoint: Endpoint[C]) -> None:
        """A request at `endpoint` ended: its slot goes to the oldest waiter that may use it,
        else it is free."""
        for addresses, future in self._waiters:
            if not future.done() and endpoint.address in addresses:
                future.set_result(endpoint)
                return
        endpoint.outstanding -= 1

    def wake_all(self) -> None:
        """The route table changed: every waiter chooses again among the replicas now routed."""
        for _, future in self._waiters:
            if not future.done():
                future.set_result(None)

    def _is_queued_for(self, addresses: tuple[str, ...]) -> bool:
        return any(
            not future.done() and not set(queued).isdisjoint(addresses)
            for queued, future in self._waiters
        )

    @property
    def queued(self) -> int:
        return sum(not future.done() for _, future in self._waiters)

    def keep_only(self, addresses: set[str]) -> list[C]:
        """Forget the endpoints that left the route table; returns their connections to close."""
        gone = [address for address in self.endpoints if address not in addresses]
        return [self.endpoints.pop(address).conn for address in gone]
