"""What the local platform's features become on Kubernetes: a multi-model predictor's
models.json (KServe's `model-config` volume at /mnt/configs) and memory budget, a `logger` as
`ksrv serve`'s own flags (the same ones the local renderer passes), and the warnings for what
the objects do not carry out (enable-auth, a logger or TrainedModels on another server).
Every rendered object is validated strictly (`tests.k8s_support.assert_valid`)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ksrv.api import default_runtimes, resources
from ksrv.api.inference_service import InferenceService
from ksrv.cli.main import cli
from ksrv.control import serve_args
from ksrv.control.plan import desired_state
from ksrv.control.platforms import local_render
from ksrv.k8s import render
from ksrv.k8s.config import KNATIVE, STANDARD, ClusterConfig
from tests.k8s_support import assert_valid

AUTH = "serving.kserve.io/enable-auth"
LOGGER = {
    "url": "http://sink.logs/events", "mode": "request",
    "metadataHeaders": ["x-team"], "metadataAnnotations": ["team"],
}  # fmt: skip
MULTI_MODEL = {
    "sklearn": {"resources": {"requests": {"memory": "512Mi"}, "limits": {"memory": "1Gi"}}}
}
TRAINED_MODEL = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "TrainedModel",
    "metadata": {"name": "model1", "namespace": "ml"},
    "spec": {"inferenceService": "iris",
             "model": {"storageUri": "s3://bucket/m1", "framework": "sklearn", "memory": "1Mi"}},
}  # fmt: skip


def isvc(predictor: dict[str, Any], annotations: dict[str, str] | None = None, **more: Any):
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml", "annotations": annotations or {}},
        "spec": {"predictor": predictor, **more},
    }


def rendered(*documents: dict[str, Any], mode: str = STANDARD) -> render.Rendered:
    result = render.render_documents(documents, ClusterConfig(), mode)
    assert result.problems == []
    assert_valid(result.objects)
    return result


def pod(result: render.Rendered, component: str = "predictor") -> dict[str, Any]:
    (workload,) = (
        o for o in result.objects
        if o["kind"] in ("Deployment", "Service") and "template" in o["spec"]
        and o["metadata"]["name"] == f"iris-{component}"
    )  # fmt: skip
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def main_container(spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == "kserve-container")


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.parametrize("mode", [STANDARD, KNATIVE])
def test_a_multi_model_predictor_watches_the_mounted_modelconfig(mode):
    result = rendered(isvc(MULTI_MODEL), TRAINED_MODEL, mode=mode)
    spec = pod(result)
    main = main_container(spec)
    assert flag(main["args"], "--models-config") == "/mnt/configs/models.json"
    assert flag(main["args"], "--memory-budget") == str(512 * 2**20)  # the request
    assert not any(a.startswith("--storage-uri") for a in main["args"])
    assert {"name": "model-config", "configMap": {"name": "modelconfig-iris-0"}} in spec["volumes"]
    assert main["volumeMounts"] == [
        {"name": "model-config", "mountPath": "/mnt/configs", "readOnly": True}
    ]
    config_maps = [o["metadata"]["name"] for o in result.objects if o["kind"] == "ConfigMap"]
    assert config_maps == ["modelconfig-iris-0"]
    assert result.warnings == []


def test_the_budget_is_the_limit_without_a_request_and_absent_without_either():
    limited = {"sklearn": {"resources": {"limits": {"memory": "1Gi"}}}}
    args = main_container(pod(rendered(isvc(limited))))["args"]
    assert flag(args, "--memory-budget") == str(2**30)
    args = main_container(pod(rendered(isvc({"sklearn": {}}))))["args"]
    assert "--models-config" in args and "--memory-budget" not in args


def test_a_single_model_predictor_gets_no_modelconfig():
    single = {"sklearn": {"storageUri": "gs://bucket/iris"}}
    main = main_container(pod(rendered(isvc(single))))
    assert "--models-config" not in main["args"]
    assert all(m["name"] != "model-config" for m in main.get("volumeMounts") or ())


def test_a_logger_becomes_the_same_ksrv_serve_flags_as_locally():
    document = isvc({**MULTI_MODEL, "logger": LOGGER}, {"team": "search"})
    args = main_container(pod(rendered(document)))["args"]
    resource = resources.load(document)
    assert isinstance(resource, InferenceService)
    plan = desired_state(resource, default_runtimes.default_runtimes()).components["predictor"]
    assert plan.logger is not None
    expected = serve_args.logger_args(plan.logger)
    assert args[-len(expected) :] == expected
    assert expected == [
        "--log-url", "http://sink.logs/events", "--log-mode", "request",
        "--inference-service", "iris", "--namespace", "ml", "--component", "predictor",
        "--endpoint", "default", "--log-metadata-headers", "x-team",
        "--log-metadata-annotations", "team=search",
    ]  # fmt: skip
    local = local_render.render(plan, "iris", None, "python", "/state/models.json").command
    assert " ".join(expected) in " ".join(local)


def test_a_logger_without_a_url_goes_to_kserves_default_broker():
    args = main_container(pod(rendered(isvc({**MULTI_MODEL, "logger": {"mode": "all"}}))))["args"]
    assert flag(args, "--log-url") == "http://default-broker"


def test_a_custom_ksrv_transformer_logs_and_an_explicit_log_url_is_kept():
    transformer = {
        "logger": {"url": "http://sink"},
        "containers": [{"name": "t", "image": "ksrv:replace", "command": ["ksrv", "serve"],
                        "args": ["--model-class", "t:T"]}],
    }  # fmt: skip
    predictor = {"sklearn": {"storageUri": "gs://b/iris"}}
    args = main_container(pod(rendered(isvc(predictor, transformer=transformer)), "transformer"))[
        "args"
    ]
    assert flag(args, "--log-url") == "http://sink"
    assert flag(args, "--component") == "transformer"
    own = {
        "logger": {"url": "http://sink"},
        "sklearn": {"storageUri": "gs://b/iris", "args": ["--log-url=file:///tmp/x"]},
    }
    args = main_container(pod(rendered(isvc(own))))["args"]
    assert [a for a in args if a.startswith("--log-url")] == ["--log-url=file:///tmp/x"]


def test_a_logger_on_another_server_is_a_warning_not_a_problem():
    custom = {
        "logger": {"url": "http://sink"},
        "containers": [{"name": "m", "image": "registry.example.com/model:1"}],
    }
    result = rendered(isvc(custom))
    assert "--log-url" not in (main_container(pod(result)).get("args") or [])
    (warning,) = result.warnings
    assert warning.startswith("iris: predictor: spec.predictor.logger:")
    assert "nothing is logged" in warning


def test_enable_auth_is_reported_as_not_enforced_and_renders_nothing_more():
    single = {"sklearn": {"storageUri": "gs://bucket/iris"}}
    plain = rendered(isvc(single))
    protected = rendered(isvc(single, {AUTH: "true"}))
    names = [(o["kind"], o["metadata"]["name"]) for o in protected.objects]
    assert names == [(o["kind"], o["metadata"]["name"]) for o in plain.objects]
    (warning,) = protected.warnings
    assert warning.startswith(f"iris: annotation {AUTH}: not enforced on Kubernetes by ksrv")
    assert rendered(isvc(single, {AUTH: "false"})).warnings == []


def test_ksrv_k8s_render_prints_warnings_on_stderr_and_exits_0(tmp_path):
    path = tmp_path / "isvc.yaml"
    path.write_text(yaml.safe_dump(isvc({"sklearn": {"storageUri": "gs://b/i"}}, {AUTH: "true"})))
    result = CliRunner().invoke(cli, ["k8s", "render", "-f", str(path)])
    assert result.exit_code == 0, result.output
    assert f"warning: iris: annotation {AUTH}: not enforced" in result.stderr
    assert "kind: Deployment" in result.stdout or "kind: Service" in result.stdout
