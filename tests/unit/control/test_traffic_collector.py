"""control.traffic + protocol.traffic: the gateways' reports summed per revision and second."""

from __future__ import annotations

import pytest

from ksrv.control.autoscaler import Sample
from ksrv.control.traffic import HORIZON_S, TrafficCollector
from ksrv.errors import InvalidInput
from ksrv.protocol.traffic import parse_report

T = 1_700_000_000
R1 = "iris-predictor-00001"


def report(reporter: str, first: int, last: int, *samples: tuple[int, float, int], rev=R1):
    return {
        "reporter": reporter, "first": first, "last": last,
        "samples": [{"namespace": "ns", "revision": rev, "second": s, "concurrency": c,
                     "requests": r} for s, c, r in samples],
    }  # fmt: skip


def collector() -> TrafficCollector:
    return TrafficCollector(clock=lambda: T + 10)


def test_covered_seconds_without_a_sample_are_zeros():
    traffic = collector()
    traffic.record(report("g1", T, T + 2, (T + 1, 2.0, 5)))
    assert traffic.samples("ns", R1, T + 5.5, 60) == [
        Sample(T, 0.0, 0),
        Sample(T + 1, 2.0, 5),
        Sample(T + 2, 0.0, 0),
    ]
    assert traffic.samples("ns", "other", T + 5.5, 60) == [Sample(T + s, 0.0, 0) for s in range(3)]
    assert traffic.samples("other-ns", R1, T + 5.5, 2) == []  # outside the window: no data


def test_gateway_workers_are_summed():
    traffic = collector()
    traffic.record(report("g1", T, T, (T, 1.5, 3)))
    traffic.record(report("g2", T, T, (T, 0.5, 1)))
    assert traffic.samples("ns", R1, T + 0.5, 6) == [Sample(T, 2.0, 4)]


def test_a_resent_second_replaces_the_earlier_count():
    traffic = collector()
    traffic.record(report("g1", T, T, (T, 1.0, 2)))
    traffic.record(report("g1", T, T + 1, (T, 1.0, 2), (T + 1, 3.0, 1)))
    assert traffic.samples("ns", R1, T + 1.5, 6) == [Sample(T, 1.0, 2), Sample(T + 1, 3.0, 1)]
    assert traffic.reports == 2


def test_old_seconds_are_forgotten():
    traffic = TrafficCollector(clock=lambda: T + HORIZON_S + 5)
    traffic.record(report("g1", T, T, (T, 1.0, 2)))
    assert traffic.samples("ns", R1, T + 0.5, 6) == []


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([], "JSON object"),
        ({"first": 1, "last": 2, "samples": []}, "report.reporter"),
        ({"reporter": "g", "first": 3, "last": 2, "samples": []}, "not a range"),
        ({"reporter": "g", "first": 0, "last": 5000, "samples": []}, "not a range"),
        (report("g", T, T, (T + 1, 1.0, 1)), "outside"),
        (report("g", T, T, (T, -1.0, 1)), "negative"),
        ({"reporter": "g", "first": T, "last": T, "samples": [3]}, r"samples\[0\] must be"),
        ({"reporter": "g", "first": T, "last": T, "samples": [{"namespace": "ns"}]},
         r"samples\[0\]\.revision"),
        ({"reporter": "g", "first": True, "last": T, "samples": []}, "report.first"),
    ],
)  # fmt: skip
def test_malformed_reports_are_refused_with_the_field(document, words):
    with pytest.raises(InvalidInput, match=words):
        collector().record(document)


def test_integer_concurrency_is_read_as_a_float():
    parsed = parse_report(report("g", T, T, (T, 2, 1)))
    assert parsed["samples"][0]["concurrency"] == 2.0
