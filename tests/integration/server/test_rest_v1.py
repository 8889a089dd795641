"""KServe V1 REST: root, model list, readiness, predict and explain."""

from __future__ import annotations

import httpx
import pytest

from tests.models import IRIS_ROWS, iris_expected


def test_root_says_alive(iris_server):
    assert httpx.get(iris_server.url + "/").json() == {"status": "alive"}


def test_model_list_and_readiness(iris_server):
    assert httpx.get(f"{iris_server.url}/v1/models").json() == {"models": ["iris"]}
    response = httpx.get(f"{iris_server.url}/v1/models/iris")
    assert (response.status_code, response.json()) == (200, {"name": "iris", "ready": True})


def test_predict_with_instances_returns_predictions(iris_server):
    response = httpx.post(
        f"{iris_server.url}/v1/models/iris:predict", json={"instances": IRIS_ROWS}
    )
    assert response.status_code == 200
    assert response.json() == {"predictions": iris_expected(IRIS_ROWS)[0]}


def test_predict_accepts_inputs_as_kserve_does(iris_server):
    response = httpx.post(f"{iris_server.url}/v1/models/iris:predict", json={"inputs": IRIS_ROWS})
    assert response.json() == {"predictions": iris_expected(IRIS_ROWS)[0]}


def test_predict_proba_parameter_on_v1(iris_server):
    body = {"instances": IRIS_ROWS, "parameters": {"predict_proba": True}}
    predictions = httpx.post(f"{iris_server.url}/v1/models/iris:predict", json=body).json()
    assert len(predictions["predictions"]) == 2
    assert len(predictions["predictions"][0]) == 3


def test_explain_without_an_explainer_is_501(iris_server):
    response = httpx.post(
        f"{iris_server.url}/v1/models/iris:explain", json={"instances": IRIS_ROWS}
    )
    assert response.status_code == 501
    assert "explainer" in response.json()["error"]


def test_custom_model_sees_request_headers(toy_server):
    response = httpx.post(
        f"{toy_server.url}/v1/models/headers:predict",
        json={"instances": []},
        headers={"x-request-id": "abc-123", "x-custom": "yes"},
    )
    seen = response.json()["seen"]
    assert seen["x-request-id"] == "abc-123"
    assert seen["x-custom"] == "yes"
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    "request_id", ["r" * 129, "abc def", "<script>x</script>", "a;b=c", "id\u00e9"]
)
def test_a_request_id_that_is_not_a_short_token_is_not_echoed(toy_server, request_id):
    response = httpx.post(
        f"{toy_server.url}/v1/models/headers:predict",
        json={"instances": []},
        headers={"x-request-id": request_id.encode("latin-1")},
    )
    assert response.status_code == 200
    assert "x-request-id" not in response.headers


def test_a_request_id_of_128_token_characters_is_echoed(toy_server):
    request_id = "Ab0._:-" + "z" * 121
    response = httpx.get(f"{toy_server.url}/v2/health/live", headers={"x-request-id": request_id})
    assert response.headers["x-request-id"] == request_id
