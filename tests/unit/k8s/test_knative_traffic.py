"""Knative canary traffic (§5.6), from KServe's ksvc_reconciler.go: with canaryTrafficPercent P
and a rolled-out revision, P% to the latest revision and the rest to the rolled-out one."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ksrv.k8s import knative, render
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
