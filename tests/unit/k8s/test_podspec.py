"""k8s.podspec: a component's pod spec as KServe's controller builds it (§5.3), rule by rule.

Every pod a test builds is wrapped in a minimal Deployment and validated strictly
(`tests.k8s_support.assert_valid`)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ksrv.api import default_runtimes, resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.serving_runtime import Runtime, parse_runtimes
from ksrv.control.plan import desired_state
from ksrv.errors import ResourceInvalid
from ksrv.k8s import object_meta, podspec, runtime_defaults
from ksrv.k8s.config import ClusterConfig
from ksrv.k8s.context import ComponentContext, Documents
from ksrv.k8s.object_meta import STORAGE_URI_ANNOTATION
from tests.k8s_support import assert_valid

CONFIG = ClusterConfig()
SERVER_IMAGE = CONFIG.images.server
SKLEARN = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}
USER_RUNTIME = """
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: my-runtime, namespace: ns}
spec:
  supportedModelFormats: [{name: onnx, version: "1", autoSelect: true, priority: 9}]
  protocolVersions: [v1, v2]
  labels: {from: runtime, tier: runtime}
  annotations: {prometheus.kserve.io/port: "8080", shared: runtime}
  nodeSelector: {pool: cpu, disk: ssd}
  tolerations: [{key: runtime, operator: Exists}]
  imagePullSecrets: [{name: runtime-pull}]
  volumes:
    - {name: cache, emptyDir: {}}
    - {name: config, configMap: {name: runtime-config}}
  containers:
    - name: kserve-container
      image: registry.example.com/onnx-server:1.2
      args: ["--model={{.Name}}", "--ns={{.Namespace}}", "--team={{.Labels.team}}",
             "--owner={{ .Annotations.owner }}"]
      env:
        - {name: LOG_LEVEL, value: info}
        - {name: THREADS, value: "2"}
      ports: [{containerPort: 9000, name: http1, protocol: TCP}]
      volumeMounts: [{name: cache, mountPath: /cache}]
      resources:
        requests: {cpu: "1", memory: 1Gi}
        limits: {cpu: "2", memory: 1Gi}
    - name: metrics-sidecar
      image: registry.example.com/metrics:3
      ports: [{containerPort: 9090, name: metrics}]
"""


def isvc(spec: dict[str, Any], name: str = "foo", **metadata: Any) -> InferenceService:
    loaded = resources.load({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ns", **metadata},
        "spec": spec,
    })  # fmt: skip
    assert isinstance(loaded, InferenceService)
    return loaded


def context(
    spec: dict[str, Any], component: str = "predictor", runtimes_yaml: str = "", **metadata: Any
) -> ComponentContext:
    """What `render` hands `pod_spec`: the typed resource, its plan, runtime and config."""
    resource = isvc(spec, **metadata)
    runtimes: list[Runtime] = [
        *(parse_runtimes(runtimes_yaml) if runtimes_yaml else []),
        *default_runtimes.default_runtimes(),
    ]
    plan = desired_state(resource, runtimes).components[component]
    kind = "ClusterServingRuntime" if plan.is_cluster_runtime else "ServingRuntime"
    runtime = next((r for r in runtimes if r.name == plan.runtime and r.kind == kind), None)
    name = f"{resource.metadata.name}-{component}"
    raw = resource.to_dict()["spec"][component]
    return ComponentContext(resource, component, name, plan, raw, runtime, CONFIG, Documents())


def valid_pod(ctx: ComponentContext) -> dict[str, Any]:
    """`pod_spec(ctx)`, checked strictly inside a minimal Deployment."""
    pod = podspec.pod_spec(ctx)
    labels = {"app": "test"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": ctx.name, "namespace": ctx.namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    assert_valid([deployment])
    return pod


def main(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == podspec.MAIN)


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {v["name"]: v.get("value", v.get("valueFrom")) for v in container.get("env") or ()}


# --- a model on ksrv's runtime ------------------------------------------------------------


def test_ksrv_runtime_runs_ksrv_server_with_kserve_arguments_and_both_ports():
    pod = valid_pod(context({"predictor": {"model": SKLEARN}}))
    container = main(pod)
    assert container["image"] == SERVER_IMAGE
    assert container["command"] == ["ksrv", "serve"]
    assert container["args"][:3] == ["--model-name=foo", "--model-dir=/mnt/models",
                                     "--model-format=sklearn"]  # fmt: skip
    assert "--host=0.0.0.0" in container["args"]
    assert container["ports"] == [
        {"name": "http1", "containerPort": 8080, "protocol": "TCP"},
        {"name": "h2c", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert env(container) == {"INFERENCE_SERVICE_NAME": "foo"}
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert [c["name"] for c in pod["containers"]] == [podspec.MAIN]


def test_kserve_builtin_runtime_name_is_served_by_ksrv_runtime():
    ctx = context({"predictor": {"model": {**SKLEARN, "runtime": "kserve-sklearnserver"}}})
    container = main(valid_pod(ctx))
    assert container["image"] == SERVER_IMAGE
    assert "--model-name=foo" in container["args"]


def test_model_container_fields_win_and_model_args_follow_the_runtime_args():
    model = {
        **SKLEARN,
        "args": ["--model_name=custom", "--workers=2"],
        "env": [{"name": "PREDICT_PROBA", "value": "true"}],
        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2", "nvidia.com/gpu": "1"}},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8080}},
    }
    container = main(valid_pod(context({"predictor": {"model": model}})))
    # KServe 0.20 concatenates (runtime + isvc); in ksrv's spelling, so the last one wins.
    runtime_args = ["--model-name=foo", "--model-dir=/mnt/models", "--model-format=sklearn",
                    "--http-port=8080", "--grpc-port=8081", "--host=0.0.0.0"]  # fmt: skip
    assert container["args"] == [*runtime_args, "--model-name=custom", "--workers=2"]
    assert env(container)["PREDICT_PROBA"] == "true"
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_runtime_version_replaces_the_server_image_tag():
    ctx = context({"predictor": {"model": {**SKLEARN, "runtimeVersion": "1.2.3"}}})
    image = main(valid_pod(ctx))["image"]
    assert image == SERVER_IMAGE.rpartition(":")[0] + ":1.2.3"


def test_batcher_becomes_ksrv_batcher_arguments():
    ctx = context(
        {"predictor": {"batcher": {"maxBatchSize": 16, "maxLatency": 20}, "model": SKLEARN}}
    )
    args = main(valid_pod(ctx))["args"]
    assert "--max-batch-size=16" in args and "--max-latency-ms=20" in args
    ctx = context({"predictor": {"batcher": {}, "model": SKLEARN}})
    args = main(valid_pod(ctx))["args"]
    assert "--max-batch-size=32" in args and "--max-latency-ms=5000" in args  # KServe's defaults


def test_pod_fields_pass_through_and_extension_fields_never_land():
    predictor = {
        "model": {**SKLEARN, "resources": {"limits": {"nvidia.com/gpu": "2"}}},
        "runtimeClassName": "wasmtime",
        "serviceAccountName": "reader",
        "nodeSelector": {"accelerator": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
        "priorityClassName": "high",
        "initContainers": [{"name": "warmup", "image": "busybox", "command": ["true"]}],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "pull"}],
        "minReplicas": 0, "maxReplicas": 3, "scaleTarget": 5, "scaleMetric": "concurrency",
        "containerConcurrency": 2, "timeout": 30, "canaryTrafficPercent": 10,
        "logger": {"mode": "all", "url": "http://sink"}, "batcher": {"maxBatchSize": 4},
        "labels": {"l": "1"}, "annotations": {"a": "1"},
    }  # fmt: skip
    pod = valid_pod(context({"predictor": predictor}))
    for field in ("runtimeClassName", "serviceAccountName", "nodeSelector", "tolerations",
                  "affinity", "securityContext", "priorityClassName", "initContainers",
                  "volumes", "imagePullSecrets"):  # fmt: skip
        assert pod[field] == predictor[field], field
    assert not set(pod) & podspec.EXTENSION_FIELDS
    assert main(pod)["resources"]["limits"]["nvidia.com/gpu"] == "2"


# --- a user ServingRuntime ----------------------------------------------------------------


def user_runtime_pod(**predictor: Any) -> dict[str, Any]:
    model = {
        "modelFormat": {"name": "onnx"},
        "storageUri": "s3://b/m",
        **predictor.pop("model", {}),
    }
    ctx = context(
        {"predictor": {"model": model, **predictor}},
        runtimes_yaml=USER_RUNTIME,
        labels={"team": "vision"},
        annotations={"owner": "ana"},
    )
    assert ctx.runtime is not None and ctx.runtime.name == "my-runtime"
    return valid_pod(ctx)


def test_user_runtime_container_merges_with_the_model_and_templates_are_filled():
    pod = user_runtime_pod(
        model={
            "args": ["--extra"],
            "env": [{"name": "THREADS", "value": "8"}, {"name": "MINE", "value": "1"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "resources": {"limits": {"memory": "4Gi"}},
        },
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    container = main(pod)
    assert container["image"] == "registry.example.com/onnx-server:1.2"
    assert container["args"] == ["--model=foo", "--ns=ns", "--team=vision", "--owner=ana",
                                 "--extra"]  # fmt: skip
    assert env(container) == {"LOG_LEVEL": "info", "THREADS": "8", "MINE": "1",
                              "INFERENCE_SERVICE_NAME": "foo"}  # fmt: skip
    assert container["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"},
                                         {"name": "data", "mountPath": "/data"}]  # fmt: skip
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert container["ports"] == [{"containerPort": 9000, "name": "http1", "protocol": "TCP"}]
    sidecar = pod["containers"][1]
    assert sidecar["name"] == "metrics-sidecar" and env(sidecar) == {
        "INFERENCE_SERVICE_NAME": "foo"
    }
    assert [v["name"] for v in pod["volumes"]] == ["cache", "config", "data"]


def test_runtime_pod_fields_merge_under_the_component():
    pod = user_runtime_pod(
        nodeSelector={"pool": "gpu"},
        tolerations=[{"key": "mine", "operator": "Exists"}],
        imagePullSecrets=[{"name": "mine"}],
    )
    assert pod["nodeSelector"] == {"pool": "gpu", "disk": "ssd"}
    assert pod["tolerations"] == [{"key": "mine", "operator": "Exists"}]
    assert pod["imagePullSecrets"] == [{"name": "runtime-pull"}, {"name": "mine"}]


def test_runtime_without_kserve_container_is_an_invalid_predictor_spec():
    broken = USER_RUNTIME.replace("- name: kserve-container", "- name: server")
    ctx = context(
        {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://b/m"}}},
        runtimes_yaml=broken,
    )
    with pytest.raises(ResourceInvalid, match="failed to find kserve-container"):
        podspec.pod_spec(ctx)


def test_template_that_is_not_a_metadata_field_names_the_runtime_and_container():
    broken = USER_RUNTIME.replace("--ns={{.Namespace}}", "--x={{.Spec.Predictor}}")
    ctx = context(
        {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://b/m"}}},
        runtimes_yaml=broken,
    )
    with pytest.raises(ResourceInvalid, match=r"my-runtime container kserve-container.*Spec"):
        podspec.pod_spec(ctx)


def test_collocated_transformer_container_merges_runtime_and_component_and_follows_main():
    runtime = yaml.safe_load(USER_RUNTIME)
    runtime["spec"]["containers"].append({
        "name": "transformer-container", "image": "registry.example.com/t:1",
        "args": ["--model_name={{.Name}}"], "env": [{"name": "A", "value": "runtime"}],
    })  # fmt: skip
    ctx = context(
        {"predictor": {
            "model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://b/m"},
            "containers": [
                {"name": "transformer-container", "args": ["--predictor_host=localhost:9000"],
                 "env": [{"name": "A", "value": "isvc"}]},
                {"name": "helper", "image": "busybox"},
            ],
        }},
        runtimes_yaml=yaml.safe_dump(runtime),
    )  # fmt: skip
    pod = valid_pod(ctx)
    names = [c["name"] for c in pod["containers"]]
    assert names == [podspec.MAIN, "transformer-container", "metrics-sidecar", "helper"]
    transformer = pod["containers"][1]
    assert transformer["args"] == ["--model_name=foo", "--predictor_host=localhost:9000"]
    assert env(transformer) == {"A": "isvc", "INFERENCE_SERVICE_NAME": "foo"}


# --- KServe's server-type defaults --------------------------------------------------------

MLSERVER = """
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-mlserver
  annotations: {serving.kserve.io/server-type: mlserver}
spec:
  supportedModelFormats: [{name: xgboost, version: "2", autoSelect: true, priority: 5}]
  protocolVersions: [v2]
  containers:
    - name: kserve-container
      image: docker.io/seldonio/mlserver:1.5.0
      env:
        - {name: MLSERVER_MODEL_IMPLEMENTATION, value: "{{.Labels.modelClass}}"}
        - {name: MLSERVER_HTTP_PORT, value: "8080"}
"""
TORCHSERVE = """
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-torchserve}
spec:
  supportedModelFormats: [{name: pytorch, version: "1", autoSelect: true, priority: 9}]
  protocolVersions: [v1, v2, grpc-v2]
  containers:
    - name: kserve-container
      image: pytorch/torchserve-kfs:0.9.0
      args: [torchserve, --start]
"""


def test_mlserver_server_type_gets_kserve_env_and_model_class_label():
    ctx = context(
        {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "xgboost"},
                    "storageUri": "gs://b/x",
                    "protocolVersion": "v2",
                }
            }
        },
        runtimes_yaml=MLSERVER,
    )
    pod = valid_pod(ctx)
    assert env(main(pod)) == {
        "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_xgboost.XGBoostModel",
        "MLSERVER_HTTP_PORT": "8080",
        "MLSERVER_MODEL_NAME": "foo",
        "MLSERVER_MODEL_URI": "/mnt/models",
        "INFERENCE_SERVICE_NAME": "foo",
    }
    assert main(pod)["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    labels = object_meta.component_meta(ctx).labels
    assert labels["modelClass"] == "mlserver_xgboost.XGBoostModel"


def test_torchserve_by_runtime_name_gets_protocol_env_envelope_label_and_gpu_image():
    model = {"modelFormat": {"name": "pytorch"}, "storageUri": "gs://b/t",
             "protocolVersion": "v2", "resources": {"limits": {"nvidia.com/gpu": "1"}}}  # fmt: skip
    ctx = context({"predictor": {"model": model}}, runtimes_yaml=TORCHSERVE)
    container = main(valid_pod(ctx))
    assert env(container)["PROTOCOL_VERSION"] == "v2"
    assert container["image"] == "pytorch/torchserve-kfs:0.9.0-gpu"
    assert container["args"] == ["torchserve", "--start"]
    assert object_meta.component_meta(ctx).labels["serviceEnvelope"] == "kservev2"


SERVER_DEFAULT_CASES = [
    ("mlserver", {"modelFormat": {"name": "sklearn"}}, "v2",
     (("MLSERVER_LOAD_MODELS_AT_STARTUP", "false"),), ()),
    ("torchserve", {}, "v1", (("PROTOCOL_VERSION", "v1"),), ()),
    ("tritonserver", {}, "v2", (), ("--model-control-mode=explicit",)),
    ("tritonserver", {"storageUri": "gs://b/m"}, "v2", (), ()),
    ("tritonserver", {"protocolVersion": "grpc-v2", "storageUri": "gs://b/m"}, "grpc-v2", (), ()),
    ("", {}, "v1", (), ()),  # no server type: the runtime's lowest protocol (v1 < v2)
]  # fmt: skip


@pytest.mark.parametrize(("kind", "model", "protocol", "env_vars", "args"), SERVER_DEFAULT_CASES)
def test_server_type_defaults_follow_kserve(kind, model, protocol, env_vars, args):
    (runtime,) = parse_runtimes(
        USER_RUNTIME.replace(
            "metadata: {name: my-runtime, namespace: ns}",
            f"metadata: {{name: r, annotations: {{serving.kserve.io/server-type: '{kind}'}}}}",
        )
    )
    defaults = runtime_defaults.server_defaults(runtime, model, "foo")
    assert (defaults.protocol, defaults.env, defaults.args) == (protocol, env_vars, args)


IMAGE_CASES = [
    ("repo/img:1.0", "2.0", "", False, "repo/img:2.0"),
    ("repo/img", "2.0", "", False, "repo/img:2.0"),
    ("registry:5000/img", "2.0", "", False, "registry:5000/img:2.0"),
    ("repo/img@sha256:abc", "2.0", "", False, "repo/img@sha256:abc"),
    ("repo/tf:2.6", None, "tensorflow-serving", True, "repo/tf:2.6-gpu"),
    ("repo/tf:2.6-gpu", None, "tensorflow-serving", True, "repo/tf:2.6-gpu"),
    ("repo/sk:1", None, "sklearnserver", True, "repo/sk:1"),
    ("vllm/vllm-openai:0.8", None, "vllmserver", False, "vllm/vllm-openai-cpu:0.8"),
    ("vllm/vllm-openai:0.8", None, "vllmserver", True, "vllm/vllm-openai:0.8"),
    ("repo/img:1.0", None, "", True, "repo/img:1.0"),
]


@pytest.mark.parametrize(("image", "version", "kind", "is_gpu", "expected"), IMAGE_CASES)
def test_image_tag_follows_kserve(image, version, kind, is_gpu, expected):
    assert runtime_defaults.image_tag(image, version, kind, is_gpu) == expected


# --- custom containers, transformers and explainers ---------------------------------------

PREDICTOR = {"model": SKLEARN}


def test_custom_predictor_runs_as_written_with_kserve_name_resources_and_port():
    container = {"name": "server", "image": "me/model:1", "args": ["--flag"]}
    pod = valid_pod(context({"predictor": {"containers": [container]}}))
    (only,) = pod["containers"]
    assert only["name"] == podspec.MAIN and only["args"] == ["--flag"]
    assert only["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert only["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"},
                                 "limits": {"cpu": "1", "memory": "2Gi"}}  # fmt: skip
    assert env(only) == {"INFERENCE_SERVICE_NAME": "foo"}


def test_custom_predictor_keeps_its_ports_and_leaves_a_resource_it_sets_alone():
    container = {"name": "server", "image": "me/model:1",
                 "ports": [{"containerPort": 9000, "name": "h2c"}],
                 "resources": {"limits": {"cpu": "500m"}}}  # fmt: skip
    (only,) = valid_pod(context({"predictor": {"containers": [container]}}))["containers"]
    assert only["ports"] == [{"containerPort": 9000, "name": "h2c"}]
    assert only["resources"] == {"limits": {"cpu": "500m", "memory": "2Gi"},
                                 "requests": {"memory": "2Gi"}}  # fmt: skip


def test_custom_predictor_running_ksrv_gets_its_name_and_an_address_beyond_loopback():
    container = {"name": "kserve-container", "image": "ksrv:replace",
                 "command": ["ksrv", "serve"], "args": ["model.py:MyModel"]}  # fmt: skip
    (only,) = valid_pod(context({"predictor": {"containers": [container]}}))["containers"]
    assert only["image"] == SERVER_IMAGE
    assert only["args"] == ["model.py:MyModel", "--model-name", "foo", "--host=0.0.0.0"]
    assert [p["containerPort"] for p in only["ports"]] == [8080, 8081]


TRANSFORMER_CASES = [
    ([], None, ["--model_name", "foo", "--predictor_host", "foo-predictor.ns",
                "--http_port", "8080"]),
    (["--model_name=mine", "--http_port=9000"], 4,
     ["--model_name=mine", "--http_port=9000", "--predictor_host", "foo-predictor.ns",
      "--workers", "4"]),
    (["--predictor_host", "elsewhere:80", "--workers=1"], 4,
     ["--predictor_host", "elsewhere:80", "--workers=1", "--model_name", "foo",
      "--http_port", "8080"]),
]  # fmt: skip


@pytest.mark.parametrize(("args", "concurrency", "expected"), TRANSFORMER_CASES)
def test_custom_transformer_gets_kserve_injected_arguments(args, concurrency, expected):
    transformer: dict[str, Any] = {"containers": [{"name": "t", "image": "me/t:1", "args": args}]}
    if concurrency is not None:
        transformer["containerConcurrency"] = concurrency
    ctx = context({"predictor": PREDICTOR, "transformer": transformer}, component="transformer")
    (container,) = valid_pod(ctx)["containers"]
    assert container["name"] == podspec.MAIN
    assert container["args"] == expected
    http = 9000 if "--http_port=9000" in args else 8080
    assert container["ports"][0]["containerPort"] == http
    assert env(container) == {"INFERENCE_SERVICE_NAME": "foo"}


def test_transformer_reaches_a_named_predictor_by_its_service():
    spec = {"predictor": {"name": "blue", **PREDICTOR},
            "transformer": {"containers": [{"name": "t", "image": "me/t:1"}]}}  # fmt: skip
    (container,) = valid_pod(context(spec, component="transformer"))["containers"]
    assert container["args"][3] == "foo-blue-predictor.ns"


def test_ksrv_transformer_gets_the_same_arguments_in_ksrv_spelling():
    spec = {
        "predictor": {"model": {**SKLEARN, "protocolVersion": "v2"}},
        "transformer": {"containers": [{"name": "t", "image": "ksrv:replace",
                                        "command": ["ksrv", "serve"],
                                        "args": ["t.py:Transformer", "--http_port=8080"]}]},
    }  # fmt: skip
    (container,) = valid_pod(context(spec, component="transformer"))["containers"]
    assert container["args"] == [
        "t.py:Transformer", "--http-port=8080", "--model-name", "foo",
        "--predictor-host", "foo-predictor.ns", "--predictor-protocol", "v2", "--host=0.0.0.0",
    ]  # fmt: skip
    assert container["image"] == SERVER_IMAGE


def test_custom_explainer_always_gets_the_http_port_and_no_service_name_env():
    spec = {"predictor": PREDICTOR,
            "explainer": {"containers": [{"name": "e", "image": "me/e:1",
                                          "args": ["--http_port=9000"]}]}}  # fmt: skip
    (container,) = valid_pod(context(spec, component="explainer"))["containers"]
    assert container["args"] == [
        "--http_port=9000", "--model_name", "foo", "--predictor_host", "foo-predictor.ns",
        "--http_port", "8080",
    ]  # fmt: skip
    assert container["ports"][0]["containerPort"] == 8080
    assert "env" not in container


def test_art_explainer_runs_kserve_art_image_with_its_config_as_flags():
    spec = {"predictor": PREDICTOR,
            "explainer": {"containerConcurrency": 2,
                          "art": {"type": "SquareAttack", "config": {"nb_classes": "10",
                                                                     "max_iter": "5"},
                                  "args": ["--verbose"], "runtimeVersion": "v0.14.0"}}}  # fmt: skip
    (container,) = valid_pod(context(spec, component="explainer"))["containers"]
    assert container["image"] == "kserve/art-explainer:v0.14.0"
    assert container["args"] == [
        "--model_name", "foo", "--http_port", "8080", "--predictor_host", "foo-predictor.ns",
        "--workers", "2", "--adversary_type", "SquareAttack", "--max_iter", "5",
        "--nb_classes", "10", "--verbose",
    ]  # fmt: skip


# --- pod metadata, probes and ports per mode ----------------------------------------------


def test_pod_metadata_precedence_is_component_over_isvc_over_runtime():
    ctx = context(
        {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://b/m"},
                       "labels": {"tier": "component", "component": "hijack"},
                       "annotations": {"shared": "component"}}},
        runtimes_yaml=USER_RUNTIME,
        labels={"tier": "isvc", "team": "vision"},
        annotations={"shared": "isvc", "modelFormat": "onnx", "owner": "ana",
                     "autoscaling.knative.dev/min-scale": "2"},
    )  # fmt: skip
    meta = object_meta.component_meta(ctx)
    labels, annotations = meta.labels, meta.annotations
    assert labels == {
        "from": "runtime", "tier": "component", "team": "vision",
        "component": "predictor",
        "serving.kserve.io/inferenceservice": "foo",
    }  # fmt: skip
    assert annotations == {"prometheus.kserve.io/port": "8080", "shared": "component",
                           "owner": "ana", STORAGE_URI_ANNOTATION: "s3://b/m"}  # fmt: skip


def test_transformer_metadata_has_no_runtime_part():
    spec = {"predictor": PREDICTOR, "transformer": {
        "containers": [{"name": "t", "image": "me/t:1"}], "labels": {"x": "1"}}}  # fmt: skip
    meta = object_meta.component_meta(context(spec, component="transformer"))
    labels, annotations = meta.labels, meta.annotations
    assert labels["x"] == "1" and labels["component"] == "transformer"
    assert annotations == {}


def test_standard_readiness_probe_is_tcp_on_the_first_port_unless_given():
    pod = podspec.with_readiness_probes(valid_pod(context({"predictor": PREDICTOR})))
    assert main(pod)["readinessProbe"] == {
        "tcpSocket": {"port": 8080}, "timeoutSeconds": 1, "periodSeconds": 10,
        "successThreshold": 1, "failureThreshold": 3,
    }  # fmt: skip
    given = {"httpGet": {"path": "/v2/health/ready", "port": 8080}}
    ctx = context({"predictor": {"model": {**SKLEARN, "readinessProbe": given}}})
    assert main(podspec.with_readiness_probes(podspec.pod_spec(ctx)))["readinessProbe"] == given
    bare = {"containers": [{"name": podspec.MAIN, "image": "x"}, {"name": "side", "image": "y"}]}
    probed = podspec.with_readiness_probes(bare)
    assert probed["containers"][0]["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert "readinessProbe" not in probed["containers"][1] and bare["containers"][0] == {
        "name": podspec.MAIN, "image": "x"}  # fmt: skip


TEMPLATE_CASES = [
    ("{{.Name}}", "foo"),
    ("{{ .Namespace }}", "ns"),
    ("--class={{.Labels.modelClass}}", "--class=m.Model"),
    ('{{ index .Annotations "serving.kserve.io/x" }}', "y"),
    ("{{.Annotations.missing}}", ""),
    ("no template", "no template"),
]


@pytest.mark.parametrize(("text", "expected"), TEMPLATE_CASES)
def test_runtime_templates_read_the_isvc_metadata(text, expected):
    filled = runtime_defaults.fill_templates(
        {"args": [text]}, "foo", "ns", {"modelClass": "m.Model"},
        {"serving.kserve.io/x": "y"}, "runtime r",
    )  # fmt: skip
    assert filled == {"args": [expected]}
