"""Explainer component: SHAP's KernelExplainer over any V1 predictor, as a model server.

Like KServe's explainer, it sits beside a predictor (`--predictor-host`): `:predict` is
forwarded there, and `:explain` answers with per-feature SHAP values for each instance,
computed by calling the predictor's V1 `:predict` on perturbed rows. The request's
`parameters` travel on to the predictor (e.g. `predict_proba: true` to explain
probabilities); `parameters.background` gives the reference rows (default: one row of
zeros) and `parameters.nsamples` the KernelExplainer budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers, Model, PredictorConfig
from ksrv.protocol import v1
from ksrv.runtimes import remote_predictor

DEFAULT_NSAMPLES = 200


class ShapExplainer(Model):
    """Explains a remote V1 predictor's outputs with SHAP's model-agnostic KernelExplainer."""

    def __init__(self, name: str, predictor_host: str, timeout_s: float = 60.0) -> None:
        super().__init__(name, PredictorConfig(predictor_host=predictor_host))
        self.timeout_s = timeout_s

    def load(self) -> bool:
        import shap  # noqa: F401  (fail at start, not on the first request)

        self.ready = True
        return self.ready

    def explain(  # type: ignore[override]  # sync on purpose: it runs in the thread pool
        self, payload: Any, headers: Headers | None = None
    ) -> dict[str, Any]:
        import httpx
        import shap

        rows = _float_rows(v1.instances(v1.check_request(payload)), "instances")
        parameters = dict(payload.get("parameters") or {})
        background = _float_rows(parameters.pop("background", None) or [[0.0] * rows.shape[1]],
                                 "parameters.background")  # fmt: skip
        nsamples = int(parameters.pop("nsamples", DEFAULT_NSAMPLES))
        if background.shape[1] != rows.shape[1]:
            raise InvalidInput("parameters.background rows must have as many features as instances")
        url = f"http://{self.predictor_host}/v1/models/{self.name}:predict"
        with httpx.Client(timeout=self.timeout_s) as http:

            def predict(batch: np.ndarray) -> np.ndarray:
                body: dict[str, Any] = {"instances": batch.tolist()}
                if parameters:
                    body["parameters"] = parameters
                return np.asarray(remote_predictor.predictions(http, url, body), dtype=np.float64)

            explainer = shap.KernelExplainer(predict, background)
            values = explainer.shap_values(rows, nsamples=nsamples, silent=True)
        return {
            "explanations": np.asarray(values).tolist(),
            "expected_value": np.asarray(explainer.expected_value).tolist(),
        }


def _float_rows(value: Any, where: str) -> np.ndarray:
    try:
        rows = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where} must be rows of numbers") from exc
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise InvalidInput(f"{where} must be a non-empty list of rows of numbers")
    return rows
