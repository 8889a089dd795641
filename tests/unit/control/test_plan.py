"""plan.desired_state: InferenceService documents -> what each component's replicas run."""

from __future__ import annotations

from typing import Any

import pytest

from ksrv.api import default_runtimes
from ksrv.api.serving_runtime import parse_runtimes
from ksrv.control import plan

RUNTIMES = default_runtimes.default_runtimes()
GATEWAY = "127.0.0.1:8080"


def isvc(spec: dict[str, Any], name: str = "iris", namespace: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def desired(spec: dict[str, Any], runtimes=RUNTIMES) -> plan.ServicePlan:
    return plan.desired_state(isvc(spec), runtimes, gateway=GATEWAY, python="PY")


def test_model_spec_runs_ksrv_serve_with_the_selected_runtime():
    result = desired(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}}
    )
    predictor = result.components["predictor"]
    assert predictor.command == (
        "PY", "-m", "ksrv.cli.main", "serve", "--model-name", "iris", "--model-format",
        "sklearn", "--storage-uri", "gs://b/m", "--http-port", "{http_port}",
        "--grpc-port", "{grpc_port}",
    )  # fmt: skip
    assert predictor.runtime == "ksrv-sklearn" and predictor.is_cluster_runtime
    assert predictor.error is None and predictor.replicas == 1
    assert result.entry == "predictor"


def test_legacy_framework_spec_is_read_as_a_model_spec():
    result = desired({"predictor": {"xgboost": {"storageUri": "/m", "protocolVersion": "v2"}}})
    predictor = result.components["predictor"]
    assert "--model-format" in predictor.command and "xgboost" in predictor.command
    assert predictor.protocol == "v2"


def test_fingerprint_changes_with_the_model_not_with_replicas():
    first = desired({"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 1}})
    scaled = desired({"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 3}})
    moved = desired({"predictor": {"sklearn": {"storageUri": "/b"}}})
    fingerprint = first.components["predictor"].fingerprint
    assert scaled.components["predictor"].fingerprint == fingerprint
    assert scaled.components["predictor"].replicas == 3
    assert moved.components["predictor"].fingerprint != fingerprint


def test_bounds_timeout_and_canary_come_from_the_component():
    predictor = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 0, "maxReplicas": 4,
                       "timeout": 5, "canaryTrafficPercent": 20}}
    ).components["predictor"]  # fmt: skip
    assert (predictor.replicas, predictor.min_replicas, predictor.max_replicas) == (1, 0, 4)
    assert predictor.timeout_s == 5.0 and predictor.canary_percent == 20
    assert any("scale to zero" in note for note in predictor.notes)


def test_unknown_format_is_an_error_with_kserves_reason():
    predictor = desired(
        {"predictor": {"model": {"modelFormat": {"name": "paddle"}, "storageUri": "/m"}}}
    ).components["predictor"]
    assert predictor.error is not None and "paddle" in predictor.error
    assert predictor.error_reason == "NoSupportingRuntime"


def test_missing_storage_uri_is_an_invalid_spec():
    predictor = desired({"predictor": {"sklearn": {}}}).components["predictor"]
    assert predictor.error_reason == "InvalidSpec" and "storageUri" in (predictor.error or "")


def test_transformer_container_runs_its_command_with_kserves_arguments():
    result = desired(
        {
            "predictor": {"sklearn": {"storageUri": "/m", "protocolVersion": "v2"}},
            "transformer": {
                "containers": [
                    {"name": "kserve-container", "image": "me/t:1",
                     "command": ["python", "t.py"], "args": ["--feast_url", "x"],
                     "env": [{"name": "A", "value": "1"},
                             {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}
                ]
            },
        }
    )  # fmt: skip
    transformer = result.components["transformer"]
    assert result.entry == "transformer"
    assert transformer.command == (
        "PY", "t.py", "--feast_url", "x", "--model_name", "iris",
        "--predictor_host", "127.0.0.1:8080/serving/ns/iris-predictor",
        "--predictor_protocol", "v2", "--http_port", "{http_port}",
        "--grpc_port", "{grpc_port}", "--host", "127.0.0.1",
    )  # fmt: skip
    assert transformer.env == (("A", "1"),)
    assert any("me/t:1" in note for note in transformer.notes)


def test_ksrv_command_in_a_container_uses_this_ksrv_and_its_option_spelling():
    explainer = desired(
        {
            "predictor": {"sklearn": {"storageUri": "/m"}},
            "explainer": {"containers": [{"command": ["ksrv", "serve", "--explainer", "shap"]}]},
        }
    ).components["explainer"]
    assert explainer.command[:6] == ("PY", "-m", "ksrv.cli.main", "serve", "--explainer", "shap")
    assert "--predictor-host" in explainer.command and "--model-name" in explainer.command


def test_image_only_container_cannot_run_locally():
    predictor = desired({"predictor": {"containers": [{"image": "me/model:1"}]}}).components[
        "predictor"
    ]
    assert predictor.error_reason == "InvalidSpec"
    assert "me/model:1" in (predictor.error or "") and "command" in (predictor.error or "")


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
    assert any("my-sklearn" in note for note in predictor.notes)


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


def test_fields_not_carried_out_locally_yet_are_said():
    result = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "maxReplicas": 3,
                       "logger": {"mode": "all"}},
         "canary": [{"name": "c", "trafficPercent": 10}]}
    )  # fmt: skip
    notes = " | ".join(result.components["predictor"].notes)
    assert "spec.predictor.maxReplicas: autoscaling" in notes
    assert "spec.predictor.logger" in notes
    assert result.notes and result.notes[0].startswith("spec.canary:")


def test_the_batcher_sets_the_replicas_max_batch_size():
    predictor = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "batcher": {"maxBatchSize": 4}}}
    ).components["predictor"]
    assert predictor.command[-2:] == ("--max-batch-size", "4")
    assert not any("batcher" in note for note in predictor.notes)
    defaulted = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "batcher": {"maxLatency": 500}}}
    ).components["predictor"]
    assert defaulted.command[-2:] == ("--max-batch-size", "32")  # KServe's default
    assert any("maxLatency and timeout are not used" in note for note in defaulted.notes)


def test_a_batcher_that_cannot_merge_is_said():
    torch = desired(
        {"predictor": {"model": {"modelFormat": {"name": "pytorch"}, "storageUri": "/a"},
                       "batcher": {"maxBatchSize": 8}}}
    ).components["predictor"]  # fmt: skip
    assert any("pytorch runtime answers each request on its own" in n for n in torch.notes)
    custom = desired(
        {"predictor": {"containers": [{"command": ["python", "m.py"]}],
                       "batcher": {"maxBatchSize": 8}}}
    ).components["predictor"]  # fmt: skip
    assert "--max-batch-size" not in custom.command
    assert any("custom container's requests are not merged" in n for n in custom.notes)


def test_working_dir_is_entered_before_the_command_runs(tmp_path):
    (tmp_path / "hello.py").write_text("import os; print(os.getcwd())")
    transformer = desired(
        {"predictor": {"sklearn": {"storageUri": "/m"}},
         "transformer": {"containers": [{"command": ["python", "hello.py"],
                                         "workingDir": str(tmp_path)}]}}
    ).components["transformer"]  # fmt: skip
    import subprocess
    import sys

    argv = [sys.executable if arg == "PY" else arg for arg in transformer.command]
    done = subprocess.run(argv[:6], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == str(tmp_path), done.stderr


def test_replicas_are_capped_on_one_machine():
    predictor = desired(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 100000}}
    ).components["predictor"]
    assert predictor.replicas == plan.LOCAL_MAX_REPLICAS
    assert any("capped" in note for note in predictor.notes)
