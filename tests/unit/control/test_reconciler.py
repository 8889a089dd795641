"""Reconciler: which kind's reconciler runs, from the change feed, nudges and the resync."""

from __future__ import annotations

import asyncio

import pytest

from ksrv.control.reconciler import Reconciler, not_served_reconcilers
from ksrv.control.store import Store


class Recorder:
    """A kind reconciler that records its passes."""

    def __init__(self, kinds: tuple[str, ...], follows_platform: bool) -> None:
        self.kinds = kinds
        self.follows_platform = follows_platform
        self.passes = 0
        self.passed = asyncio.Event()

    async def reconcile_all(self) -> None:
        self.passes += 1
        self.passed.set()

    async def wait_for_passes(self, count: int) -> None:
        while self.passes < count:
            self.passed.clear()
            await self.passed.wait()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "ksrv.db")
    yield store
    store.close()


def isvc(name: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}},
    }


def graph(name: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": []}}},
    }


def setup(store):
    clock = Clock()
    services = Recorder(("InferenceService", "ServingRuntime"), follows_platform=True)
    graphs = Recorder(("InferenceGraph",), follows_platform=False)
    return Reconciler(store, [services, graphs], monotonic=clock), services, graphs, clock


def test_the_first_pass_is_a_resync_of_every_kind(store):
    reconciler, services, graphs, _ = setup(store)
    assert reconciler.due() == [services, graphs]
    assert reconciler.due() == []


def test_a_change_gives_a_pass_only_to_the_kinds_that_watch_it(store):
    reconciler, services, graphs, _ = setup(store)
    reconciler.due()
    store.create(isvc("a"))
    assert reconciler.due() == [services]
    store.create(graph("g"))
    assert reconciler.due() == [graphs]
    store.create({"apiVersion": "ksrv.io/v1", "kind": "Revision",
                  "metadata": {"name": "r", "namespace": "default"}, "spec": {}})  # fmt: skip
    assert reconciler.due() == []


def test_a_nudge_gives_a_pass_to_those_that_follow_the_platform(store):
    reconciler, services, _, _ = setup(store)
    reconciler.due()
    reconciler.nudge()
    assert reconciler.due() == [services]
    assert reconciler.due() == []


def test_the_resync_gives_every_kind_a_pass(store):
    reconciler, services, graphs, clock = setup(store)
    reconciler.due()
    clock.now = 0.5
    assert reconciler.due() == []
    clock.now = 1.0
    assert reconciler.due() == [services, graphs]


def test_run_passes_until_stopped(store):
    reconciler, services, graphs, _ = setup(store)

    async def main() -> None:
        task = asyncio.create_task(reconciler.run())
        await services.wait_for_passes(1)
        store.create(isvc("a"))
        await services.wait_for_passes(2)
        reconciler.stop()
        await task

    asyncio.run(asyncio.wait_for(main(), 10))
    assert (services.passes, graphs.passes) == (2, 1)


def test_not_served_kinds_say_so_in_their_status(store):
    store.create({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterStorageContainer",
        "metadata": {"name": "init"},
        "spec": {"container": {"name": "storage-initializer", "image": "example.com/init:1"},
                 "supportedUriFormats": [{"prefix": "s3://"}]},
    })  # fmt: skip
    [containers] = not_served_reconcilers(store, lambda: 0.0)
    asyncio.run(containers.reconcile_all())
    status = store.get("ClusterStorageContainer", "", "init")["status"]
    assert status["conditions"][0]["reason"] == "NotSupportedLocally"
    assert status["conditions"][0]["lastTransitionTime"] == "1970-01-01T00:00:00Z"
    version = store.changes_since(0)[1]
    asyncio.run(containers.reconcile_all())
    assert store.changes_since(0)[1] == version  # an unchanged status is not written again
