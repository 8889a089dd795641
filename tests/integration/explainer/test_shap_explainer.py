"""An explainer server in front of a real predictor: SHAP values over real sockets."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.models import IRIS_ROWS, iris_expected

pytest.importorskip("shap")


@pytest.fixture
def explainer(start_server, iris_server):
    return start_server(
        ["--explainer", "shap", "--predictor-host", f"127.0.0.1:{iris_server.port}",
         "--model-name", "iris"]
    )  # fmt: skip


def test_shap_values_add_up_to_the_predictors_probabilities(explainer):
    background = [[5.8, 3.0, 4.3, 1.3], [5.0, 3.4, 1.5, 0.2], [6.6, 3.0, 5.5, 2.0]]
    body = {
        "instances": IRIS_ROWS,
        "parameters": {"predict_proba": True, "background": background, "nsamples": 100},
    }
    response = httpx.post(f"{explainer.url}/v1/models/iris:explain", json=body, timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    values = np.asarray(answer["explanations"])  # rows x features x classes
    expected = np.asarray(answer["expected_value"])
    assert values.shape == (2, 4, 3)
    _, probabilities = iris_expected(IRIS_ROWS)
    # SHAP's local accuracy: base value + attributions = the model's output, per class.
    np.testing.assert_allclose(values.sum(axis=1) + expected, probabilities, atol=1e-6)


def test_explainer_forwards_predict_to_its_predictor(explainer):
    response = httpx.post(f"{explainer.url}/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert response.json() == {"predictions": iris_expected(IRIS_ROWS)[0]}


def test_bad_explain_requests_are_400(explainer):
    url = f"{explainer.url}/v1/models/iris:explain"
    assert httpx.post(url, json={"instances": [["a", "b"]]}).status_code == 400
    bad_background = {"instances": IRIS_ROWS, "parameters": {"background": [[1, 2]]}}
    assert httpx.post(url, json=bad_background).status_code == 400
