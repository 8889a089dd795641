"""plan.desired_state: typed InferenceServices -> platform-neutral component plans."""

from __future__ import annotations

from typing import Any

import pytest

from ksrv.api import default_runtimes, resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.serving_runtime import parse_runtimes
from ksrv.control import plan
from ksrv.control.logger_plan import PayloadLogger
from ksrv.control.plan import ModelServer

RUNTIMES = default_runtimes.default_runtimes()


def isvc(
    spec: dict[str, Any], name: str = "iris", namespace: str = "ns", **metadata: Any
) -> InferenceService:
    loaded = resources.load(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": spec,
        }
    )
    assert isinstance(loaded, InferenceService)
    return loaded


def desired(spec: dict[str, Any], runtimes=RUNTIMES, **metadata: Any) -> plan.ServicePlan:
    return plan.desired_state(isvc(spec, **metadata), runtimes)


def test_model_spec_plans_a_model_server_with_the_selected_runtime():
    result = desired(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}}
    )
    predictor = result.components["predictor"]
    assert predictor.workload == plan.ModelServer(
        model_format="sklearn",
        storage_uri="gs://b/m",
        runtime="ksrv-sklearn",
        is_cluster_runtime=True,
        ksrv_runtime="sklearn",
        merges_requests=True,
    )
    assert predictor.runtime == "ksrv-sklearn" and predictor.is_cluster_runtime
    assert dict(predictor.ports) == {"http": 8080, "grpc": 8081}
    assert predictor.error is None and predictor.autoscaling.min_replicas == 1
    assert predictor.predictor is None
    assert result.entry == "predictor"


def test_legacy_framework_spec_is_read_as_a_model_spec():
    result = desired({"predictor": {"xgboost": {"storageUri": "/m", "protocolVersion": "v2"}}})
    predictor = result.components["predictor"]
    assert isinstance(predictor.workload, plan.ModelServer)
    assert predictor.workload.model_format == "xgboost"
    assert predictor.protocol == "v2"


def test_fingerprint_changes_with_the_model_not_with_replicas():
    first = desired({"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 1}})
    scaled = desired({"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 3}})
    moved = desired({"predictor": {"sklearn": {"storageUri": "/b"}}})
    fingerprint = first.components["predictor"].fingerprint
    assert scaled.components["predictor"].fingerprint == fingerprint
    assert scaled.components["predictor"].autoscaling.min_replicas == 3
    assert moved.components["predictor"].fingerprint != fingerprint


def test_bounds_autoscaling_timeout_and_canary_come_from_the_component():
    predictor = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 0, "maxReplicas": 4,
                       "scaleMetric": "concurrency", "scaleTarget": 5, "timeout": 5,
                       "containerConcurrency": 3, "canaryTrafficPercent": 20,
                       "logger": {"mode": "request", "url": "http://sink"}}},
        annotations={"autoscaling.knative.dev/window": "30s", "unrelated": "x"},
    ).components["predictor"]  # fmt: skip
    assert predictor.autoscaling == plan.Autoscaling(
        min_replicas=0,
        max_replicas=4,
        scale_metric="concurrency",
        scale_target=5,
        annotations=(("autoscaling.knative.dev/window", "30s"),),
    )
    assert predictor.timeout_s == 5.0 and predictor.canary_percent == 20
    assert predictor.container_concurrency == 3
    assert predictor.logger == PayloadLogger(
        "http://sink", "request", inference_service="iris", namespace="ns", component="predictor"
    )


def test_the_logger_names_its_service_and_resolves_metadata_annotations():
    service = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"},
                       "logger": {"url": "http://sink", "metadataHeaders": ["X-Team"],
                                  "metadataAnnotations": ["team", "absent"],
                                  "storage": {"path": "/logs"}}}},
        annotations={"team": "fraud", "other": "x"},
    )  # fmt: skip
    logger = service.components["predictor"].logger
    assert logger == PayloadLogger(
        "http://sink", "all", metadata_headers=("X-Team",),
        metadata_annotations=(("team", "fraud"),), inference_service="iris", namespace="ns",
        component="predictor", endpoint="default", ignored=("storage",),
    )  # fmt: skip


def test_a_logger_change_is_a_new_revision_and_a_standard_canary_is_its_own_endpoint():
    base = {"predictor": {"sklearn": {"storageUri": "/a"}}}
    logged = {"predictor": {"sklearn": {"storageUri": "/a"}, "logger": {"url": "http://s"}}}
    without, once, twice = desired(base), desired(logged), desired(logged)
    assert without.components["predictor"].fingerprint != once.components["predictor"].fingerprint
    assert once.components["predictor"].fingerprint == twice.components["predictor"].fingerprint
    standard = desired(
        {"predictor": {"name": "main", "sklearn": {"storageUri": "/a"},
                       "logger": {"url": "http://s"}},
         "canary": [{"trafficPercent": 10,
                     "predictor": {"name": "next", "sklearn": {"storageUri": "/b"}}}]},
        annotations={"serving.kserve.io/deploymentMode": "Standard"},
    )  # fmt: skip
    assert standard.components["predictor"].logger.endpoint == "default"
    assert standard.canaries[0].plan.logger.endpoint == "next"


@pytest.mark.parametrize(
    ("resources", "expected"),
    [({"requests": {"memory": "512Mi"}, "limits": {"memory": "1Gi"}}, 512 * 2**20),
     ({"limits": {"memory": "1G"}}, 1e9),
     ({"requests": {"cpu": "1"}}, None),
     (None, None)],
)  # fmt: skip
def test_memory_scaling_reads_the_serving_containers_memory_request_else_limit(resources, expected):
    model: dict[str, Any] = {"modelFormat": {"name": "sklearn"}, "storageUri": "/a"}
    if resources is not None:
        model["resources"] = resources
    predictor = desired({"predictor": {"model": model, "scaleMetric": "memory"}})
    assert predictor.components["predictor"].autoscaling.memory_request_bytes == expected


def test_unknown_format_is_an_error_with_kserves_reason():
    predictor = desired(
        {"predictor": {"model": {"modelFormat": {"name": "paddle"}, "storageUri": "/m"}}}
    ).components["predictor"]
    assert predictor.error is not None and "paddle" in predictor.error
    assert predictor.error_reason == "NoSupportingRuntime"


def test_a_model_without_storage_is_a_multi_model_server_with_its_memory_as_budget():
    resources = {"requests": {"memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    predictor = desired({"predictor": {"sklearn": {"resources": resources}}})
    server = predictor.components["predictor"].workload
    assert isinstance(server, ModelServer) and server.is_multi_model
    assert server.storage_uri == "" and server.memory_budget_bytes == 512 * 2**20


def test_a_hugging_face_model_without_storage_uri_is_an_invalid_spec():
    # KServe's IsMMSPredictor never counts Hugging Face; its runtime is not multiModel.
    model = {"modelFormat": {"name": "huggingface"}}
    predictor = desired({"predictor": {"model": model}}).components["predictor"]
    assert predictor.error_reason == "InvalidSpec" and "storageUri" in (predictor.error or "")


def test_transformer_container_links_to_its_predictor_as_data():
    result = desired(
        {
            "predictor": {"sklearn": {"storageUri": "/m", "protocolVersion": "v2"}},
            "transformer": {
                "containers": [
                    {"name": "kserve-container", "image": "me/t:1",
                     "command": ["python", "t.py"], "args": ["--feast_url", "x"],
                     "workingDir": "/w",
                     "env": [{"name": "A", "value": "1"},
                             {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}
                ]
            },
        }
    )  # fmt: skip
    transformer = result.components["transformer"]
    assert result.entry == "transformer"
    assert transformer.workload == plan.CustomContainer(
        command=("python", "t.py"), args=("--feast_url", "x"), image="me/t:1", working_dir="/w"
    )
    assert transformer.predictor == plan.PredictorLink("ns", "iris", "v2")
    assert transformer.env[0] == plan.EnvVar("A", "1")
    assert transformer.env[1].name == "S" and transformer.env[1].value_from is not None


def test_a_namespaced_runtime_wins_over_the_defaults():
    mine = parse_runtimes(
        """
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: my-sklearn}
spec:
  supportedModelFormats: [{name: sklearn, version: "1", autoSelect: true}]
  containers: [{name: kserve-container, image: me/sklearn:1}]
"""
    )
    predictor = desired(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn", "version": "1"},
                                 "storageUri": "/m"}}},
        [*RUNTIMES, *mine],
    ).components["predictor"]  # fmt: skip
    assert predictor.runtime == "my-sklearn" and not predictor.is_cluster_runtime
    assert isinstance(predictor.workload, plan.ModelServer)
    assert predictor.workload.ksrv_runtime is None
    assert predictor.workload.model_format == "sklearn:1"


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_explicit_runtime_and_protocol_are_honoured(protocol):
    predictor = desired(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "runtime": "ksrv-sklearn",
                                 "protocolVersion": protocol, "storageUri": "/m"}}}
    ).components["predictor"]  # fmt: skip
    assert predictor.runtime == "ksrv-sklearn" and predictor.protocol == protocol


def test_kserves_own_runtime_names_are_served_by_ksrvs_runtimes():
    predictor = desired(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                 "runtime": "kserve-sklearnserver", "storageUri": "/m"}}}
    ).components["predictor"]  # fmt: skip
    assert predictor.error is None and predictor.runtime == "ksrv-sklearn"
    assert any("kserve-sklearnserver" in note for note in predictor.notes)


def test_standard_mode_canaries_are_said():
    result = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}},
         "canary": [{"predictor": {"name": "c", "sklearn": {"storageUri": "/b"}},
                     "trafficPercent": 10}]}
    )  # fmt: skip
    assert result.notes and result.notes[0].startswith("spec.canary:")


def test_the_batcher_is_data_with_kserves_default_size():
    sized = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "batcher": {"maxBatchSize": 4}}}
    ).components["predictor"]
    assert sized.batcher == plan.Batcher(4, max_latency_ms=5000)  # KServe's default wait
    defaulted = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "batcher": {"maxLatency": 500}}}
    ).components["predictor"]
    assert defaulted.batcher == plan.Batcher(32, max_latency_ms=500)
    assert defaulted.fingerprint != sized.fingerprint


def test_whether_the_runtime_merges_requests_is_data():
    torch = desired(
        {"predictor": {"model": {"modelFormat": {"name": "pytorch"}, "storageUri": "/a"}}}
    ).components["predictor"]
    assert isinstance(torch.workload, plan.ModelServer)
    assert torch.workload.merges_requests is True
    pmml = desired({"predictor": {"pmml": {"storageUri": "/a"}}}).components["predictor"]
    assert isinstance(pmml.workload, plan.ModelServer)
    assert pmml.workload.merges_requests is False


MODE = "serving.kserve.io/deploymentMode"
TAGS = "serving.kserve.io/enable-tag-routing"


@pytest.mark.parametrize(
    ("annotations", "component_annotations", "canary", "is_tagged"),
    [
        ({}, {}, 20, False),  # the local default is serverless: the split is carried out
        ({MODE: "Knative"}, {}, 20, False),
        ({MODE: "Serverless"}, {}, 20, False),  # the legacy spelling, rewritten
        ({TAGS: "true"}, {}, 20, True),
        ({}, {TAGS: "true"}, 20, True),  # on the component, as KServe merges them
        ({TAGS: "false"}, {}, 20, False),
        ({MODE: "Standard", TAGS: "true"}, {}, None, False),  # ignored there, as in KServe
        ({MODE: "RawDeployment"}, {}, None, False),
    ],
)
def test_canary_percent_and_tag_routing_follow_the_deployment_mode(
    annotations, component_annotations, canary, is_tagged
):
    predictor = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "canaryTrafficPercent": 20,
                       "annotations": component_annotations}},
        annotations=annotations,
    ).components["predictor"]  # fmt: skip
    assert predictor.canary_percent == canary
    assert predictor.enable_tag_routing is is_tagged


def test_standard_mode_canaries_are_planned_as_their_own_revision_sets():
    result = desired(
        {"predictor": {"name": "stable", "minReplicas": 2, "sklearn": {"storageUri": "/a"}},
         "canary": [{"predictor": {"name": "c1", "sklearn": {"storageUri": "/b"}},
                     "trafficPercent": 20}]},
        annotations={MODE: "Standard"},
    )  # fmt: skip
    assert result.notes == () and result.predictor_set == "stable-predictor"
    (canary,) = result.canaries
    assert (canary.name, canary.traffic_percent, canary.revision_set) == (
        "c1", 20, "c1-predictor"
    )  # fmt: skip
    assert isinstance(canary.plan.workload, plan.ModelServer)
    assert canary.plan.workload.storage_uri == "/b"
    assert canary.plan.autoscaling.min_replicas == 1  # ceil(2 * 20 / 100)
    # Promoted by name, with the canary's model: the same revision identity, so no restart.
    promoted = desired(
        {"predictor": {"name": "c1", "minReplicas": 2, "sklearn": {"storageUri": "/b"}}},
        annotations={MODE: "Standard"},
    )  # fmt: skip
    assert promoted.predictor_set == "c1-predictor"
    assert promoted.components["predictor"].fingerprint == canary.plan.fingerprint
