"""The operator's merge patches (ksrv.k8s.apply): what a create-or-patch sends, when it sends
nothing, and which objects count as the owner's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ksrv.k8s import apply

OWNER = apply.Owner("serving.kserve.io/v1beta1", "InferenceService", "sk", "ns1", "u-1",
                    "serving.kserve.io/inferenceservice")  # fmt: skip


def test_stamped_object_is_owned_labelled_and_remembers_what_was_applied() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sk-predictor"},
           "spec": {"ports": [{"port": 80}]}}  # fmt: skip
    found = apply.stamped(obj, OWNER)
    meta = found["metadata"]
    assert meta["namespace"] == "ns1"
    assert meta["labels"] == {"serving.kserve.io/inferenceservice": "sk"}
    assert meta["ownerReferences"] == [{
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "sk",
        "uid": "u-1", "controller": True, "blockOwnerDeletion": True,
    }]  # fmt: skip
    last = json.loads(meta["annotations"][apply.LAST_APPLIED])
    assert last["spec"] == obj["spec"] and apply.LAST_APPLIED not in last["metadata"]["annotations"]
    assert "metadata" in obj and "labels" not in obj["metadata"]  # the input is left alone


def test_a_field_applied_before_and_gone_now_is_nulled() -> None:
    last = {"spec": {"template": {"spec": {"nodeSelector": {"a": "b"}, "containers": []}}}}
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
    assert apply.with_removals(desired, last) == {
        "spec": {"template": {"spec": {"containers": [{"name": "c"}], "nodeSelector": None}}}
    }


@pytest.mark.parametrize(
    ("current", "wanted", "expected"),
    [
        ({"a": 1, "defaulted": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"gone": None}, True),
        ({"a": 1, "gone": 3}, {"gone": None}, False),
        ({"l": [{"x": 1, "default": 0}]}, {"l": [{"x": 1}]}, True),
        ({"l": [{"x": 1}]}, {"l": [{"x": 1}, {"x": 2}]}, False),
        ({"a": "1"}, {"a": 1}, False),
    ],
)
def test_covers_says_whether_a_patch_would_change_anything(
    current: dict[str, Any], wanted: dict[str, Any], expected: bool
) -> None:
    assert apply.covers(current, wanted) is expected


def test_merge_patch_turns_old_into_new() -> None:
    old = {"url": "u", "components": {"predictor": {"url": "p"}, "explainer": {}}, "x": [1]}
    new = {"components": {"predictor": {"url": "p2"}}, "x": [1], "y": 2}
    assert apply.merge_patch(old, new) == {
        "url": None, "components": {"predictor": {"url": "p2"}, "explainer": None}, "y": 2,
    }  # fmt: skip
    assert apply.merge_patch(new, new) == {}


def test_the_same_object_read_through_another_version_is_one_object() -> None:
    v1 = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "sk"}}  # fmt: skip
    v1beta1 = {**v1, "apiVersion": "networking.istio.io/v1beta1"}
    assert apply.identity(v1) == apply.identity(v1beta1)
    assert OWNER.owns({"metadata": {"ownerReferences": [{"uid": "u-1"}]}})
    assert not OWNER.owns({"metadata": {"ownerReferences": [{"uid": "other"}]}})
