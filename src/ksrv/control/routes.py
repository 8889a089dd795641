"""Publishing the route table the gateway pulls: services, their components and replicas.

Each reconciler publishes its whole part of the table at a time (InferenceServices', and
InferenceGraphs' routers as one-component services); the version goes up only when the content
changes, so the gateway's long poll (`wait_newer`) wakes only for real changes. The token
hashes travel along (`set_tokens`): the gateway already trusts this feed, a revoked token
stops working with the next poll, and no secret leaves the control plane. The
document's shape is `ksrv.protocol.routes`, shared with the gateway that parses it.
"""

from __future__ import annotations

import asyncio
import time

from ksrv.protocol.routes import RouteTableDoc, ServiceDoc
from ksrv.protocol.tokens import TokenDoc


class RoutePublisher:
    """Versioned route table; satisfies the management API's `RouteFeed`."""

    def __init__(self, domain: str, parts: tuple[str, ...] = ("InferenceService",)) -> None:
        """`parts`: the kinds that publish; the table is served once each has."""
        self.domain = domain
        # Version 0 = nothing published yet: a restarted control plane must not hand the
        # gateway an empty table (or part of one) before every reconciler's first pass has
        # seen the replicas it adopted.
        self.version = 0
        self._expected = frozenset(parts)
        self._services: list[ServiceDoc] = []
        self._parts: dict[str, list[ServiceDoc]] = {}
        self._tokens: list[TokenDoc] = []
        self._changed = asyncio.Event()

    def publish(self, services: list[ServiceDoc], part: str = "InferenceService") -> bool:
        """Replace the services of one part of the table (a kind's); True when that changed
        the table."""
        self._parts[part] = services
        if not self._expected <= self._parts.keys():
            return False
        every = [service for found in self._parts.values() for service in found]
        ordered = sorted(every, key=lambda s: (s["namespace"], s["name"]))
        if self.version and ordered == self._services:
            return False
        self._services = ordered
        self._bump()
        return True

    def set_tokens(self, grants: list[TokenDoc]) -> None:
        """Publish these token hashes with the table (before the first `publish`, they wait
        for it: a version must not go out before the services do)."""
        ordered = sorted(grants, key=lambda g: g["sha256"])
        if ordered != self._tokens:
            self._tokens = ordered
            if self.version:
                self._bump()

    def _bump(self) -> None:
        # From the clock, so a restarted control plane's versions never go backwards.
        self.version = max(self.version + 1, int(time.time() * 1000))
        self._changed.set()
        self._changed = asyncio.Event()

    def snapshot(self) -> RouteTableDoc:
        return {
            "version": self.version,
            "domain": self.domain,
            "services": self._services,
            "tokens": self._tokens,
        }

    async def wait_newer(self, after: int, timeout_s: float) -> RouteTableDoc | None:
        """The table once its version differs from `after`, or None after `timeout_s`."""
        if self.version and after != self.version:
            return self.snapshot()  # newer, or from before a control-plane restart
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return None
        return self.snapshot()

    def service(
        self, namespace: str, name: str, part: str = "InferenceService"
    ) -> ServiceDoc | None:
        """What `part` last published for `namespace/name`."""
        for service in self._parts.get(part, []):
            if service["namespace"] == namespace and service["name"] == name:
                return service
        return None
