"""Revision records in the store, and stopping the revisions nothing routes to any more.

A component gets a new revision, `{isvc}-{component}-{n:05d}`, whenever what its replicas run
changes (the plan's fingerprint together with the platform's rendering of it). Records live in
the store (kind `Revision`; the management API serves them, read-only, through
`revision_view`), so a restarted control plane knows which running revisions are whose. A
revision that left the route table is drained `UNROUTED_GRACE_S` later (the gateway has pulled
the new table by then), beside the passes, and its record is forgotten. An InferenceGraph's
router revisions (component `ROUTER`, `graph_reconciler`) have no records, and each
reconciler's `Collector` stops only the revisions it owns.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from ksrv.control import api_paths
from ksrv.control.platforms.base import Platform, RevisionKey, RevisionSpec
from ksrv.control.store import Store

logger = logging.getLogger(__name__)

REVISION: Final = "Revision"
UNROUTED_GRACE_S: Final = 2.0
ROUTER: Final = "router"
"""The component of an InferenceGraph's router revisions (`{graph}-router-{n:05d}`); no
InferenceService component or canary set has this name."""

Record = dict[str, Any]


def fingerprint(plan_fingerprint: str, rendered_fingerprint: str) -> str:
    """A revision's identity: the neutral plan and what this platform made of it."""
    return hashlib.sha256(f"{plan_fingerprint}/{rendered_fingerprint}".encode()).hexdigest()[:16]


class RevisionRecords:
    """The store's `Revision` records of every component."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def of_component(self, namespace: str, isvc: str, component: str) -> list[Record]:
        """The component's revisions, oldest first."""
        revisions = [
            revision
            for revision in self.store.list(REVISION, namespace)
            if revision["spec"]["isvc"] == isvc and revision["spec"]["component"] == component
        ]
        return sorted(revisions, key=lambda revision: revision["spec"]["number"])

    def of_service(self, namespace: str, isvc: str) -> set[RevisionKey]:
        return {
            (namespace, revision["metadata"]["name"])
            for revision in self.store.list(REVISION, namespace)
            if revision["spec"]["isvc"] == isvc
        }

    def latest(
        self,
        namespace: str,
        isvc: str,
        component: str,
        identity: str,
        running: Iterable[str],
    ) -> Record:
        """The revision running `identity`: the newest one if it matches, else a new one.

        `running` names the component's revisions the platform still runs: a deleted and
        re-created service's old revision may still be draining, and its name is not reused.
        """
        revisions = self.of_component(namespace, isvc, component)
        if revisions and revisions[-1]["spec"]["fingerprint"] == identity:
            return revisions[-1]
        numbers = [number(name) for name in running]
        newest = max([0, *numbers, *(r["spec"]["number"] for r in revisions)]) + 1
        return self.store.create(
            {
                # Records written before ksrv's group was `ksrv.dev` say `ksrv.io/v1`: nothing
                # reads a record's apiVersion, so they load (and are served) as they are.
                "apiVersion": api_paths.REVISION.api_version,
                "kind": REVISION,
                "metadata": {"name": f"{isvc}-{component}-{newest:05d}", "namespace": namespace},
                "spec": {
                    "isvc": isvc,
                    "component": component,
                    "number": newest,
                    "fingerprint": identity,
                },
            }
        )

    def forget_except(self, wanted: set[RevisionKey]) -> None:
        for revision in self.store.list(REVISION):
            metadata = revision["metadata"]
            key = (metadata.get("namespace") or "default", metadata["name"])
            if key not in wanted:
                self.store.delete(REVISION, key[0], key[1])


def is_router(spec: RevisionSpec) -> bool:
    """An InferenceGraph's router revision (else an InferenceService component's)."""
    return spec.component == ROUTER


def is_service_revision(spec: RevisionSpec) -> bool:
    return not is_router(spec)


class Collector:
    """Stops the platform's revisions it `owns` that stayed out of the wanted set for the
    grace period."""

    def __init__(
        self,
        platform: Platform,
        on_removed: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
        owns: Callable[[RevisionSpec], bool] = is_service_revision,
    ) -> None:
        self.platform = platform
        self.on_removed = on_removed
        self.monotonic = monotonic
        self.owns = owns
        self._unrouted_since: dict[RevisionKey, float] = {}
        self._draining: dict[RevisionKey, asyncio.Task[None]] = {}

    def collect(self, wanted: set[RevisionKey]) -> None:
        """Start draining, in the background, what has been unwanted long enough."""
        now = self.monotonic()
        for key in list(self._unrouted_since):
            if key in wanted:
                del self._unrouted_since[key]
        for key, state in self.platform.observe().items():
            if key in wanted or key in self._draining or not self.owns(state.spec):
                continue
            since = self._unrouted_since.setdefault(key, now)
            if now - since >= UNROUTED_GRACE_S:
                del self._unrouted_since[key]
                logger.info("stopping revision %s/%s", *key)
                task = asyncio.get_running_loop().create_task(self._remove(key))
                self._draining[key] = task

    async def _remove(self, key: RevisionKey) -> None:
        try:
            await self.platform.remove(*key)
        finally:
            self._draining.pop(key, None)
            self.on_removed()


def number(revision: str) -> int:
    """The `n` of `{isvc}-{component}-{n:05d}` (0 for another name)."""
    suffix = revision.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
