"""The bar: KServe's InferenceGraph examples (../shared/examples-kserve) apply and answer end to
end on a real `ksrv up`, against real InferenceServices, with KServe's answers.

What cannot run here is stood in for, and the walk prints each stand-in:
- the `gs://` models of docs/samples/graph are tiny local models of the same format;
- images (`iamlovingit/bgtest`, KServe's e2e `success-200-isvc` and `error-404-isvc`) are toy
  custom models (tests/graph_toys.py) run by the predictor's container command;
- services a file names without defining (the e2e files' template names, the website's
  model-a/b/c) are defined here, as KServe's e2e test and the docs' reader do;
- the e2e files' graphs share one template name (`graph-name`, KServe's test substitutes its
  own): each gets its file's name; the switch sample's `serviceUrl`s name a cluster domain
  (`{$your-domain}`) and the image's `/switch` path: they point at the gateway's path form of
  the same service and its predict path instead.
An example that cannot run at all is listed with the reason (`test_examples_that_cannot_run`).
All graphs run in one platform at once (one namespace), so the walk costs one start.
"""

from __future__ import annotations

import collections
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import wait_until
from tests.platform_support import EXAMPLES, LocalKsrv, with_storage

pytestmark = pytest.mark.timeout(600)

TOYS = Path(__file__).resolve().parents[2] / "graph_toys.py"
IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
SPLITS = 1000
# Not runnable, and why (the walk checks that apply refuses it).
CANNOT_RUN = {
    "website__docs__model-serving__inferencegraph__overview__block01.yaml": (
        "a schema sketch, not a graph: `<node-name>` and `routerType: Sequence|Switch|...` are "
        "placeholders, which apply refuses as the CRD does"
    ),
}
# Services the e2e files and the website's examples name without defining them.
EXTRA_SERVICES = {
    "success-200-isvc-id": ("Success", {}),
    "error-404-isvc-id": ("NotFound404", {}),
    "model-a": ("Target", {}),
    "model-b": ("Target", {}),
    "model-c": ("Target", {}),
}


def graph_files() -> list[Path]:
    return sorted(
        path
        for path in EXAMPLES.glob("*.yaml")
        if any(
            d and d.get("kind") == "InferenceGraph" for d in yaml.safe_load_all(path.read_text())
        )
    )


def toy(name: str, model: str, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container = {"name": "kserve-container", "image": "ksrv-graph-toys",
                 "command": ["ksrv", "serve", f"{TOYS}:{model}"], "env": env or []}  # fmt: skip
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"containers": [container]}},
    }


def stand_ins(
    path: Path, models: dict[str, Path], gateway: str, notes: list[str]
) -> list[dict[str, Any]]:
    """The file's documents as they run here; each stand-in said in `notes`."""
    documents = []
    for document in yaml.safe_load_all(path.read_text()):
        if not document:
            continue
        name = document["metadata"]["name"]
        if document["kind"] == "InferenceService":
            predictor = document["spec"]["predictor"]
            image = next((c.get("image") for c in predictor.get("containers") or []), None)
            if image is not None:
                notes.append(f"{path.name}: {name} ({image}) -> graph_toys.Target")
                document = toy(name, "Target", predictor["containers"][0].get("env"))
            else:
                model_format = next(k for k in ("sklearn", "xgboost") if k in predictor)
                notes.append(f"{path.name}: {name} storageUri -> a local {model_format} model")
                with_storage(document, str(models[model_format]))
        elif document["kind"] == "InferenceGraph":
            if name == "graph-name":
                document["metadata"]["name"] = name = graph_name(path)
                notes.append(f"{path.name}: graph-name (a template name) -> {name}")
            for node in document["spec"]["nodes"].values():
                for step in node.get("steps") or []:
                    url = step.get("serviceUrl", "")
                    found = re.fullmatch(r"http://([^.]+)\.default\.\{\$your-domain\}/switch", url)
                    if found:
                        service = found.group(1)
                        step["serviceUrl"] = (f"{gateway}/serving/default/{service}"
                                              f"/v1/models/{service}:predict")  # fmt: skip
                        notes.append(f"{path.name}: {url} -> {step['serviceUrl']}")
        documents.append(document)
    return documents


def graph_name(path: Path) -> str:
    """`ig_test_switch_scenario_4.yaml` -> `switch-scenario-4`."""
    stem = path.stem.rsplit("__", 1)[-1]
    return stem.removeprefix("ig_test_").replace("_", "-")


@pytest.fixture(scope="module")
def seeded_platform(tmp_path_factory) -> Any:
    """A platform whose routers draw the Splitter's choices from a fixed seed (the router's
    hidden `KSRV_ROUTER_SEED`), so the split over `SPLITS` calls is the same every run."""
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-graph-examples"))
    platform.env["KSRV_ROUTER_SEED"] = "16"
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def example_models(tmp_path_factory) -> dict[str, Path]:
    from tests import models, runtime_models

    root = tmp_path_factory.mktemp("graph-example-models")
    return {
        "sklearn": models.sklearn_iris(root / "sklearn"),
        "xgboost": runtime_models.xgboost_iris(root / "xgboost"),
    }


def test_examples_that_cannot_run_are_refused_with_their_reason(seeded_platform):
    for name, reason in CANNOT_RUN.items():
        print(f"{name}: cannot run: {reason}")
        output = seeded_platform.cli("apply", "-f", str(EXAMPLES / name), check=False)
        assert "routerType" in output, output


def test_every_graph_example_runs_end_to_end_with_kserves_answers(seeded_platform, example_models):
    platform = seeded_platform
    files = [path for path in graph_files() if path.name not in CANNOT_RUN]
    assert len(files) + len(CANNOT_RUN) == 11, [p.name for p in graph_files()]
    notes: list[str] = []
    services: dict[str, dict[str, Any]] = {}
    graphs: dict[str, str] = {}
    for path in files:
        for document in stand_ins(path, example_models, platform.gateway, notes):
            if document["kind"] == "InferenceService":
                services[document["metadata"]["name"]] = document
            else:
                graphs[path.name] = document["metadata"]["name"]
                services[f"graph/{path.name}"] = document
    for name, (model, env) in EXTRA_SERVICES.items():
        notes.append(f"{name}: not defined by the examples -> graph_toys.{model}")
        services[name] = toy(name, model, [{"name": k, "value": v} for k, v in env.items()])
    print("\n".join(notes))
    platform.apply([d for d in services.values() if d["kind"] == "InferenceService"], "--wait")
    platform.apply([d for d in services.values() if d["kind"] == "InferenceGraph"])
    for graph in graphs.values():
        wait_ready(platform, graph)
    failures = []
    for filename, graph in graphs.items():
        try:
            CHECKS[filename.split("__")[-1]](platform, graph)
        except AssertionError as exc:
            failures.append(f"{filename} ({graph}): {exc}")
    assert not failures, "\n".join(failures)


def wait_ready(platform: LocalKsrv, name: str) -> None:
    path = (
        f"{platform.api}/apis/serving.kserve.io/v1alpha1/namespaces/default/inferencegraphs/{name}"
    )

    def ready() -> bool:
        conditions = platform.http.get(path).json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    try:
        wait_until(ready, f"graph {name} Ready", timeout_s=180)
    except AssertionError:
        raise AssertionError(json.dumps(platform.http.get(path).json(), indent=1)) from None
    # The gateway takes the new route table within its long poll: until it reaches the router.
    routed = f"{platform.gateway}/serving/default/{name}/readyz"
    wait_until(lambda: platform.http.get(routed).status_code == 200, f"{name} routed", 30)


def call(platform: LocalKsrv, graph: str, body: dict[str, Any]) -> Any:
    return platform.http.post(f"{platform.gateway}/serving/default/{graph}", json=body)


def direct(platform: LocalKsrv, service: str, body: dict[str, Any]) -> Any:
    url = f"{platform.gateway}/serving/default/{service}/v1/models/{service}:predict"
    answer = platform.http.post(url, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def answers(platform: LocalKsrv, graph: str, body: dict[str, Any], status: int = 200) -> Any:
    answer = call(platform, graph, body)
    assert answer.status_code == status, f"{answer.status_code} {answer.text}"
    return answer.json()


def check_sequence(platform: LocalKsrv, graph: str) -> None:
    """sklearn-iris, then xgboost-iris with the original request: xgboost's answer."""
    iris = {"instances": IRIS_ROWS}
    assert answers(platform, graph, iris) == direct(platform, "xgboost-iris", iris)


def check_ensemble(platform: LocalKsrv, graph: str) -> None:
    iris = {"instances": IRIS_ROWS}
    assert answers(platform, graph, iris) == {
        "sklearn-iris": direct(platform, "sklearn-iris", iris),
        "xgboost-iris": direct(platform, "xgboost-iris", iris),
    }


def check_switch_sample(platform: LocalKsrv, graph: str) -> None:
    """Object, array and pattern matching pick single-1, -2 and -3; nothing matched is 404."""
    cases = [
        ({"source": "client"}, "single-1"),
        ({"instances": [{"intval": 11}]}, "single-2"),
        ({"instances": [{"strval": "a-red-server-b"}]}, "single-3"),
    ]
    for body, target in cases:
        assert answers(platform, graph, body)["predictions"] == [{"target": target}], body
    answers(platform, graph, {"instances": [{"intval": 1}]}, status=404)


def intentional_404(platform: LocalKsrv, graph: str, body: dict[str, Any]) -> None:
    answer = call(platform, graph, body)
    assert answer.status_code == 404, answer.text
    assert "Intentional 404 code" in answer.text, answer.text


SUCCESS = {"predictions": [{"message": "SUCCESS"}]}
ERROR_PICKER = {"decision_picker": "ERROR", "key1": {"name": "abc"}}
SUCCESS_PICKER = {"decision_picker": "SUCCESS", "key1": {"name": "abc"}}


def check_scenario_3(platform: LocalKsrv, graph: str) -> None:
    """A Hard first step answering 404 stops the Sequence with its answer."""
    intentional_404(platform, graph, {"instances": IRIS_ROWS})


def check_scenario_4(platform: LocalKsrv, graph: str) -> None:
    intentional_404(platform, graph, ERROR_PICKER)
    assert answers(platform, graph, SUCCESS_PICKER) == SUCCESS
    assert answers(platform, graph, {"decision_picker": "NONE"}, status=404) == {
        "error": "Failed to process request",
        "cause": "None of the routes matched with the switch condition",
    }


def check_scenario_5_or_9(platform: LocalKsrv, graph: str) -> None:
    """A Soft node failing goes on to the next step: SUCCESS."""
    body = ERROR_PICKER if graph.endswith("5") else {"instances": IRIS_ROWS}
    assert answers(platform, graph, body) == SUCCESS


def check_scenario_8(platform: LocalKsrv, graph: str) -> None:
    """An Ensemble whose Hard step answers 404 answers that step's answer."""
    intentional_404(platform, graph, SUCCESS_PICKER)


def check_website_ensemble(platform: LocalKsrv, graph: str) -> None:
    found = answers(platform, graph, {"instances": IRIS_ROWS})
    assert {step: found[step]["predictions"] for step in found} == {
        "model_a": [{"target": "model-a"}],
        "model_b": [{"target": "model-b"}],
        "model_c": [{"target": "model-c"}],
    }


def check_website_splitter(platform: LocalKsrv, graph: str) -> None:
    """50/30/20 over `SPLITS` calls, each share within 5 points."""

    def one(_: int) -> str:
        return str(answers(platform, graph, {"instances": IRIS_ROWS})["predictions"][0]["target"])

    with ThreadPoolExecutor(8) as pool:
        counts = collections.Counter(pool.map(one, range(SPLITS)))
    shares = {target: 100 * count / SPLITS for target, count in counts.items()}
    print(f"splitter shares over {SPLITS} calls: {shares}")
    for target, weight in (("model-a", 50), ("model-b", 30), ("model-c", 20)):
        assert abs(shares.get(target, 0) - weight) <= 5, shares


CHECKS = {
    "sequence.yaml": check_sequence,
    "ensemble.yaml": check_ensemble,
    "switch.yaml": check_switch_sample,
    "ig_test_seq_scenario_3.yaml": check_scenario_3,
    "ig_test_switch_scenario_4.yaml": check_scenario_4,
    "ig_test_switch_scenario_5.yaml": check_scenario_5_or_9,
    "ig_test_switch_scenario_9.yaml": check_scenario_5_or_9,
    "ig_test_ensemble_scenario_8.yaml": check_scenario_8,
    "block04.yaml": check_website_ensemble,
    "block05.yaml": check_website_splitter,
}
