"""The reconcile loop: the store's change feed, platform nudges and a resync, dispatched by kind.

Each kind has its own reconciler (`KindReconciler`): InferenceService's runs revisions
(`isvc_reconciler`), InferenceGraph's runs routers (`graph_reconciler`), TrainedModel's the
multi-model services' models (`trained_models`); ClusterStorageContainer only says why it is
not served locally (`NotServedReconciler`). The loop follows `Store.changes_since`: a change of
a kind a reconciler watches gives it a pass; a replica phase change (`nudge`) gives one to
those that follow the platform; and every `RESYNC_S` each gets a pass anyway, so a missed
change or a timer (draining an unrouted revision) costs at most a resync. Passes run one at a
time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from ksrv.control.metrics import ControlMetrics
from ksrv.control.service_status import mapping, not_supported_status
from ksrv.control.store import Store

logger = logging.getLogger(__name__)

RESYNC_S: Final = 1.0


class KindReconciler(Protocol):
    """Reconciles every resource of its kind in one pass."""

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds whose changes call for a pass."""

    @property
    def follows_platform(self) -> bool:
        """True when a replica phase change calls for a pass."""

    async def reconcile_all(self) -> None: ...


class NotServedReconciler:
    """A kind the local platform stores but does not serve yet: its status says so."""

    follows_platform: Final = False

    def __init__(
        self, store: Store, kind: str, what: str, now: Callable[[], float], message: str = ""
    ) -> None:
        self.store = store
        self.kind = kind
        self.what = what
        self.now = now
        self.message = message

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    async def reconcile_all(self) -> None:
        for document in self.store.list(self.kind):
            metadata = document["metadata"]
            old = mapping(document.get("status"))
            generation = metadata.get("generation")
            status = not_supported_status(generation, self.what, old, self.now(), self.message)
            if status != old:
                namespace = metadata.get("namespace") or ""
                self.store.update_status(self.kind, namespace, metadata["name"], status)


# A ClusterStorageContainer names a container image; the local platform runs no containers.
STORAGE_CONTAINER_MESSAGE: Final = (
    "the local platform has no container engine, so it cannot run this storage container; "
    "it downloads every storageUri with ksrv's own storage layer (the s3, gs, hf, http(s), "
    "Azure blob, pvc and local schemes). The resource is stored as applied: on Kubernetes "
    "(`ksrv k8s render`, the operator) it supplies the storage-initializer of the URIs it matches"
)


def not_served_reconcilers(store: Store, now: Callable[[], float]) -> list[NotServedReconciler]:
    """ClusterStorageContainer, which needs a container engine."""
    return [
        NotServedReconciler(store, "ClusterStorageContainer", "a storage container", now,
                            STORAGE_CONTAINER_MESSAGE),
    ]  # fmt: skip


class Reconciler:
    """Runs each kind's reconciler when its resources change, when nudged, and on resync."""

    def __init__(
        self,
        store: Store,
        reconcilers: Sequence[KindReconciler],
        *,
        resync_s: float = RESYNC_S,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: ControlMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else ControlMetrics()
        self.reconcilers = list(reconcilers)
        self.resync_s = resync_s
        self.monotonic = monotonic
        self._version = 0
        self._last_resync: float | None = None
        self._wake = asyncio.Event()
        self._is_stopped = False

    def nudge(self) -> None:
        """Ask for a pass soon: a replica changed phase."""
        self._wake.set()

    def stop(self) -> None:
        """End `run` after the current pass (the drain must not race a pass)."""
        self._is_stopped = True
        self._wake.set()

    def due(self) -> list[KindReconciler]:
        """The reconcilers that need a pass now, in their order; consumes the feed and nudge."""
        changes, self._version = self.store.changes_since(self._version)
        changed = {change.kind for change in changes}
        is_nudged = self._wake.is_set()
        self._wake.clear()
        now = self.monotonic()
        if self._last_resync is None or now - self._last_resync >= self.resync_s:
            self._last_resync = now
            return list(self.reconcilers)
        return [
            reconciler
            for reconciler in self.reconcilers
            if changed & set(reconciler.kinds) or (is_nudged and reconciler.follows_platform)
        ]

    async def run(self) -> None:
        """Reconcile until `stop`; a failing pass is logged and retried on the next resync."""
        while not self._is_stopped:
            for reconciler in self.due():
                try:
                    with self.metrics.timed_pass(reconciler.kinds):
                        await reconciler.reconcile_all()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("%s pass failed", type(reconciler).__name__)
                if self._is_stopped:
                    return
            await self._wait()

    async def _wait(self) -> None:
        """Until the store changes, a nudge, or the next resync is due."""
        assert self._last_resync is not None
        timeout_s = max(0.0, self._last_resync + self.resync_s - self.monotonic())
        waiters: list[asyncio.Task[Any]] = [
            asyncio.ensure_future(self.store.wait_for_change(self._version, timeout_s)),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
