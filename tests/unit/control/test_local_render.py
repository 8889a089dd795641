"""local_render: a neutral component plan -> local argv, env, replica count and notes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ksrv.api.serving_runtime import parse_runtimes
from ksrv.control import plan
from ksrv.control.platforms import local_render
from ksrv.control.platforms.base import Rendering
from ksrv.control.platforms.local import LocalPlatform
from ksrv.errors import ResourceInvalid
from tests.unit.control.test_plan import RUNTIMES, desired, isvc

PLATFORM = LocalPlatform(Path("/nonexistent"), python="PY", gateway="127.0.0.1:8080")


def rendered(spec: dict[str, Any], component: str = "predictor") -> Rendering:
    service = desired(spec)
    return PLATFORM.render("ns", "iris", service.components[component])


def test_a_model_server_runs_ksrv_serve_with_port_placeholders():
    spec = rendered(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}}
    ).spec
    assert spec.command == (
        "PY", "-m", "ksrv.cli.main", "serve", "--model-name", "iris", "--model-format",
        "sklearn", "--storage-uri", "gs://b/m", "--http-port", "{http_port}",
        "--grpc-port", "{grpc_port}",
    )  # fmt: skip
    assert spec.replicas == 1 and spec.readiness_path == "/v2/health/ready"
    assert spec.is_forkable  # a fork server may start it
    assert (spec.namespace, spec.isvc, spec.component, spec.revision) == (
        "ns", "iris", "predictor", ""
    )  # fmt: skip


def test_transformer_container_runs_its_command_with_kserves_arguments():
    rendering = rendered(
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
        },
        "transformer",
    )  # fmt: skip
    assert rendering.spec.command == (
        "PY", "t.py", "--feast_url", "x", "--model_name", "iris",
        "--predictor_host", "127.0.0.1:8080/serving/ns/iris-predictor",
        "--predictor_protocol", "v2", "--http_port", "{http_port}",
        "--grpc_port", "{grpc_port}", "--host", "127.0.0.1",
    )  # fmt: skip
    assert dict(rendering.spec.env) == {"A": "1"}
    assert any("me/t:1" in note for note in rendering.notes)
    assert not rendering.spec.is_forkable  # a custom container runs as its own process


def test_ksrv_command_in_a_container_uses_this_ksrv_and_its_option_spelling():
    command = rendered(
        {
            "predictor": {"sklearn": {"storageUri": "/m"}},
            "explainer": {
                "containers": [{"name": "e", "command": ["ksrv", "serve", "--explainer", "shap"]}]
            },
        },
        "explainer",
    ).spec.command
    assert command[:6] == ("PY", "-m", "ksrv.cli.main", "serve", "--explainer", "shap")
    assert "--predictor-host" in command and "--model-name" in command
    # Even `ksrv serve` as a container's command is spawned: the container is the user's.
    assert not rendered(
        {
            "predictor": {"sklearn": {"storageUri": "/m"}},
            "explainer": {"containers": [{"name": "e", "command": ["ksrv", "serve"]}]},
        },
        "explainer",
    ).spec.is_forkable


def test_image_only_container_cannot_run_locally():
    with pytest.raises(ResourceInvalid) as raised:
        rendered({"predictor": {"containers": [{"name": "c", "image": "me/model:1"}]}})
    assert raised.value.reason == "InvalidSpec"
    assert "me/model:1" in str(raised.value) and "command" in str(raised.value)


def test_a_runtime_that_is_an_image_is_said_to_be_stood_in_for():
    mine = parse_runtimes(
        """
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: my-sklearn}
spec:
  supportedModelFormats: [{name: sklearn, autoSelect: true}]
  containers: [{name: kserve-container, image: me/sklearn:1}]
"""
    )
    service = plan.desired_state(
        isvc({"predictor": {"sklearn": {"storageUri": "/m"}}}), [*RUNTIMES, *mine]
    )
    notes = PLATFORM.render("ns", "iris", service.components["predictor"]).notes
    assert any("my-sklearn runs a container image" in note for note in notes)


def test_fields_not_carried_out_locally_yet_are_said_in_order():
    notes = rendered(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "maxReplicas": 3, "minReplicas": 0,
                       "scaleMetric": "memory"}}
    ).notes  # fmt: skip
    joined = " | ".join(notes)
    assert notes[0].startswith("spec.predictor.scaleMetric")
    # The control plane's autoscaler carries out both, and the gateway's activator wakes a
    # revision at zero.
    assert "maxReplicas" not in joined and "minReplicas" not in joined


def test_a_logger_becomes_the_replicas_log_flags_with_kserves_attributes():
    rendering = rendered(
        {"predictor": {"sklearn": {"storageUri": "/a"},
                       "logger": {"url": "http://sink:8000/", "mode": "response",
                                  "metadataHeaders": ["X-Team", "X-User"],
                                  "metadataAnnotations": ["team"]}}},
    )  # fmt: skip
    command = list(rendering.spec.command)
    flags = dict(zip(command[command.index("--log-url") :: 2],
                     command[command.index("--log-url") + 1 :: 2], strict=True))  # fmt: skip
    assert flags == {
        "--log-url": "http://sink:8000/", "--log-mode": "response",
        "--inference-service": "iris", "--namespace": "ns", "--component": "predictor",
        "--endpoint": "default", "--log-metadata-headers": "X-Team,X-User",
    }  # fmt: skip
    assert not any("logger" in note for note in rendering.notes)


def test_a_logger_without_url_goes_to_kserves_default_broker_and_says_so():
    rendering = rendered({"predictor": {"sklearn": {"storageUri": "/a"}, "logger": {}}})
    command = list(rendering.spec.command)
    assert command[command.index("--log-url") + 1] == "http://default-broker"
    assert command[command.index("--log-mode") + 1] == "all"
    assert any(n.startswith("spec.predictor.logger.url is not set") for n in rendering.notes)


def test_a_custom_container_is_logged_only_when_it_runs_ksrv_serve():
    def logged(command: list[str]) -> Rendering:
        container = {"name": "kserve-container", "image": "me/m:1", "command": command}
        return rendered({"predictor": {"containers": [container],
                                       "logger": {"url": "file:///tmp/events"}}})  # fmt: skip

    ksrv = logged(["ksrv", "serve", "m.py:M"])
    assert "--log-url" in ksrv.spec.command and "file:///tmp/events" in ksrv.spec.command
    other = logged(["python", "m.py"])
    assert "--log-url" not in other.spec.command
    assert any(n.startswith("spec.predictor.logger: payloads are logged") for n in other.notes)


def test_the_batcher_sets_the_replicas_batch_size_and_wait():
    sized = rendered(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "batcher": {"maxBatchSize": 4}}}
    )
    assert sized.spec.command[-4:] == ("--max-batch-size", "4", "--max-latency-ms", "5000")
    assert not any("batcher" in note for note in sized.notes)
    defaulted = rendered(
        {"predictor": {"sklearn": {"storageUri": "/a"}, "batcher": {"maxLatency": 500,
                                                                    "timeout": 9}}}
    )  # fmt: skip
    assert defaulted.spec.command[-4:] == ("--max-batch-size", "32", "--max-latency-ms", "500")
    assert [n for n in defaulted.notes if "batcher" in n] == [
        "spec.predictor.batcher: timeout is not used (the component's timeout applies)"
    ]


def test_a_batcher_that_cannot_merge_is_said():
    torch = rendered(
        {"predictor": {"model": {"modelFormat": {"name": "pytorch"}, "storageUri": "/a"},
                       "batcher": {"maxBatchSize": 8}}}
    )  # fmt: skip
    assert not any("batcher" in n for n in torch.notes)
    pmml = rendered({"predictor": {"pmml": {"storageUri": "/a"}, "batcher": {"maxBatchSize": 8}}})
    assert any("pmml runtime answers each request on its own" in n for n in pmml.notes)
    custom = rendered(
        {"predictor": {"containers": [{"name": "c", "command": ["python", "m.py"]}],
                       "batcher": {"maxBatchSize": 8}}}
    )  # fmt: skip
    assert "--max-batch-size" not in custom.spec.command
    assert any("custom container's requests are not merged" in n for n in custom.notes)
    served = rendered(
        {"predictor": {"containers": [{"name": "c", "command": ["ksrv", "serve", "m.py:M"]}],
                       "batcher": {"maxBatchSize": 8, "maxLatency": 5}}}
    )  # fmt: skip
    command = " ".join(served.spec.command)
    assert "--max-batch-size 8" in command and "--max-latency-ms 5" in command
    assert not any("batcher" in n for n in served.notes)


def test_working_dir_is_entered_before_the_command_runs(tmp_path):
    (tmp_path / "hello.py").write_text("import os; print(os.getcwd())")
    command = rendered(
        {"predictor": {"sklearn": {"storageUri": "/m"}},
         "transformer": {"containers": [{"name": "c", "command": ["python", "hello.py"],
                                         "workingDir": str(tmp_path)}]}},
        "transformer",
    ).spec.command  # fmt: skip
    argv = [sys.executable if arg == "PY" else arg for arg in command]
    done = subprocess.run(argv[:6], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == str(tmp_path), done.stderr


def test_replicas_are_capped_on_one_machine():
    rendering = rendered({"predictor": {"sklearn": {"storageUri": "/a"}, "minReplicas": 100000}})
    assert rendering.spec.replicas == local_render.LOCAL_MAX_REPLICAS
    assert any("capped" in note for note in rendering.notes)


def test_status_urls_are_kserves_host_form_and_the_address_the_gateway_path():
    assert PLATFORM.service_url("ns", "iris") == "http://iris-ns.example.com"
    assert PLATFORM.service_url("ns", "iris", "explainer") == "http://iris-explainer-ns.example.com"
    assert PLATFORM.address_url("ns", "iris") == "http://127.0.0.1:8080/serving/ns/iris"
    assert (
        PLATFORM.address_url("ns", "iris", "explainer")
        == "http://127.0.0.1:8080/serving/ns/iris-explainer"
    )


def custom(container: dict[str, Any]) -> list[str]:
    spec = {"predictor": {"containers": [{"name": "kserve-container", **container}]}}
    return ["python3" if arg == "PY" else arg for arg in rendered(spec).spec.command]


def test_a_relative_script_resolves_in_the_working_dir_like_kubernetes(tmp_path):
    (tmp_path / "model.py").write_text("")
    (tmp_path / "serve.sh").write_text("")
    for command in (["python", "model.py"], ["./serve.sh"], ["sh", "-c", "x"]):
        argv = custom({"command": command, "workingDir": str(tmp_path)})
        assert local_render.missing_relative_path(argv, Path("/elsewhere")) is None
        assert local_render.missing_relative_path(custom({"command": command}), tmp_path) is None


@pytest.mark.parametrize(
    ("command", "working_dir", "expected"),
    [
        (["python", "model.py"], None,
         "'model.py' in the container's command is a relative path, resolved against {cwd}, "
         "the directory ksrv runs in, as the container sets no workingDir, and there is no such "
         "file there; give an absolute path or set the container's workingDir to the folder "
         "that holds it"),
        (["./serve.sh"], "app",
         "'./serve.sh' in the container's command is a relative path, resolved against the "
         "container's workingDir {cwd}/app, and there is no such file there; give an absolute "
         "path or set the container's workingDir to the folder that holds it"),
        (["python", "model.py"], "missing", "workingDir 'missing' does not exist (resolved to "
         "{cwd}/missing)"),
    ],
)  # fmt: skip
def test_a_relative_path_that_is_not_there_is_explained(tmp_path, command, working_dir, expected):
    (tmp_path / "app").mkdir()
    container = {"command": command, **({"workingDir": working_dir} if working_dir else {})}
    problem = local_render.missing_relative_path(custom(container), tmp_path)
    assert problem == expected.format(cwd=tmp_path)


def test_absolute_paths_and_modules_are_not_second_guessed(tmp_path):
    for command in (["/nonexistent/serve.sh"], ["python", "-m", "nope"], ["ksrv", "serve"]):
        assert local_render.missing_relative_path(custom({"command": command}), tmp_path) is None
