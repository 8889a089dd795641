"""Tier 3 (../shared/k8s/TESTING.md): the operator against a real cluster, where KUBECONFIG
points at one with KServe's CRDs installed. The same flow as the emulator tier, through the
HTTP API only; the cluster's own controllers run the Deployment, so readiness is not forced.
Skipped, saying why, anywhere else."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

kubernetes = pytest.importorskip("kubernetes")
kopf_testing = pytest.importorskip("kopf.testing")

from ksrv.k8s import operator  # noqa: E402  (after the skips: kopf may be absent)
from tests.conftest import wait_until  # noqa: E402
from tests.k8s_cluster import GROUP, Cluster, isvc  # noqa: E402

TIMEOUT_S = 60.0


def _live_cluster() -> Cluster:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no live cluster: set KUBECONFIG to a cluster with KServe's CRDs to run this")
    try:
        cluster = Cluster(None)
        cluster.core.list_namespace(limit=1, _request_timeout=5)
        found = cluster.custom.list_cluster_custom_object(
            GROUP, "v1beta1", "inferenceservices", limit=1, _request_timeout=5
        )
    except Exception as exc:  # any failure to reach it means there is no cluster to test
        pytest.skip(f"KUBECONFIG is set but the cluster does not answer as needed: {exc}")
    assert isinstance(found, dict)
    return cluster


@pytest.fixture
def live() -> Iterator[tuple[Cluster, str]]:
    cluster = _live_cluster()
    namespace = f"ksrv-e2e-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield cluster, namespace
    finally:
        cluster.core.delete_namespace(namespace)
        cluster.close()


def test_operator_serves_and_removes_a_sklearn_service_on_a_live_cluster(
    live: tuple[Cluster, str],
) -> None:
    cluster, namespace = live
    runner: Any = kopf_testing.KopfRunner(
        ["run", "--standalone", "--namespace", namespace], registry=operator.registry(),
        timeout=60,
    )  # fmt: skip
    with runner:
        created = cluster.create_isvc(namespace, isvc())
        wait_until(lambda: cluster.deployment(namespace, "sklearn-iris-predictor") is not None,
                   "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
        wait_until(lambda: cluster.service(namespace, "sklearn-iris-predictor") is not None,
                   "the predictor Service exists", TIMEOUT_S)  # fmt: skip
        deployment = cluster.deployment(namespace, "sklearn-iris-predictor")
        assert deployment["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
        init = deployment["spec"]["template"]["spec"]["initContainers"]
        assert [c["name"] for c in init] == ["storage-initializer"]
        wait_until(lambda: cluster.condition(namespace, "sklearn-iris", "PredictorReady")
                   is not None, "the status says how the predictor is", TIMEOUT_S)  # fmt: skip
        cluster.delete_isvc(namespace, "sklearn-iris")
        wait_until(lambda: cluster.isvc(namespace, "sklearn-iris") is None,
                   "the InferenceService is gone", TIMEOUT_S)  # fmt: skip
        wait_until(lambda: cluster.deployment(namespace, "sklearn-iris-predictor") is None,
                   "the Deployment is gone", TIMEOUT_S)  # fmt: skip
    assert runner.exception is None, runner.output
