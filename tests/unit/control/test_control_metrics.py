"""Control plane metrics: reconcile passes by kind, replicas per revision read at scrape time,
and the scrape targets handed to Prometheus's HTTP service discovery."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ksrv.control.metrics import ControlMetrics, scrape_targets
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.reconciler import Reconciler
from ksrv.control.store import Store


def replica(index: int, phase: str, port: int | None = 1000, pid: int | None = 7) -> ReplicaState:
    return ReplicaState(index, pid, port, None, phase, 0, None, None, Path("/log"), 0.0,
                        "127.0.0.1")  # fmt: skip


class Platform:
    """What the platform observes: one revision of iris, two replicas wanted, one Ready."""

    def observe(self) -> dict:
        spec = RevisionSpec("ns", "iris", "predictor", "iris-predictor-00001", ("x",), replicas=2)
        replicas = [replica(0, "Ready", 1001), replica(1, "Starting", None, None)]
        return {spec.key: RevisionState(spec, replicas)}


def samples(metrics: ControlMetrics) -> dict[tuple[str, frozenset], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_replicas_per_revision_are_read_from_the_platform_at_each_scrape():
    found = samples(ControlMetrics(Platform()))
    labels = frozenset({"namespace_name": "ns", "service_name": "iris",
                        "configuration_name": "iris-predictor",
                        "revision_name": "iris-predictor-00001"}.items())  # fmt: skip
    assert found[("ksrv_revision_desired_replicas", labels)] == 2
    assert found[("ksrv_revision_ready_replicas", labels)] == 1


def test_reconcile_passes_are_timed_and_failed_ones_counted_by_kind(tmp_path):
    class Failing:
        kinds = ("InferenceService",)
        follows_platform = False
        passes = 0
        failed = asyncio.Event()

        async def reconcile_all(self) -> None:
            self.passes += 1
            self.failed.set()
            raise RuntimeError("broken")

    metrics = ControlMetrics()
    store = Store(tmp_path / "ksrv.db")
    failing = Failing()
    reconciler = Reconciler(store, [failing], metrics=metrics)

    async def main() -> None:
        task = asyncio.create_task(reconciler.run())
        await failing.failed.wait()
        reconciler.stop()
        await task

    try:
        asyncio.run(asyncio.wait_for(main(), 10))
    finally:
        store.close()
    kind = frozenset({"kind": "InferenceService"}.items())
    found = samples(metrics)
    assert found[("ksrv_reconcile_errors_total", kind)] == failing.passes
    assert found[("ksrv_reconcile_duration_seconds_count", kind)] == failing.passes


def test_scrape_targets_name_the_gateway_the_api_and_each_running_replica():
    groups = scrape_targets(Platform(), "0.0.0.0:8080", "127.0.0.1:8090")
    assert groups == [
        {"targets": ["127.0.0.1:8080"], "labels": {"ksrv_role": "gateway"}},
        {"targets": ["127.0.0.1:8090"], "labels": {"ksrv_role": "control-plane"}},
        {
            "targets": ["127.0.0.1:1001"],
            "labels": {"ksrv_role": "model-server", "namespace": "ns", "inferenceservice": "iris",
                       "component": "predictor", "revision": "iris-predictor-00001"},
        },
    ]  # fmt: skip


class GraphPlatform:
    """One InferenceGraph's router revision, one replica Ready."""

    def observe(self) -> dict:
        spec = RevisionSpec("ns", "dag", "router", "dag-router-00001", ("x",), replicas=1)
        return {spec.key: RevisionState(spec, [replica(0, "Ready", 1002)])}


def test_scrape_targets_name_a_graphs_router_replicas_as_routers():
    groups = scrape_targets(GraphPlatform(), "127.0.0.1:8080", "127.0.0.1:8090")
    assert groups[2] == {
        "targets": ["127.0.0.1:1002"],
        "labels": {"ksrv_role": "router", "namespace": "ns", "inferencegraph": "dag",
                   "component": "router", "revision": "dag-router-00001"},
    }  # fmt: skip
