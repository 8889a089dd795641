"""k8s.merge: Kubernetes' strategic merge patch for containers and pod specs, rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from ksrv.k8s import merge

CONTAINER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "env merges by name, the patch wins",
        {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
        {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                 {"name": "C", "value": "4"}]},
    ),
    (
        "ports merge by containerPort",
        {"ports": [{"containerPort": 8080, "name": "http1"}]},
        {"ports": [{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9000}]},
        {"ports": [{"containerPort": 8080, "name": "http1", "protocol": "TCP"},
                   {"containerPort": 9000}]},
    ),
    (
        "volumeMounts merge by mountPath",
        {"volumeMounts": [{"name": "a", "mountPath": "/a"}, {"name": "b", "mountPath": "/b"}]},
        {"volumeMounts": [{"name": "c", "mountPath": "/b", "readOnly": True}]},
        {"volumeMounts": [{"name": "a", "mountPath": "/a"},
                          {"name": "c", "mountPath": "/b", "readOnly": True}]},
    ),
    (
        "resources merge by key",
        {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1"}}},
        {"resources": {"requests": {"cpu": "2"}, "limits": {"nvidia.com/gpu": "1"}}},
        {"resources": {"requests": {"cpu": "2", "memory": "2Gi"},
                       "limits": {"cpu": "1", "nvidia.com/gpu": "1"}}},
    ),
    (
        "args and command are replaced",
        {"command": ["a"], "args": ["--x"]},
        {"command": ["b"], "args": ["--y"]},
        {"command": ["b"], "args": ["--y"]},
    ),
    (
        "envFrom has no merge key: replaced",
        {"envFrom": [{"secretRef": {"name": "a"}}]},
        {"envFrom": [{"configMapRef": {"name": "b"}}]},
        {"envFrom": [{"configMapRef": {"name": "b"}}]},
    ),
    (
        "a null in the patch deletes",
        {"image": "x", "workingDir": "/w"},
        {"workingDir": None},
        {"image": "x"},
    ),
    (
        "an env var keeps the patch's valueFrom, not the base's value",
        {"env": [{"name": "K", "value": "plain"}]},
        {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
    ),
    (
        "an env var keeps the patch's value, not the base's valueFrom",
        {"env": [{"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        {"env": [{"name": "K", "value": "v"}]},
        {"env": [{"name": "K", "value": "v"}]},
    ),
    (
        "a probe keeps the patch's handler and the base's timings",
        {"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5}},
        {"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}},
        {"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5}},
    ),
    (
        "securityContext merges field by field",
        {"securityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}},
        {"securityContext": {"runAsUser": 1000}},
        {"securityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                             "runAsUser": 1000}},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "patch", "expected"),
    [case[1:] for case in CONTAINER_CASES],
    ids=[case[0] for case in CONTAINER_CASES],
)
def test_container_merge_follows_kubernetes_patch_rules(base, patch, expected):
    assert merge.merge_container(base, patch) == expected


POD_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "volumes merge by name and a same-named volume takes the patch's source",
        {"volumes": [{"name": "a", "configMap": {"name": "c"}}, {"name": "b", "emptyDir": {}}]},
        {"volumes": [{"name": "a", "emptyDir": {"medium": "Memory"}}, {"name": "c",
                                                                        "emptyDir": {}}]},
        {"volumes": [{"name": "a", "emptyDir": {"medium": "Memory"}}, {"name": "b", "emptyDir": {}},
                     {"name": "c", "emptyDir": {}}]},
    ),
    (
        "tolerations have no merge key: the patch's replace the base's",
        {"tolerations": [{"key": "a", "operator": "Exists"}]},
        {"tolerations": [{"key": "b", "operator": "Exists"}]},
        {"tolerations": [{"key": "b", "operator": "Exists"}]},
    ),
    (
        "nodeSelector merges by key",
        {"nodeSelector": {"zone": "a", "disk": "ssd"}},
        {"nodeSelector": {"zone": "b"}},
        {"nodeSelector": {"zone": "b", "disk": "ssd"}},
    ),
    (
        "imagePullSecrets merge by name",
        {"imagePullSecrets": [{"name": "runtime"}]},
        {"imagePullSecrets": [{"name": "mine"}, {"name": "runtime"}]},
        {"imagePullSecrets": [{"name": "runtime"}, {"name": "mine"}]},
    ),
    (
        "containers merge by name with the container rules",
        {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]},
        {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]},
        {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"},
                                              {"name": "B", "value": "2"}]}]},
    ),
    (
        "the base is left as it was and fields only it has stay",
        {"schedulerName": "gang", "affinity": {"nodeAffinity": {"x": 1}}},
        {"affinity": {"podAntiAffinity": {"y": 2}}},
        {"schedulerName": "gang", "affinity": {"nodeAffinity": {"x": 1},
                                               "podAntiAffinity": {"y": 2}}},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "patch", "expected"),
    [case[1:] for case in POD_CASES],
    ids=[case[0] for case in POD_CASES],
)
def test_pod_merge_follows_kubernetes_patch_rules(base, patch, expected):
    before = repr(base)
    assert merge.merge_pod(base, patch) == expected
    assert repr(base) == before


def test_merged_container_keeps_the_base_name_when_the_patch_has_none():
    assert merge.merge_container({"name": "kserve-container"}, {"image": "x"}) == {
        "name": "kserve-container",
        "image": "x",
    }
