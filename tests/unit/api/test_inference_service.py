"""InferenceService: KServe's defaulting, each webhook rule (naming its field), and accessors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ksrv.api import names, resources
from ksrv.api.inference_service import InferenceService, ModelSpec
from ksrv.errors import ResourceInvalid

SKLEARN: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "sklearn-iris", "namespace": "default"},
    "spec": {
        "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}
    },
}


def isvc(**changes: Any) -> dict[str, Any]:
    """SKLEARN with dotted-path changes applied: isvc(**{"spec.predictor.minReplicas": -1})."""
    document = copy.deepcopy(SKLEARN)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = document
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return document


def load_isvc(document: dict[str, Any]) -> InferenceService:
    resource = resources.load(document)
    assert isinstance(resource, InferenceService)
    return resource


def error_paths(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document)
    return dict(caught.value.field_errors)


# -- defaulting ---------------------------------------------------------------------------


def test_sklearn_framework_spec_becomes_a_model_with_format_sklearn_keeping_its_fields():
    document = isvc(
        **{
            "spec.predictor": {
                "sklearn": {
                    "storageUri": "gs://b/m",
                    "runtimeVersion": "1.5",
                    "protocolVersion": "v2",
                    "args": ["--workers=2"],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"cpu": "1"}},
                }
            }
        }
    )
    predictor = load_isvc(document).spec.predictor
    assert predictor.sklearn is None
    model = predictor.model
    assert model is not None and model.model_format is not None
    assert (model.model_format.name, model.model_format.version) == ("sklearn", None)
    assert (model.storage_uri, model.runtime_version, model.protocol_version) == (
        "gs://b/m",
        "1.5",
        "v2",
    )
    assert model.args == ["--workers=2"]
    assert model.env_value("A") == "1"
    assert "sklearn" not in load_isvc(document).to_dict()["spec"]["predictor"]


@pytest.mark.parametrize(
    "framework",
    ["xgboost", "tensorflow", "pytorch", "onnx", "huggingface", "pmml", "lightgbm", "paddle"],
)
def test_each_framework_spec_converts_to_the_format_of_the_same_name(framework):
    document = isvc(**{"spec.predictor": {framework: {"storageUri": "gs://b/m"}}})
    model = load_isvc(document).spec.predictor.model
    assert model is not None and model.model_format is not None
    assert model.model_format.name == framework
    assert model.protocol_version is None


def test_triton_converts_to_format_triton_with_protocol_v2():
    document = isvc(**{"spec.predictor": {"triton": {"storageUri": "gs://b/m"}}})
    model = load_isvc(document).spec.predictor.model
    assert model is not None and model.model_format is not None
    assert (model.model_format.name, model.protocol_version) == ("triton", "v2")


def test_triton_keeps_a_protocol_the_user_chose():
    document = isvc(
        **{"spec.predictor": {"triton": {"storageUri": "gs://b/m", "protocolVersion": "grpc-v2"}}}
    )
    model = load_isvc(document).spec.predictor.model
    assert model is not None and model.protocol_version == "grpc-v2"


def test_model_with_triton_format_defaults_to_v2():
    document = isvc(**{"spec.predictor.model.modelFormat": {"name": "triton"}})
    model = load_isvc(document).spec.predictor.model
    assert model is not None and model.protocol_version == "v2"


def test_min_replicas_defaults_to_one_on_every_component_but_keeps_zero():
    document = isvc(
        **{
            "spec.transformer": {"containers": [{"name": "kserve-container", "image": "t"}]},
            "spec.explainer": {"minReplicas": 0, "containers": [{"name": "e", "image": "e"}]},
        }
    )
    components = load_isvc(document).components()
    assert [c.min_replicas for c in components.values()] == [1, 1, 0]
    assert load_isvc(document).to_dict()["spec"]["predictor"]["minReplicas"] == 1


@pytest.mark.parametrize(
    ("given", "stored"), [("Serverless", "Knative"), ("RawDeployment", "Standard")]
)
def test_legacy_deployment_modes_are_rewritten(given, stored):
    document = isvc(**{"metadata.annotations": {"serving.kserve.io/deploymentMode": given}})
    resource = load_isvc(document)
    assert resource.deployment_mode == stored
    assert resource.to_dict()["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": stored
    }


def test_no_deployment_mode_is_stamped_when_none_is_given():
    assert load_isvc(isvc()).deployment_mode is None


# -- accessors ----------------------------------------------------------------------------


def test_components_lists_the_components_present_predictor_first():
    document = isvc(**{"spec.transformer": {"containers": [{"name": "t", "image": "t"}]}})
    assert list(load_isvc(document).components()) == ["predictor", "transformer"]


def test_model_predictor_main_container_is_its_model_spec():
    predictor = load_isvc(isvc()).spec.predictor
    assert isinstance(predictor.main_container, ModelSpec)
    assert predictor.model_spec is predictor.main_container
    assert predictor.implementation == "model"
    assert predictor.storage_uri == "gs://b/m"


def test_custom_main_container_is_the_one_named_kserve_container_else_the_first():
    containers = [
        {"name": "sidecar", "image": "s"},
        {
            "name": "kserve-container",
            "image": "main",
            "env": [{"name": "STORAGE_URI", "value": "s3://b/m"}],
        },
    ]
    predictor = load_isvc(isvc(**{"spec.predictor": {"containers": containers}})).spec.predictor
    assert predictor.model_spec is None
    assert predictor.main_container is not None and predictor.main_container.image == "main"
    assert predictor.storage_uri == "s3://b/m"
    first = load_isvc(isvc(**{"spec.predictor": {"containers": containers[:1]}})).spec.predictor
    assert first.main_container is not None and first.main_container.name == "sidecar"
    assert first.implementation == "containers"


def test_extension_fields_are_snake_case_attributes():
    predictor = load_isvc(
        isvc(
            **{
                "spec.predictor.minReplicas": 2,
                "spec.predictor.maxReplicas": 5,
                "spec.predictor.timeout": 30,
                "spec.predictor.canaryTrafficPercent": 10,
                "spec.predictor.containerConcurrency": 4,
                "spec.predictor.scaleMetric": "rps",
                "spec.predictor.scaleTarget": 7,
                "spec.predictor.logger": {"mode": "request", "url": "http://sink"},
                "spec.predictor.batcher": {"maxBatchSize": 32, "maxLatency": 500},
            }
        )
    ).spec.predictor
    assert (predictor.min_replicas, predictor.max_replicas, predictor.timeout) == (2, 5, 30)
    assert (predictor.canary_traffic_percent, predictor.container_concurrency) == (10, 4)
    assert (predictor.scale_metric, predictor.scale_target) == ("rps", 7)
    assert predictor.logger is not None and predictor.logger.mode == "request"
    assert predictor.batcher is not None and predictor.batcher.max_batch_size == 32


def test_explainer_art_is_its_implementation_and_main_container():
    document = isvc(
        **{"spec.explainer": {"art": {"type": "SquareAttack", "storageUri": "gs://b/a"}}}
    )
    explainer = load_isvc(document).components()["explainer"]
    assert explainer.implementation == "art"
    assert explainer.storage_uri == "gs://b/a"


# -- validation: every rule names its field -----------------------------------------------

FRAMEWORK_LIST = (
    "sklearn, xgboost, tensorflow, pytorch, triton, onnx, huggingface, pmml, lightgbm, paddle, "
    "model, containers"
)

RULES = [
    ({"metadata.name": "1-starts-with-digit"}, "metadata.name", "starting with a letter"),
    ({"metadata.name": "Upper"}, "metadata.name", "lowercase letters"),
    ({"spec.predictor.minReplicas": -1}, "spec.predictor.minReplicas", "must be >= 0"),
    ({"spec.predictor.maxReplicas": -1}, "spec.predictor.maxReplicas", "must be >= 0"),
    (
        {"spec.predictor.minReplicas": 3, "spec.predictor.maxReplicas": 2},
        "spec.predictor.minReplicas",
        "must be <= maxReplicas",
    ),
    ({"spec.predictor.containerConcurrency": -1}, "spec.predictor.containerConcurrency", ">= 0"),
    (
        {"spec.predictor.canaryTrafficPercent": 101},
        "spec.predictor.canaryTrafficPercent",
        "0 and 100",
    ),
    (
        {"spec.predictor.canaryTrafficPercent": -1},
        "spec.predictor.canaryTrafficPercent",
        "0 and 100",
    ),
    ({"spec.predictor.batcher": {"maxLatency": -1}}, "spec.predictor.batcher.maxLatency", ">= 0"),
    ({"spec.predictor.logger": {"mode": "everything"}}, "spec.predictor.logger.mode", "'all'"),
    ({"spec.predictor.scaleMetric": "qps"}, "spec.predictor.scaleMetric", "'rps'"),
    ({"spec.predictor.minReplicas": "1"}, "spec.predictor.minReplicas", "valid integer"),
    ({"spec.predictor.name": "Bad_Name"}, "spec.predictor.name", "pattern"),
    (
        {"spec.predictor.model.resources": {"requests": {"cpu": 0.1}}},
        "spec.predictor.model.resources.requests.cpu",
        "quantity",
    ),
    (
        {"spec.predictor.model.resources": {"limits": {"memory": "lots"}}},
        "spec.predictor.model.resources.limits.memory",
        "not a quantity",
    ),
    (
        {"spec.predictor.model.storageUri": "ftp://host/model"},
        "spec.predictor.model.storageUri",
        "must start with one of",
    ),
    (
        {"spec.predictor.storageUris": [{"uri": "gs://b/m"}]},
        "spec.predictor.storageUris",
        "exclusive",
    ),
    (
        {"spec.predictor.sklearn": {"storageUri": "gs://b/m"}},
        "spec.predictor",
        f"exactly one of [{FRAMEWORK_LIST}] must be specified in PredictorSpec",
    ),
    ({"spec.predictor": {}}, "spec.predictor", "must be specified in PredictorSpec"),
    (
        {"spec.transformer": {"minReplicas": 1}},
        "spec.transformer",
        "exactly one of [containers] must be specified in TransformerSpec",
    ),
    (
        {"spec.explainer": {"custom": {}}},
        "spec.explainer",
        "exactly one of [art, containers] must be specified in ExplainerSpec",
    ),
    (
        {"metadata.annotations": {"serving.kserve.io/deploymentMode": "Fancy"}},
        "metadata.annotations[serving.kserve.io/deploymentMode]",
        "is not one of",
    ),
    (
        {"metadata.annotations": {"serving.kserve.io/autoscalerClass": "magic"}},
        "metadata.annotations[serving.kserve.io/autoscalerClass]",
        "'hpa', 'keda', 'external', 'none'",
    ),
    (
        {
            "metadata.annotations": {"serving.kserve.io/deploymentMode": "Standard"},
            "spec.predictor.scaleMetric": "concurrency",
        },
        "spec.predictor.scaleMetric",
        "hpa scales on cpu or memory",
    ),
    (
        {
            "metadata.annotations": {"serving.kserve.io/autoscalerClass": "hpa"},
            "spec.predictor.scaleMetric": "cpu",
            "spec.predictor.scaleTarget": 150,
        },
        "spec.predictor.scaleTarget",
        "1..100",
    ),
    (
        {
            "metadata.annotations": {"serving.kserve.io/deploymentMode": "Knative"},
            "spec.predictor.scaleMetric": "memory",
        },
        "spec.predictor.scaleMetric",
        "needs hpa",
    ),
    (
        {
            "metadata.annotations": {"serving.kserve.io/deploymentMode": "Knative"},
            "spec.predictor.deploymentStrategy": {"type": "Recreate"},
        },
        "spec.predictor.deploymentStrategy",
        "Standard mode",
    ),
    (
        {
            "spec.predictor.autoScaling": {
                "metrics": [{"type": "External", "external": {"metric": {}}}]
            }
        },
        "spec.predictor.autoScaling.metrics[0].external.metric.query",
        "required",
    ),
    (
        {
            "spec.predictor.model": {"modelFormat": {"name": "sklearn"}},
            "spec.predictor.storageUris": [
                {"uri": "gs://b/a", "mountPath": "/a"},
                {"uri": "gs://b/b", "mountPath": "/b"},
            ],
        },
        "spec.predictor.storageUris",
        "common parent",
    ),
    (
        {
            "spec.predictor.model": {"modelFormat": {"name": "sklearn"}},
            "spec.predictor.storageUris": [{"uri": "gs://b/a", "mountPath": "/mnt/../etc"}],
        },
        "spec.predictor.storageUris[0].mountPath",
        "'..'",
    ),
    (
        {"spec.predictor.storageUris": [{"uri": "gs://b/a", "mountPath": "relative"}]},
        "spec.predictor.storageUris[0].mountPath",
        "pattern",
    ),
    (
        {
            "spec.predictor.containers": [
                {"name": "transformer-container", "env": [{"name": "STORAGE_URI", "value": "x"}]}
            ]
        },
        "spec.predictor.containers[0].env",
        "STORAGE_URI",
    ),
    ({"spec": None}, "spec", "valid dictionary"),
    (
        {
            "spec.predictor": {
                "containers": [
                    {"name": "sidecar"},
                    {
                        "name": "kserve-container",
                        "env": [{"name": "STORAGE_URI", "value": "ftp://x"}],
                    },
                ]
            }
        },
        "spec.predictor.containers[1].env",
        "must start with one of",
    ),
    (
        {"spec.transformer": {"containers": [{"image": "no-name"}]}},
        "spec.transformer.containers[0].name",
        "required",
    ),
]


@pytest.mark.parametrize(
    ("changes", "path", "message"), RULES, ids=[rule[1] + ":" + rule[2] for rule in RULES]
)
def test_webhook_and_schema_rules_name_the_field(changes, path, message):
    errors = error_paths(isvc(**changes))
    assert path in errors, errors
    assert message in errors[path]


def test_the_error_message_names_kind_name_and_every_path():
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(isvc(**{"spec.predictor.minReplicas": -1, "spec.predictor.maxReplicas": -2}))
    message = str(caught.value)
    assert message.startswith("InferenceService default/sklearn-iris is invalid: ")
    assert "spec.predictor.minReplicas: must be >= 0" in message
    assert "spec.predictor.maxReplicas: must be >= 0" in message
    assert caught.value.kind == "resource_invalid"


@pytest.mark.parametrize(
    "uri",
    [
        "gs://b/m", "s3://b/m", "pvc://claim/m", "file:///m", "https://h/m.zip", "http://h/m",
        "hdfs://h/m", "webhdfs://h/m", "oci://r/i:t", "hf://org/model", "modelscope://org/m",
        "https://acct.blob.core.windows.net/c/m", "/mnt/local/model", "relative/model",
    ],
)  # fmt: skip
def test_storage_uris_kserve_accepts_load(uri):
    assert (
        load_isvc(isvc(**{"spec.predictor.model.storageUri": uri})).spec.predictor.storage_uri
        == uri
    )


def test_max_replicas_zero_means_unbounded():
    load_isvc(isvc(**{"spec.predictor.minReplicas": 3, "spec.predictor.maxReplicas": 0}))


def test_model_with_a_collocated_transformer_container_is_one_implementation():
    document = isvc(
        **{"spec.predictor.containers": [{"name": "transformer-container", "image": "t"}]}
    )
    assert load_isvc(document).spec.predictor.implementation == "model"


# -- canary (spec.canary[], Standard mode) --------------------------------------------------


def canary(
    *entries: dict[str, Any], mode: str = "Standard", stable_min: int | None = None
) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "metadata.annotations": {"serving.kserve.io/deploymentMode": mode},
        "spec.canary": list(entries),
    }
    if stable_min is not None:
        changes["spec.predictor.minReplicas"] = stable_min
    return isvc(**changes)


def entry(name: str | None, percent: int, **predictor: Any) -> dict[str, Any]:
    spec = {"model": {"storageUri": "gs://b/v2"}, **predictor}
    if name is not None:
        spec["name"] = name
    return {"predictor": spec, "trafficPercent": percent}


def test_a_named_canary_in_standard_mode_loads():
    resource = load_isvc(canary(entry("v2", 10)))
    assert resource.spec.canary is not None
    assert resource.spec.canary[0].predictor.name == "v2"
    assert resource.spec.canary[0].predictor.min_replicas is None  # no default on an overlay


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        (canary(entry("v2", 10), mode="Knative"), "spec.canary", "Standard mode only"),
        (canary(entry(None, 10)), "spec.canary[0].predictor.name", "required"),
        (canary(entry("v2", 10), entry("v2", 10)), "spec.canary[1].predictor.name", "used twice"),
        (canary(entry("v2", 60), entry("v3", 50)), "spec.canary", "sum to 110"),
        (canary(entry("v2", 101)), "spec.canary[0].trafficPercent", "less than or equal to 100"),
        (
            canary(entry("v2", 10, scaleMetric="cpu")),
            "spec.canary[0].predictor.scaleMetric",
            "not allowed",
        ),
        (
            canary(entry("v2", 10, autoScaling={})),
            "spec.canary[0].predictor.autoScaling",
            "not allowed",
        ),
        (
            canary(entry("v2", 10, workerSpec={})),
            "spec.canary[0].predictor.workerSpec",
            "not allowed",
        ),
        (
            canary(entry("v2", 10, minReplicas=3), stable_min=2),
            "spec.canary[0].predictor.minReplicas",
            "stable minReplicas (2)",
        ),
    ],
)
def test_canary_rules_name_the_field(document, path, message):
    errors = error_paths(document)
    assert path in errors, errors
    assert message in errors[path]


def test_names_longer_than_a_dns_label_are_refused():
    assert error_paths(isvc(**{"metadata.name": "a" * 64})) == {
        "metadata.name": f"{'a' * 64!r} is not valid: {names.DNS_1035_RULE}"
    }
    load_isvc(isvc(**{"metadata.name": "a" * 63}))


@pytest.mark.parametrize("namespace", ["Prod", "a" * 64, "../etc", "-x"])
def test_namespaces_must_be_dns_labels(namespace):
    assert "metadata.namespace" in error_paths(isvc(**{"metadata.namespace": namespace}))


def test_strict_loading_names_each_unknown_field_once_with_the_closest_known_one():
    document = isvc(**{"spec.explainer": {"custom": {}}, "spec.predictor.minReplica": 2})
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document, is_strict=True)
    assert caught.value.field_errors == [
        ("spec.predictor.minReplica", "unknown field; did you mean minReplicas?"),
        ("spec.explainer.custom", "unknown field"),
        ("spec.explainer", "exactly one of [art, containers] must be specified in ExplainerSpec"),
    ]
