"""What the operator reads before it renders (ksrv.k8s.cluster_view), answered by the strict
emulator through the official client: the renderer's ClusterView, the runtimes, the settings."""

from __future__ import annotations

from pathlib import Path

from ksrv.k8s import client, cluster_view
from tests.k8s_cluster import Cluster

NS = "ns1"


def test_cluster_view_answers_from_the_api(cluster: Cluster, kubeconfig: Path) -> None:
    cluster.core.create_namespaced_service_account(NS, {
        "metadata": {"name": "models"}, "secrets": [{"name": "s3-creds"}]})  # fmt: skip
    cluster.core.create_namespaced_secret(NS, {
        "metadata": {"name": "s3-creds",
                     "annotations": {"serving.kserve.io/s3-endpoint": "minio:9000"}},
        "stringData": {"AWS_ACCESS_KEY_ID": "id"},
    })  # fmt: skip
    cluster.custom.create_cluster_custom_object(
        "serving.kserve.io", "v1alpha1", "clusterstoragecontainers",
        {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterStorageContainer",
         "metadata": {"name": "default"},
         "spec": {"container": {"name": "storage-initializer", "image": "example.com/init:1"},
                  "supportedUriFormats": [{"prefix": "s3://"}]}},
    )  # fmt: skip
    api = client.connect()
    try:
        view = cluster_view.ApiClusterView(api)
        account = view.service_account(NS, "models")
        assert account is not None and account["secrets"] == [{"name": "s3-creds"}]
        secret = view.secret(NS, "s3-creds")
        assert secret is not None
        assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "minio:9000"
        assert view.secret(NS, "missing") is None
        (container,) = view.storage_containers()
        assert container["spec"]["container"]["image"] == "example.com/init:1"
    finally:
        api.close()


def test_runtimes_are_the_namespaces_the_clusters_and_the_unreplaced_defaults(
    cluster: Cluster, kubeconfig: Path
) -> None:
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
        "metadata": {"name": "ksrv-sklearn"},
        "spec": {"supportedModelFormats": [{"name": "sklearn", "autoSelect": True}],
                 "containers": [{"name": "kserve-container", "image": "example.com/sk:2"}]},
    }  # fmt: skip
    cluster.custom.create_cluster_custom_object(
        "serving.kserve.io", "v1alpha1", "clusterservingruntimes", runtime
    )
    api = client.connect()
    try:
        found = cluster_view.runtimes(api, NS)
        sklearn = [r for r in found if r.metadata.name == "ksrv-sklearn"]
        assert len(sklearn) == 1  # the applied one took the default's place
        assert sklearn[0].spec.containers[0].image == "example.com/sk:2"
        assert "ksrv-xgboost" in {r.metadata.name for r in found}
        assert cluster_view.cluster_config(api, "kserve").ingress.ingress_domain == "example.com"
    finally:
        api.close()
