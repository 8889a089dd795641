"""gateway.traffic: requests in flight and arrivals per revision, per second, on a fake clock."""

from __future__ import annotations

import random

import pytest

from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import parse_table
from ksrv.gateway.traffic import TrafficCounter, TrafficReporter, traffic_url

T0 = 1_700_000_000.0
R1, R2 = "iris-predictor-00001", "iris-predictor-00002"
TABLE = parse_table({
    "version": 1, "domain": "example.com",
    "services": [{
        "namespace": "ns", "name": "iris", "timeout_s": 60.0, "entry": "predictor",
        "components": {"predictor": {"backends": [
            {"revision": R1, "percent": 100, "replicas": [{"http": "127.0.0.1:1", "grpc": ""}]},
            {"revision": R2, "percent": 0, "replicas": [{"http": "127.0.0.1:2", "grpc": ""}]},
        ]}},
    }],
})  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def routed(revision: str | None) -> Call:
    """A call as the dispatcher leaves it: matched, and sent to `revision` (None: held)."""
    call = Call("rest", "", b"/serving/ns/iris/v1/models/iris:predict", {}, None)
    call.match = TABLE.match("", call.target)
    assert call.match is not None
    if revision is not None:
        call.backend = next(b for b in call.match.component.backends if b.revision == revision)
    return call


def by_revision(samples) -> dict[str, tuple[float, int]]:
    assert {s["namespace"] for s in samples} <= {"ns"}
    return {s["revision"]: (s["concurrency"], s["requests"]) for s in samples}


def test_in_flight_is_averaged_over_the_second_and_arrivals_counted():
    clock = Clock()
    counter = TrafficCounter(clock)
    first, second = routed(R1), routed(R1)
    counter.on_request(first)
    counter.on_request(second)
    clock.now += 0.5
    counter.on_response(first, None)  # 0.5 s in flight
    clock.now += 0.5
    closed, samples = counter.sample()  # the second still in flight: 1 s so far
    assert closed == int(T0) + 1  # named by the second it ended at
    assert by_revision(samples) == {R1: (1.5, 2)}
    clock.now += 1.0
    counter.on_response(second, None)
    _, samples = counter.sample()
    # Still in flight the whole next second; its arrival was already counted.
    assert by_revision(samples) == {R1: (1.0, 0)}
    clock.now += 1.0
    assert counter.sample() == (int(T0) + 3, [])


def test_revisions_are_counted_apart():
    clock = Clock()
    counter = TrafficCounter(clock)
    calls = [routed(R1), routed(R2), routed(R2)]
    for call in calls:
        counter.on_request(call)
    clock.now += 0.25
    for call in calls:
        counter.on_response(call, RuntimeError("an error still counts as load"))
    clock.now += 0.75
    _, samples = counter.sample()
    assert by_revision(samples) == {R1: (0.25, 1), R2: (0.5, 2)}


def test_a_held_request_counts_only_once_it_has_a_revision():
    clock = Clock()
    counter = TrafficCounter(clock)
    call = routed(None)
    counter.on_request(call)
    clock.now += 1.0
    assert counter.sample()[1] == []  # held a whole second: nobody's load
    clock.now += 0.5
    call.backend = routed(R1).backend  # a replica came; it was sent
    clock.now += 0.25
    counter.on_response(call, None)
    clock.now += 0.25
    _, samples = counter.sample()
    assert by_revision(samples) == {R1: (0.75, 1)}
    assert counter.in_flight == 0


def test_a_rejected_request_without_a_revision_leaves_no_trace():
    clock = Clock()
    counter = TrafficCounter(clock)
    call = routed(None)
    counter.on_request(call)
    counter.on_response(call, PermissionError("rejected"))
    clock.now += 1.0
    assert counter.sample()[1] == []
    counter.on_response(call, None)  # a second outcome for the same call is ignored


def test_a_late_or_early_sampler_still_names_the_second_that_ended():
    clock = Clock()
    counter = TrafficCounter(clock)
    clock.now = T0 + 1.6  # late: the span [T0, T0 + 1.6) is mostly the second ending at T0 + 1
    assert counter.sample()[0] == int(T0) + 1
    clock.now = T0 + 1.999  # early for the next boundary
    assert counter.sample()[0] == int(T0) + 2
    clock.now = T0 + 2.1  # a short span is still a second of its own
    assert counter.sample()[0] == int(T0) + 3


def test_the_reporter_sends_every_pending_second_as_one_report():
    counter = TrafficCounter(Clock())
    reporter = TrafficReporter("http://127.0.0.1:9/ksrv/v1/traffic", counter, "gateway-7")
    reporter.pending.append((100, [{"namespace": "ns", "revision": R1, "second": 100,
                                    "concurrency": 1.0, "requests": 3}]))  # fmt: skip
    reporter.pending.append((101, []))
    assert reporter.report() == {
        "reporter": "gateway-7", "first": 100, "last": 101,
        "samples": [{"namespace": "ns", "revision": R1, "second": 100, "concurrency": 1.0,
                     "requests": 3}],
    }  # fmt: skip
    reporter.close()


def test_the_traffic_url_sits_beside_the_routes_url():
    assert traffic_url("http://127.0.0.1:8090/ksrv/v1/routes") == (
        "http://127.0.0.1:8090/ksrv/v1/traffic"
    )
    with pytest.raises(ValueError, match=r"http\(s\)://host:port"):
        TrafficReporter("unix:///x", TrafficCounter())


def test_choose_is_untouched_by_counting():
    # The counter only reads what the dispatcher chose.
    call = routed(None)
    assert call.match is not None
    assert call.match.component.choose(random.Random(1)).revision == R1
