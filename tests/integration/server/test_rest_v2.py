"""Open Inference Protocol (V2) REST against a real sklearn server and a toy server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.models import IRIS_ROWS, iris_expected

V2_BODY = {
    "id": "req-1",
    "inputs": [
        {
            "name": "input-0",
            "shape": [2, 4],
            "datatype": "FP32",
            "data": [value for row in IRIS_ROWS for value in row],
        }
    ],
}


def test_server_metadata_names_ksrv_and_its_extensions(iris_server):
    body = httpx.get(f"{iris_server.url}/v2").json()
    assert body["name"] == "ksrv"
    assert isinstance(body["version"], str)
    assert "model_repository_extension" in body["extensions"]


def test_health_endpoints_answer_as_kserve_does(iris_server):
    assert httpx.get(f"{iris_server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{iris_server.url}/v2/health/ready").json() == {"ready": True}
    ready = httpx.get(f"{iris_server.url}/v2/models/iris/ready")
    assert ready.status_code == 200
    assert ready.json() == {"name": "iris", "ready": True}


def test_model_metadata_lists_sklearn_inputs_and_outputs(iris_server):
    body = httpx.get(f"{iris_server.url}/v2/models/iris").json()
    assert body == {
        "name": "iris",
        "platform": "",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
    }


def test_infer_returns_the_models_classes_and_echoes_the_request_id(iris_server):
    response = httpx.post(f"{iris_server.url}/v2/models/iris/infer", json=V2_BODY)
    assert response.status_code == 200
    body = response.json()
    classes, _ = iris_expected(IRIS_ROWS)
    assert body == {
        "model_name": "iris",
        "id": "req-1",
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [2], "data": classes}],
    }


def test_infer_without_id_gets_a_generated_id(iris_server):
    body = {"inputs": V2_BODY["inputs"]}
    first = httpx.post(f"{iris_server.url}/v2/models/iris/infer", json=body).json()
    second = httpx.post(f"{iris_server.url}/v2/models/iris/infer", json=body).json()
    assert first["id"] and second["id"] and first["id"] != second["id"]


def test_nested_data_is_accepted_row_major(iris_server):
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROWS}]}
    response = httpx.post(f"{iris_server.url}/v2/models/iris/infer", json=body)
    assert response.json()["outputs"][0]["data"] == iris_expected(IRIS_ROWS)[0]


def test_predict_proba_parameter_returns_probabilities(iris_server):
    body = {**V2_BODY, "parameters": {"predict_proba": True}}
    output = httpx.post(f"{iris_server.url}/v2/models/iris/infer", json=body).json()["outputs"][0]
    assert output["datatype"] == "FP64"
    assert output["shape"] == [2, 3]
    _, probabilities = iris_expected(IRIS_ROWS)
    np.testing.assert_allclose(np.reshape(output["data"], (2, 3)), probabilities, rtol=1e-6)


def test_predict_proba_environment_variable_is_honoured(start_server, iris_dir):
    server = start_server(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris"],
        env={"PREDICT_PROBA": "true"},
    )
    output = httpx.post(f"{server.url}/v2/models/iris/infer", json=V2_BODY).json()["outputs"][0]
    assert output["shape"] == [2, 3]


def test_versioned_paths_reach_the_same_model(iris_server):
    url = f"{iris_server.url}/v2/models/iris/versions/1"
    assert httpx.get(url + "/ready").json()["ready"] is True
    assert httpx.get(url).json()["versions"] == ["1"]
    response = httpx.post(url + "/infer", json=V2_BODY)
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == iris_expected(IRIS_ROWS)[0]


def test_models_list_names_the_loaded_models(iris_server):
    assert httpx.get(f"{iris_server.url}/v2/models").json() == {"models": ["iris"]}


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", [True, False, True, True]),
        ("INT8", [-128, 0, 1, 127]),
        ("INT16", [-32768, 0, 1, 32767]),
        ("INT32", [-(2**31), 0, 1, 2**31 - 1]),
        ("INT64", [-(2**63), 0, 1, 2**63 - 1]),
        ("UINT8", [0, 1, 2, 255]),
        ("UINT16", [0, 1, 2, 65535]),
        ("UINT32", [0, 1, 2, 2**32 - 1]),
        ("UINT64", [0, 1, 2, 2**64 - 1]),
        ("FP16", [0.5, -1.0, 2.0, 65504.0]),
        ("FP32", [0.5, -1.25, 3.0, 1e30]),
        ("FP64", [0.5, -1.25, 3.0, 1e300]),
        ("BF16", [1.0, -2.0, 0.5, 3.140625]),
        ("BYTES", ["a", "héllo", "", "xyz"]),
    ],
)
def test_every_datatype_round_trips_through_json(toy_server, datatype, values):
    body = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": datatype, "data": values}]}
    response = httpx.post(f"{toy_server.url}/v2/models/echo/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output == {"name": "x", "datatype": datatype, "shape": [2, 2], "data": values}


def test_parameters_pass_through_to_the_model_and_back(toy_server):
    body = {
        "parameters": {"content": "text", "flag": True, "count": 3},
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [7]}],
    }
    response = httpx.post(f"{toy_server.url}/v2/models/echo/infer", json=body).json()
    assert response["parameters"] == {"content": "text", "flag": True, "count": 3}


def test_async_predict_is_awaited(toy_server):
    body = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3.5]}]}
    response = httpx.post(f"{toy_server.url}/v2/models/sum/infer", json=body).json()
    assert response["outputs"][0]["data"] == [6.5]
