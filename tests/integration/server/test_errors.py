"""Every caller mistake is a clear 4xx `{"error": ...}`; bugs are 500; never a hang."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import toy_script_server

GOOD_INPUT = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "Unrecognized request format"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"inputs": {"a": 1}}', '"inputs" to be a list'),
        (b'{"no_inputs": []}', '"inputs" to be a list'),
        (b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}]}', "needs 2"),
        (b'{"inputs": [{"name": "x", "shape": "2", "datatype": "FP32", "data": [1]}]}', "shape"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}]}', "FP99"),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": ["a"]}]}',
            "non-numeric",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}]}',
            "floating",
        ),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}]}', "range"),
        (
            b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [[1], [2, 3]]}]}',
            "regular",
        ),
        (b'{"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}', "name"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}', "neither"),
        (
            b'{"inputs": [{"name": "x", "shape": [1000000000, 4], "datatype": "FP32", '
            b'"data": [1]}]}',
            "needs",
        ),
        (b'{"id": 5, "inputs": []}', "'id'"),
        (b'{"parameters": [], "inputs": []}', "parameters"),
        (b"\xff\xfe\x00garbage", "Unrecognized request format"),
    ],
)
def test_malformed_v2_requests_are_400_with_a_reason(iris_server, body, fragment):
    response = httpx.post(f"{iris_server.url}/v2/models/iris/infer", content=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_wrong_feature_count_is_the_callers_mistake(iris_server):
    body = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = httpx.post(f"{iris_server.url}/v2/models/iris/infer", json=body)
    assert response.status_code == 400
    assert "features" in response.json()["error"]


def test_unknown_model_is_404_on_every_endpoint(iris_server):
    url = iris_server.url
    for response in (
        httpx.post(f"{url}/v2/models/nope/infer", json={"inputs": [GOOD_INPUT]}),
        httpx.get(f"{url}/v2/models/nope"),
        httpx.get(f"{url}/v2/models/nope/ready"),
        httpx.post(f"{url}/v1/models/nope:predict", json={"instances": [[1, 2, 3, 4]]}),
        httpx.get(f"{url}/v1/models/nope"),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "Model with name nope does not exist."}


def test_unknown_route_is_404_with_a_json_error(iris_server):
    response = httpx.get(f"{iris_server.url}/v3/whatever")
    assert response.status_code == 404
    assert "No route" in response.json()["error"]


def test_v1_bad_instances_are_400(iris_server):
    for body in (b'{"instances": 5}', b"[]", b"nope", b'{"instances": [[1, 2], [3]]}'):
        response = httpx.post(f"{iris_server.url}/v1/models/iris:predict", content=body)
        assert response.status_code == 400, (body, response.text)


def test_ten_megabytes_of_garbage_is_400_and_the_server_stays_healthy(iris_server):
    garbage = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    response = httpx.post(f"{iris_server.url}/v2/models/iris/infer", content=garbage, timeout=30)
    assert response.status_code == 400
    assert httpx.get(f"{iris_server.url}/v2/health/ready").status_code == 200


def test_bodies_over_the_limit_are_413(start_server, iris_dir):
    server = start_server(
        [
            "--model-format",
            "sklearn",
            "--model-dir",
            str(iris_dir),
            "--model-name",
            "iris",
            "--max-request-bytes",
            "1000",
        ]
    )
    url = f"{server.url}/v2/models/iris/infer"
    response = httpx.post(url, content=b"x" * 2000)
    assert response.status_code == 413
    assert "limit of 1000 bytes" in response.json()["error"]

    def chunks():  # no content-length: the limit applies while reading
        for _ in range(10):
            yield b"y" * 500

    response = httpx.post(url, content=chunks())
    assert response.status_code == 413
    ok = httpx.post(url, json={"inputs": [GOOD_INPUT]})
    assert ok.status_code == 200


def test_a_bug_in_a_model_is_500_naming_the_exception(toy_server):
    response = httpx.post(f"{toy_server.url}/v1/models/failing:predict", json={"kind": "bug"})
    assert response.status_code == 500
    assert response.json() == {"error": "ValueError : the toy model is broken"}


def test_invalid_input_raised_by_a_custom_model_is_400(toy_server):
    response = httpx.post(f"{toy_server.url}/v1/models/failing:predict", json={"kind": "invalid"})
    assert response.status_code == 400
    assert response.json() == {"error": "the toy says this input is invalid"}


def test_a_model_that_is_not_ready_answers_503():
    server = toy_script_server()
    try:
        url = server.url
        assert (
            httpx.post(f"{url}/v1/models/switch:predict", json={"ready": False}).status_code == 200
        )
        assert httpx.get(f"{url}/v1/models/switch").status_code == 503
        assert httpx.get(f"{url}/v2/models/switch/ready").status_code == 503
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503
        response = httpx.post(f"{url}/v1/models/switch:predict", json={"ready": True})
        assert response.status_code == 503
        assert response.json() == {"error": "Model with name switch is not ready."}
    finally:
        server.stop()


def test_loading_a_corrupt_model_is_503_saying_what_is_wrong_once(start_server, tmp_path):
    from tests.models import sklearn_iris

    sklearn_iris(tmp_path / "iris")
    server = start_server(
        ["--model-format", "sklearn", "--model-dir", str(tmp_path / "iris"), "--model-name", "iris"]
    )
    broken = tmp_path / "iris" / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"this is not a model")
    response = httpx.post(f"{server.url}/v2/repository/models/broken/load")
    assert response.status_code == 503
    assert response.json() == {
        "error": "Model with name broken is not ready. Loading failed: model.joblib is not a "
        f"valid joblib/pickle file (in {broken}): it is truncated or corrupt, or was not "
        "written by joblib.dump or pickle.dump"
    }
