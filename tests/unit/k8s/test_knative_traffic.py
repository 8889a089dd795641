"""Knative canary traffic (§5.6), from KServe's ksvc_reconciler.go: with canaryTrafficPercent P
and a rolled-out revision, P% to the latest revision and the rest to the rolled-out one."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ksrv.k8s import knative, knative_status, render
from ksrv.k8s.config import ClusterConfig
from tests.k8s_support import assert_valid

LATEST_ALL = {"latestRevision": True, "percent": 100}


def prev(revision: str, percent: int) -> dict[str, Any]:
    return {"revisionName": revision, "latestRevision": False, "percent": percent, "tag": "prev"}


@pytest.mark.parametrize(
    ("percent", "rolled_out", "is_tag_routing", "expected"),
    [
        # No canary: blue-green, everything to the latest revision.
        (None, None, False, [LATEST_ALL]),
        (None, "iris-predictor-00001", False, [LATEST_ALL]),
        # A canary before any revision has rolled out: nothing to split with yet.
        (20, None, False, [LATEST_ALL]),
        (20, "", False, [LATEST_ALL]),
        # P=20 with a rolled-out revision: 20 / 80; prev is tagged even without tag routing.
        (20, "iris-predictor-00001", False,
         [{"latestRevision": True, "percent": 20}, prev("iris-predictor-00001", 80)]),
        (20, "iris-predictor-00001", True,
         [{"latestRevision": True, "percent": 20, "tag": "latest"},
          prev("iris-predictor-00001", 80)]),
        # P=0: rollback, all traffic back on the rolled-out revision.
        (0, "iris-predictor-00002", False,
         [{"latestRevision": True, "percent": 0}, prev("iris-predictor-00002", 100)]),
        # P=100: promoted, no prev target.
        (100, "iris-predictor-00001", False, [LATEST_ALL]),
        (100, "iris-predictor-00001", True, [{**LATEST_ALL, "tag": "latest"}]),
        (None, None, True, [{**LATEST_ALL, "tag": "latest"}]),
    ],
)  # fmt: skip
def test_traffic_table(percent, rolled_out, is_tag_routing, expected):
    assert knative.traffic(percent, rolled_out, is_tag_routing=is_tag_routing) == expected


def rendered_traffic(
    percent: int | None, status: dict[str, Any] | None, annotations: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    predictor: dict[str, Any] = {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris-v2"}
    }
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    document: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "annotations": annotations or {}},
        "spec": {"predictor": predictor},
    }
    if status is not None:
        document["status"] = copy.deepcopy(status)
    result = render.render_documents([document], ClusterConfig(), "Knative")
    assert not result.problems
    assert_valid(result.objects)
    ksvc = next(o for o in result.objects if o["metadata"]["name"] == "iris-predictor")
    return ksvc["spec"]["traffic"]


ROLLED_OUT = {
    "components": {
        "predictor": {
            "latestRolledoutRevision": "iris-predictor-00001",
            "latestReadyRevision": "iris-predictor-00001",
        }
    }
}


def test_the_rolled_out_revision_is_read_from_the_inference_services_status():
    assert rendered_traffic(20, ROLLED_OUT) == [
        {"latestRevision": True, "percent": 20},
        prev("iris-predictor-00001", 80),
    ]


def test_a_first_rollout_with_a_canary_percent_sends_everything_to_the_latest():
    assert rendered_traffic(20, None) == [LATEST_ALL]


def test_promotion_by_dropping_the_percent_sends_everything_to_the_latest():
    assert rendered_traffic(None, ROLLED_OUT) == [LATEST_ALL]


def test_tag_routing_annotation_tags_the_latest_revision():
    traffic = rendered_traffic(10, ROLLED_OUT, {"serving.kserve.io/enable-tag-routing": "true"})
    assert traffic == [
        {"latestRevision": True, "percent": 10, "tag": "latest"},
        prev("iris-predictor-00001", 90),
    ]


def test_tag_routing_other_than_true_does_not_tag():
    traffic = rendered_traffic(10, ROLLED_OUT, {"serving.kserve.io/enable-tag-routing": "True"})
    assert traffic[0] == {"latestRevision": True, "percent": 10}


def observed(created: str, ready: str, traffic: list[dict[str, Any]]) -> dict[str, Any]:
    """A Knative Service's status, as Knative writes it (traffic with concrete revisions)."""
    return {
        "latestCreatedRevisionName": created,
        "latestReadyRevisionName": ready,
        "traffic": traffic,
        "url": "http://iris-predictor.default.example.com",
        "address": {"url": "http://iris-predictor.default.svc.cluster.local"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }


def rev(n: int) -> str:
    return f"iris-predictor-{n:05d}"


def served(n: int, percent: int, *, is_latest: bool = True) -> dict[str, Any]:
    """One traffic target of a Knative Service's status."""
    target = {"revisionName": rev(n), "latestRevision": is_latest, "percent": percent}
    return target if is_latest else {**target, "tag": "prev"}


def canary(percent: int, rolled_out: int) -> list[dict[str, Any]]:
    """The traffic KServe renders for a canary of `percent` over revision `rolled_out`."""
    return [{"latestRevision": True, "percent": percent}, prev(rev(rolled_out), 100 - percent)]


def observe(status: dict[str, Any] | None, latest: int, *targets: dict[str, Any]) -> dict:
    """The component's recorded status after Knative reports `targets` for revision `latest`."""
    ksvc = observed(rev(latest), rev(latest), list(targets))
    return knative_status.component_status(status, ksvc)


def test_a_canary_rollout_promotion_and_rollback_through_the_recorded_status():
    # 1. First rollout: all traffic to revision 1, which is then recorded as rolled out.
    assert rendered_traffic(None, None) == [LATEST_ALL]
    status = observe(None, 1, served(1, 100))
    assert status["latestRolledoutRevision"] == rev(1)
    assert status["url"] == "http://iris-predictor.default.example.com"

    # 2. A new spec with canaryTrafficPercent 20: revision 2 gets 20%, revision 1 keeps 80%.
    assert rendered_traffic(20, {"components": {"predictor": status}}) == canary(20, 1)
    status = observe(status, 2, served(2, 20), served(1, 80, is_latest=False))
    assert status["latestRolledoutRevision"] == rev(1)  # not fully rolled out yet

    # 3. Promotion (the percent dropped): revision 2 takes everything and is recorded.
    assert rendered_traffic(None, {"components": {"predictor": status}}) == [LATEST_ALL]
    status = observe(status, 2, served(2, 100))
    assert status["latestRolledoutRevision"] == rev(2)
    assert status["previousRolledoutRevision"] == rev(1)

    # 4. Splitting again without a new revision rolls the record back to revision 1.
    assert rendered_traffic(20, {"components": {"predictor": status}}) == canary(20, 2)
    status = observe(status, 2, served(2, 20), served(2, 80, is_latest=False))
    assert status["latestRolledoutRevision"] == rev(1)
    assert rendered_traffic(20, {"components": {"predictor": status}}) == canary(20, 1)

    # 5. Rollback with canaryTrafficPercent 0: everything back on the rolled-out revision.
    assert rendered_traffic(0, {"components": {"predictor": status}}) == canary(0, 1)


def test_the_url_is_recorded_only_while_the_knative_service_is_ready():
    status = observed(rev(1), rev(1), [])
    status["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    recorded = knative_status.component_status({"url": "http://old"}, status)
    assert recorded["url"] == "http://old"
    assert "address" not in recorded
    assert recorded["latestCreatedRevision"] == rev(1)
