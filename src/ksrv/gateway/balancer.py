"""Replica choice for both gateway transports: least outstanding, ties rotate, failures last.

A `Balancer` keeps one `Endpoint` per replica address: its requests in flight, until when it
counts as down (it refused a connection), and the transport's connection object for it (a
REST `ReplicaPool` or a gRPC channel, made by the `connect` callable it was given). REST and
gRPC each own one balancer, because they reach different ports, but they choose alike.
"""

from __future__ import annotations

import time
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

    def keep_only(self, addresses: set[str]) -> list[C]:
        """Forget the endpoints that left the route table; returns their connections to close."""
        gone = [address for address in self.endpoints if address not in addresses]
        return [self.endpoints.pop(address).conn for address in gone]
