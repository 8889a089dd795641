"""modelFormat name -> runtime class, imported lazily so `import ksrv` stays light.

Names are KServe's `modelFormat.name` values (lower-cased).
"""

from __future__ import annotations

import importlib
from typing import Any

from ksrv.errors import Unsupported

RUNTIMES: dict[str, str] = {
    "sklearn": "ksrv.runtimes.sklearn:SklearnModel",
    "xgboost": "ksrv.runtimes.xgboost:XGBoostModel",
    "lightgbm": "ksrv.runtimes.lightgbm:LightGBMModel",
    "onnx": "ksrv.runtimes.onnx:ONNXModel",
    # KServe's format name for TorchScript models.
    "pytorch": "ksrv.runtimes.torch:TorchModel",
    "pmml": "ksrv.runtimes.pmml:PMMLModel",
    "mlflow": "ksrv.runtimes.mlflow:MLflowModel",
    "tensorflow": "ksrv.runtimes.tensorflow:TensorFlowModel",
    "huggingface": "ksrv.runtimes.huggingface.base:HuggingFaceModel",
    # A sink for the payload logger: drift, outlier and adversarial detection (docs/detectors.md).
    "detector": "ksrv.runtimes.detector.model:DetectorModel",
}


EXPLAINERS: dict[str, str] = {
    "shap": "ksrv.runtimes.explainer:ShapExplainer",
    # KServe's `explainer.art`: SquareAttack adversarial examples.
    "art": "ksrv.runtimes.art_explainer:ARTExplainer",
}


def explainer_class(kind: str) -> Any:
    """The explainer class for `kind` (e.g. "shap"), imported on first use."""
    target = EXPLAINERS.get(kind.lower())
    if target is None:
        raise Unsupported(
            f"explainer {kind!r} is not supported; known explainers: " + ", ".join(EXPLAINERS)
        )
    return _load(target)


def runtime_class(model_format: str) -> Any:
    """The runtime class serving `model_format`, imported on first use."""
    target = RUNTIMES.get(model_format.lower())
    if target is None:
        raise Unsupported(
            f"model format {model_format!r} is not supported; known formats: "
            + ", ".join(sorted(RUNTIMES))
        )
    return _load(target)


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def known_formats() -> list[str]:
    return sorted(RUNTIMES)
