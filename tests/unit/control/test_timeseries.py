"""The dashboard's in-memory series: rates and percentiles between two reads of the gateway."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.timeseries import Counts, SeriesBook, gateway_counts, percentile, point

# The gateway's labels that matter here (it also has response_code, revision_name, ...).
_IRIS = 'namespace_name="default",service_name="iris",response_code_class='
EXPOSITION = f"""\
# TYPE revision_request_count_total counter
revision_request_count_total{{{_IRIS}"2xx"}} 90.0
revision_request_count_total{{{_IRIS}"5xx"}} 10.0
revision_request_count_total{{namespace_name="team",service_name="bert"}} 5.0
# TYPE revision_request_latencies histogram
revision_request_latencies_bucket{{{_IRIS}"2xx",le="1.0"}} 50.0
revision_request_latencies_bucket{{{_IRIS}"2xx",le="10.0"}} 90.0
revision_request_latencies_bucket{{{_IRIS}"2xx",le="+Inf"}} 90.0
revision_request_latencies_bucket{{{_IRIS}"5xx",le="1.0"}} 0.0
revision_request_latencies_bucket{{{_IRIS}"5xx",le="10.0"}} 0.0
revision_request_latencies_bucket{{{_IRIS}"5xx",le="+Inf"}} 10.0
# TYPE ksrv_gateway_retries_total counter
ksrv_gateway_retries_total{{namespace_name="default",service_name="iris"}} 3.0
"""


def test_gateway_counts_sum_every_revision_and_code_of_a_service():
    counts = gateway_counts(EXPOSITION)
    assert set(counts) == {("default", "iris"), ("team", "bert")}
    iris = counts[("default", "iris")]
    assert (iris.requests, iris.errors) == (100.0, 10.0)
    assert iris.buckets == {1.0: 50.0, 10.0: 90.0, math.inf: 100.0}


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ({1.0: 50.0, 10.0: 90.0, math.inf: 100.0}, 0.5, 1.0),
        ({1.0: 50.0, 10.0: 90.0, math.inf: 100.0}, 0.7, 5.5),  # halfway through (1, 10]
        ({1.0: 50.0, 10.0: 90.0, math.inf: 100.0}, 0.99, 10.0),  # in +Inf: the last bound
        ({1.0: 0.0, 10.0: 0.0, math.inf: 0.0}, 0.5, None),  # nothing observed
        ({}, 0.5, None),
        ({2.0: 4.0, math.inf: 4.0}, 0.25, 0.5),  # the first bucket starts at 0
    ],
)
def test_percentile_interpolates_within_its_bucket_as_prometheus_does(buckets, q, expected):
    assert percentile(buckets, q) == expected


def test_a_point_is_the_difference_between_two_reads_per_second():
    before = Counts(100.0, 10.0, {1.0: 50.0, 10.0: 90.0, math.inf: 100.0})
    after = Counts(120.0, 14.0, {1.0: 50.0, 10.0: 110.0, math.inf: 120.0})
    found = point(1000.0, 2.0, before, after)
    assert found == {"t": 1000.0, "rps": 10.0, "errors": 2.0, "p50": 5.5, "p90": 9.1, "p99": 9.91}


def test_a_counter_that_went_down_is_a_restarted_gateway_counted_from_zero():
    before = Counts(500.0, 0.0, {math.inf: 500.0})
    after = Counts(8.0, 0.0, {1.0: 8.0, math.inf: 8.0})
    assert point(10.0, 2.0, before, after)["rps"] == 4.0


def test_no_requests_between_reads_is_zero_rate_and_no_latency():
    same = Counts(5.0, 0.0, {1.0: 5.0, math.inf: 5.0})
    assert point(10.0, 2.0, same, same) == {
        "t": 10.0, "rps": 0.0, "errors": 0.0, "p50": None, "p90": None, "p99": None
    }  # fmt: skip


class Replicas:
    """What a platform reports: revisions and their replicas' phases."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], RevisionState] = {}

    def run(self, isvc: str, revision: str, desired: int, phases: list[str]) -> None:
        spec = RevisionSpec("default", isvc, "predictor", revision, ["serve"], replicas=desired)
        replicas = [
            ReplicaState(i, 100 + i, 9000 + i, None, phase, 0, None, None, Path("log"), 0.0, "h")
            for i, phase in enumerate(phases)
        ]
        self.states[spec.key] = RevisionState(spec, replicas)

    def observe(self) -> dict[tuple[str, str], RevisionState]:
        return self.states


def test_series_book_keeps_replicas_and_rates_per_service_up_to_keep_points():
    replicas = Replicas()
    replicas.run("iris", "iris-predictor-00001", 2, ["Ready", "Starting"])
    replicas.run("iris", "iris-predictor-00002", 1, ["Ready"])
    book = SeriesBook(replicas, keep=3, interval_s=2.0)
    text = EXPOSITION
    for second in range(5):
        if second == 3:
            text = text.replace("} 90.0\n", "} 110.0\n", 1)  # 20 more 2xx, once
        book.sample(text, 100.0 + 2 * second)
    [iris, bert] = book.series()  # sorted by namespace, then name
    assert [p["t"] for p in iris["points"]] == [104.0, 106.0, 108.0]
    assert [p["rps"] for p in iris["points"]] == [0.0, 10.0, 0.0]
    assert (iris["points"][-1]["replicas"], iris["points"][-1]["ready"]) == (3, 2)
    assert bert["points"][-1]["replicas"] == 0  # counted by the gateway, runs nothing
    assert [s["name"] for s in book.series("team")] == ["bert"]
    assert [p["t"] for p in book.series(since=105.0)[1]["points"]] == [106.0, 108.0]


def test_an_unreadable_gateway_is_a_gap_in_the_rates_not_in_the_replicas():
    replicas = Replicas()
    replicas.run("iris", "iris-predictor-00001", 1, ["Ready"])
    book = SeriesBook(replicas)
    book.sample(None, 10.0)
    [last] = book.series()[0]["points"]
    assert (last["rps"], last["p50"], last["ready"]) == (None, None, 1)


def test_a_deleted_service_is_forgotten_once_its_history_is_older_than_kept():
    replicas = Replicas()
    replicas.run("iris", "iris-predictor-00001", 1, ["Ready"])
    book = SeriesBook(replicas, keep=2, interval_s=1.0)
    book.sample("", 10.0)
    replicas.states.clear()
    book.sample("", 11.0)
    assert [s["name"] for s in book.series()] == ["iris"]
    book.sample("", 13.0)
    assert book.series() == []
