"""Metrics shared across forked workers: a scrape in any process sums every worker's values,
a dead worker's requests in flight are forgotten, and the directory goes with the server."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from ksrv.telemetry import metrics as telemetry


def values(text: bytes) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def forked(work) -> int:
    """Run `work()` in a forked worker that exits at once; its pid once it has."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_workers_are_summed_and_a_dead_worker_leaves_no_request_in_flight():
    with telemetry.shared_across_workers("ksrv-test-") as path:
        registry = telemetry.registry()
        answered = Counter("answered", "Requests answered", registry=registry)
        in_flight = Gauge("in_flight", "In flight", multiprocess_mode="livesum", registry=registry)

        def worker() -> None:
            answered.inc(3)
            in_flight.inc()  # it dies with a request in flight

        dead = forked(worker)
        answered.inc(2)
        assert values(telemetry.exposition_text(registry)) == {
            "answered_total": 5.0, "in_flight": 1.0,
        }  # fmt: skip
        telemetry.worker_exited(dead)
        assert values(telemetry.exposition_text(registry)) == {
            "answered_total": 5.0, "in_flight": 0.0,
        }  # fmt: skip
    assert not Path(path).exists()
    assert telemetry.shared_directory() is None
    # Outside, metrics are this process's own again.
    alone = telemetry.registry()
    Counter("answered", "Requests answered", registry=alone).inc()
    assert values(telemetry.exposition_text(alone))["answered_total"] == 1.0
