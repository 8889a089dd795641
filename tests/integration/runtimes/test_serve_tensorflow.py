"""`ksrv serve --model-format tensorflow`: SavedModels built here answer as TensorFlow does.

One server serves `linear` (TF Serving's numbered-version layout) and `pair` (two inputs, a
string output) from one directory, over TF Serving's V1 formats and V2.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests import runtime_models
from tests.conftest import serve
from tests.runtime_models import IRIS_ROWS

tf = pytest.importorskip("tensorflow")

LEFT = np.array([[0.5, -1.0], [2.0, 3.25]], dtype=np.float32)
RIGHT = np.array([[1, 2], [-3, -40]], dtype=np.int64)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tensorflow")
    runtime_models.tensorflow_linear(root / "linear")
    runtime_models.tensorflow_pair(root / "pair")
    return root


@pytest.fixture(scope="module")
def server(models_dir):
    server = serve(["--model-format", "tensorflow", "--model-dir", str(models_dir)])
    yield server
    server.stop()


def expected(path, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    """What the SavedModel's serving signature itself answers."""
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    result = signature(**{name: tf.constant(value) for name, value in feeds.items()})
    return {name: value.numpy() for name, value in result.items()}


def linear_expected(models_dir, rows):
    return expected(models_dir / "linear" / "1", features=np.asarray(rows, dtype=np.float32))


def text(array) -> list[str]:
    return [item.decode() if isinstance(item, bytes) else item for item in array.reshape(-1)]


def test_v1_row_format_answers_one_record_per_instance(server, models_dir):
    response = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200
    rows = response.json()["predictions"]
    for name, array in linear_expected(models_dir, IRIS_ROWS).items():
        np.testing.assert_array_equal(np.asarray([row[name] for row in rows], np.float32), array)


def test_v1_columnar_format_answers_outputs(server, models_dir):
    response = httpx.post(f"{server.url}/v1/models/linear:predict", json={"inputs": IRIS_ROWS})
    assert response.status_code == 200
    body = response.json()["outputs"]
    for name, array in linear_expected(models_dir, IRIS_ROWS).items():
        np.testing.assert_array_equal(np.asarray(body[name], np.float32), array)


def test_v1_named_instances_feed_several_inputs(server, models_dir):
    instances = [
        {"left": left.tolist(), "right": right.tolist()}
        for left, right in zip(LEFT, RIGHT, strict=True)
    ]
    response = httpx.post(f"{server.url}/v1/models/pair:predict", json={"instances": instances})
    assert response.status_code == 200
    want = expected(models_dir / "pair", left=LEFT, right=RIGHT)
    rows = response.json()["predictions"]
    assert [row["sign"] for row in rows] == text(want["sign"])
    np.testing.assert_array_equal(np.asarray([row["total"] for row in rows]), want["total"])


def test_v1_columnar_named_inputs_over_rest(server, models_dir):
    body = {"inputs": {"left": LEFT.tolist(), "right": RIGHT.tolist()}}
    response = httpx.post(f"{server.url}/v1/models/pair:predict", json=body)
    assert response.status_code == 200, response.text
    want = expected(models_dir / "pair", left=LEFT, right=RIGHT)
    outputs = response.json()["outputs"]
    np.testing.assert_array_equal(np.asarray(outputs["total"]), want["total"])


def test_v2_infer_answers_every_signature_output(server, models_dir, v2_infer):
    features = np.asarray(IRIS_ROWS, dtype=np.float32)
    outputs = v2_infer(server, "linear", {"features": features})
    want = linear_expected(models_dir, IRIS_ROWS)
    assert sorted(outputs) == sorted(want)
    for name, array in want.items():
        np.testing.assert_array_equal(outputs[name], array)


def test_v2_feeds_inputs_by_name_and_returns_strings(server, models_dir, v2_infer):
    outputs = v2_infer(server, "pair", {"right": RIGHT, "left": LEFT})
    want = expected(models_dir / "pair", left=LEFT, right=RIGHT)
    np.testing.assert_array_equal(outputs["total"], want["total"])
    assert text(outputs["sign"]) == text(want["sign"])


def test_v2_metadata_comes_from_the_signature(server):
    body = httpx.get(f"{server.url}/v2/models/pair").json()
    assert body["inputs"] == [
        {"name": "left", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "right", "datatype": "INT64", "shape": [-1, 2]},
    ]
    assert body["outputs"] == [
        {"name": "sign", "datatype": "BYTES", "shape": [-1]},
        {"name": "total", "datatype": "FP32", "shape": [-1, 2]},
    ]


def test_a_shape_the_signature_cannot_take_is_a_400(server):
    response = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": [[1, 2]]})
    assert response.status_code == 400
    assert "does not fit the model's [-1, 4]" in response.json()["error"]
