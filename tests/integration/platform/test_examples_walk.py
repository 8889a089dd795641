"""The bar: every KServe example InferenceService whose model format ksrv serves applies,
becomes Ready and answers through the gateway, with its storageUri replaced by a local model
of that format (the examples' buckets are not reachable from here).

Examples that need something this issue does not run locally are listed with the reason:
a custom container image as transformer/explainer/predictor, multi-model serving (no
storageUri), or a format without a ksrv runtime (triton, paddle, huggingface).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ksrv.api import resources
from ksrv.errors import ResourceInvalid
from tests.platform_support import EXAMPLES, LocalKsrv, with_storage

pytestmark = pytest.mark.timeout(900)

SUPPORTED_FORMATS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow", "pmml")
LEGACY = ("sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface",
          "pmml", "lightgbm", "paddle")  # fmt: skip
BATCH = 8


def _format_of(predictor: dict[str, Any]) -> str | None:
    if "model" in predictor:
        return predictor["model"].get("modelFormat", {}).get("name")
    return next((key for key in LEGACY if key in predictor), None)


def _storage_of(predictor: dict[str, Any]) -> str | None:
    spec = predictor.get("model") or next(
        (predictor[key] for key in LEGACY if key in predictor), {}
    )
    return spec.get("storageUri")


def runnable_examples() -> tuple[list[tuple[str, int, dict[str, Any]]], dict[str, str]]:
    """(file, index, document) for each runnable example; skipped ones with their reason."""
    runnable, skipped = [], {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if not isinstance(document, dict) or document.get("kind") != "InferenceService":
                continue
            where = f"{path.name}#{index}"
            if document.get("apiVersion") != "serving.kserve.io/v1beta1":
                skipped[where] = f"obsolete apiVersion {document.get('apiVersion')}"
                continue
            spec = document.get("spec") or {}
            predictor = spec.get("predictor") or {}
            model_format = _format_of(predictor)
            if model_format is None:
                skipped[where] = "custom predictor container image"
            elif model_format not in SUPPORTED_FORMATS:
                skipped[where] = f"format {model_format} has no ksrv runtime"
            elif "transformer" in spec or "explainer" in spec:
                skipped[where] = "custom transformer/explainer container image"
            elif not _storage_of(predictor):
                # Served with its TrainedModels by test_multi_model.py.
                skipped[where] = "multi-model serving (TrainedModels): test_multi_model.py"
            else:
                try:
                    # strict: kubectl's default refuses fields the CRD does not define
                    resources.load(document, is_strict=True)
                except ResourceInvalid as exc:
                    skipped[where] = f"rejected, as the CRD schema / KServe's webhook do: {exc}"
                    continue
                runnable.append((path.name, index, document))
    return runnable, skipped


@pytest.fixture(scope="module")
def format_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests import models, runtime_models
    from tests.integration.runtimes.test_serve_pmml_mlflow import PMML

    root = tmp_path_factory.mktemp("format-models")
    pmml = root / "pmml"
    pmml.mkdir()
    (pmml / "model.pmml").write_text(PMML)
    return {
        "sklearn": models.sklearn_iris(root / "sklearn"),
        "xgboost": runtime_models.xgboost_iris(root / "xgboost"),
        "lightgbm": runtime_models.lightgbm_iris(root / "lightgbm"),
        "onnx": runtime_models.onnx_linear(root / "onnx"),
        "pytorch": runtime_models.torchscript_linear(root / "pytorch"),
        "tensorflow": runtime_models.tensorflow_linear(root / "tensorflow"),
        "pmml": pmml,
    }


def test_the_walk_covers_the_supported_examples():
    runnable, skipped = runnable_examples()
    print(f"{len(runnable)} runnable, {len(skipped)} skipped:")
    for where, reason in sorted(skipped.items()):
        print(f"  {where}: {reason}")
    assert len(runnable) >= 30


def test_every_supported_example_becomes_ready_and_answers(ksrv_platform, format_models):
    runnable, _ = runnable_examples()
    assert runnable, f"no example found under {EXAMPLES}"
    failures: list[str] = []
    for start in range(0, len(runnable), BATCH):
        batch = runnable[start : start + BATCH]
        applied = []
        for offset, (filename, index, document) in enumerate(batch):
            namespace = f"example-{start + offset}"
            document = dict(document, metadata={**document["metadata"], "namespace": namespace})
            model_format = _format_of(document["spec"]["predictor"])
            with_storage(document, str(format_models[model_format]))
            ksrv_platform.apply([document])
            applied.append((f"{filename}#{index}", namespace, document["metadata"]["name"]))
        for where, namespace, name in applied:
            failures += _check(ksrv_platform, where, namespace, name)
        for _, namespace, name in applied:
            ksrv_platform.cli("delete", "isvc", name, "-n", namespace)
    assert not failures, "\n".join(failures)


def _check(platform: LocalKsrv, where: str, namespace: str, name: str) -> list[str]:
    try:
        platform.wait_ready(name, namespace, timeout_s=180)
    except AssertionError as exc:
        return [f"{where}: not Ready: {str(exc)[:1500]}"]
    response = platform.http.get(
        f"{platform.gateway}/serving/{namespace}/{name}/v2/models/{name}/ready"
    )
    if response.status_code != 200:
        return [f"{where}: ready call answered {response.status_code} {response.text[:300]}"]
    return []
