"""Shadow traffic on the control plane's side: the annotation read into the plan, the split
it implies, and the gateways' copy counts carried by the traffic report and summed."""

from __future__ import annotations

from typing import Any

import pytest

from ksrv.control import isvc_reconciler, plan, rollout
from ksrv.control.traffic import TrafficCollector
from ksrv.errors import InvalidInput
from ksrv.protocol.traffic import parse_report
from tests.unit.control.test_plan import desired

T = 1_700_000_000
MODEL = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}
KNATIVE = {"serving.kserve.io/deploymentMode": "Serverless"}


def predictor(service: dict[str, str], **component: Any) -> plan.ComponentPlan:
    """The predictor's plan, with `service` as the InferenceService's annotations."""
    spec = {"predictor": {**MODEL, **component}}
    return desired(spec, annotations={**KNATIVE, **service}).components["predictor"]


@pytest.mark.parametrize(
    ("value", "percent"), [("50", 50.0), ("100", 100.0), ("0.5", 0.5), (" 7 ", 7.0)]
)
def test_the_annotation_sets_the_shadow_percent(value, percent):
    found = predictor({"ksrv.dev/shadow-percent": value})
    assert (found.shadow_percent, found.error) == (percent, None)


def test_on_the_component_it_overrides_the_service():
    found = predictor(
        {"ksrv.dev/shadow-percent": "10"}, annotations={"ksrv.dev/shadow-percent": "30"}
    )
    assert found.shadow_percent == 30.0
    assert predictor({}).shadow_percent is None


@pytest.mark.parametrize("value", ["0", "-5", "101", "half", "nan", ""])
def test_a_bad_value_is_an_invalid_spec_naming_the_annotation(value):
    found = predictor({"ksrv.dev/shadow-percent": value})
    assert found.error_reason == "InvalidSpec"
    assert found.error is not None
    assert 'metadata.annotations["ksrv.dev/shadow-percent"]' in found.error


def test_the_shadow_does_not_change_the_revision():
    assert predictor({"ksrv.dev/shadow-percent": "50"}).fingerprint == predictor({}).fingerprint


@pytest.mark.parametrize(
    ("shadow", "canary", "split"),
    [
        (None, None, [("v2", 100)]),  # no annotation: the ready latest is promoted
        (50.0, None, [("v2", 0), ("v1", 100)]),  # shadow alone: 0% of real traffic
        (50.0, 20, [("v2", 20), ("v1", 80)]),  # with a canary: both apply
        (50.0, 100, [("v2", 100)]),
    ],
)
def test_the_split_with_a_shadow(shadow, canary, split):
    component = plan.ComponentPlan("predictor", canary_percent=canary, shadow_percent=shadow)
    decided = rollout.rollout(
        ["v1", "v2"], "v2", {"v1", "v2"}, "v1", None, isvc_reconciler._canary_percent(component)
    )
    assert [(t.revision, t.percent) for t in decided.traffic] == split


def _report(reporter: str, *counts: tuple[str, int, int, int]) -> dict[str, Any]:
    return {
        "reporter": reporter, "first": T, "last": T, "samples": [],
        "shadow": [{"namespace": "ns", "revision": rev, "sent": s, "errors": e, "skipped": k}
                   for rev, s, e, k in counts],
    }  # fmt: skip


def test_reports_replace_their_reporters_last_counts_and_gateways_are_summed():
    traffic = TrafficCollector(clock=lambda: T + 1)
    traffic.record(_report("g1", ("r2", 10, 1, 0)))
    traffic.record(_report("g1", ("r2", 12, 1, 2)))  # cumulative: replaces, never adds
    traffic.record(_report("g2", ("r2", 5, 0, 0)))
    assert traffic.shadow_counts("ns", "r2") == (17, 1, 2)
    assert traffic.shadow_counts("ns", "other") == (0, 0, 0)
    old = {"reporter": "g3", "first": T, "last": T, "samples": []}
    traffic.record(old)  # an older gateway's report, without `shadow`, still parses
    assert traffic.shadow_counts("ns", "r2") == (17, 1, 2)


@pytest.mark.parametrize(
    "shadow",
    [
        "x",
        [1],
        [{"namespace": "ns", "revision": "r", "sent": 1, "errors": 0}],
        [{"namespace": "ns", "revision": "r", "sent": -1, "errors": 0, "skipped": 0}],
        [{"namespace": "ns", "revision": "r", "sent": True, "errors": 0, "skipped": 0}],
    ],
)
def test_a_malformed_shadow_count_is_refused(shadow):
    with pytest.raises(InvalidInput, match=r"shadow|report"):
        parse_report({"reporter": "g", "first": T, "last": T, "samples": [], "shadow": shadow})
