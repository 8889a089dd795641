"""`ksrv serve --model-format onnx`: graphs built here answer as onnxruntime does in-process.

One server serves a directory of two models (KServe's multi-model layout): `linear` (one
input, two outputs) and `pair` (two inputs of different datatypes).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests import runtime_models
from tests.conftest import serve
from tests.runtime_models import IRIS_ROWS

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LEFT = np.array([[0.5, -1.0], [2.0, 3.25]], dtype=np.float32)
RIGHT = np.array([[1, 2], [-3, 40]], dtype=np.int64)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    runtime_models.onnx_linear(root / "linear")
    runtime_models.onnx_pair(root / "pair")
    return root


@pytest.fixture(scope="module")
def server(models_dir):
    server = serve(["--model-format", "onnx", "--model-dir", str(models_dir)])
    yield server
    server.stop()


def expected(models_dir, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What onnxruntime itself answers for `feeds` from the same file."""
    session = onnxruntime.InferenceSession(
        str(models_dir / model / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def infer_json(server, model, inputs, **extra):
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json={"inputs": inputs, **extra})


def test_v1_instances_feed_the_first_input_and_rows_carry_every_output(server, models_dir):
    response = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200
    want = expected(models_dir, "linear", {"features": np.asarray(IRIS_ROWS, dtype=np.float32)})
    rows = response.json()["predictions"]
    assert [list(row) for row in rows] == [["scores", "probabilities"]] * len(IRIS_ROWS)
    for name, array in want.items():
        np.testing.assert_array_equal(np.asarray([row[name] for row in rows], np.float32), array)


def test_v2_infer_answers_every_graph_output_by_name(server, models_dir, v2_infer):
    features = np.asarray(IRIS_ROWS, dtype=np.float32)
    outputs = v2_infer(server, "linear", {"features": features})
    want = expected(models_dir, "linear", {"features": features})
    assert sorted(outputs) == sorted(want)
    for name, array in want.items():
        np.testing.assert_array_equal(outputs[name], array)


def test_v2_requested_output_alone_comes_back(server, models_dir, v2_infer):
    features = np.asarray(IRIS_ROWS, dtype=np.float32)
    outputs = v2_infer(server, "linear", {"features": features}, outputs=["probabilities"])
    want = expected(models_dir, "linear", {"features": features})
    assert list(outputs) == ["probabilities"]
    np.testing.assert_array_equal(outputs["probabilities"], want["probabilities"])


def test_v2_feeds_every_input_by_name_whatever_the_order(server, models_dir, v2_infer):
    outputs = v2_infer(server, "pair", {"right": RIGHT, "left": LEFT})
    want = expected(models_dir, "pair", {"left": LEFT, "right": RIGHT})
    np.testing.assert_array_equal(outputs["total"], want["total"])


def test_v2_metadata_comes_from_the_graph(server):
    linear = httpx.get(f"{server.url}/v2/models/linear").json()
    assert linear["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert linear["outputs"] == [
        {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    pair = httpx.get(f"{server.url}/v2/models/pair").json()
    assert pair["inputs"] == [
        {"name": "left", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "right", "datatype": "INT64", "shape": [-1, 2]},
    ]


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        (
            [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
            "datatype FP64 does not match the model's FP32",
        ),
        (
            [{"name": "feature", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
            "has no input 'feature'",
        ),
        (
            [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
            "Got invalid dimensions for input: features",
        ),
    ],
    ids=["datatype", "name", "shape"],
)
def test_inputs_the_graph_cannot_take_are_a_400_with_the_reason(server, inputs, reason):
    response = infer_json(server, "linear", inputs)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_a_missing_input_is_a_400_naming_it(server):
    left = {"name": "left", "shape": [2, 2], "datatype": "FP32", "data": LEFT.ravel().tolist()}
    response = infer_json(server, "pair", [left])
    assert response.status_code == 400
    assert "needs input(s) right" in response.json()["error"]
