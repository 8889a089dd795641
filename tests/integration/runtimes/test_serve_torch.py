"""`ksrv serve --model-format pytorch`: TorchScript modules built here answer as in-process.

One server serves `linear` (a softmax regression fitted on iris) and `pair` (two inputs, a
tuple of two outputs) from one directory.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests import runtime_models
from tests.conftest import serve
from tests.runtime_models import IRIS_ROWS

torch = pytest.importorskip("torch")

LEFT = np.array([[0.5, -1.0, 2.0], [2.0, 3.25, -4.0]], dtype=np.float32)
RIGHT = np.array([[1.0, 2.0, 3.0], [-3.0, 40.0, 0.125]], dtype=np.float32)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch")
    runtime_models.torchscript_linear(root / "linear")
    runtime_models.torchscript_pair(root / "pair")
    return root


@pytest.fixture(scope="module")
def server(models_dir):
    server = serve(["--model-format", "pytorch", "--model-dir", str(models_dir)])
    yield server
    server.stop()


def expected(models_dir, model: str, *arrays: np.ndarray):
    """What the TorchScript module itself answers, as numpy."""
    with runtime_models.torchscript_allowed():
        module = torch.jit.load(str(models_dir / model / "model.pt"))
    with torch.no_grad():
        result = module(*(torch.from_numpy(array) for array in arrays))
    if isinstance(result, tuple):
        return [item.numpy() for item in result]
    return result.numpy()


def test_v1_instances_are_the_single_argument_as_float32(server, models_dir):
    response = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200
    want = expected(models_dir, "linear", np.asarray(IRIS_ROWS, dtype=np.float32))
    assert response.json() == {"predictions": want.tolist()}


def test_v2_infer_answers_output_0(server, models_dir, v2_infer):
    features = np.asarray(IRIS_ROWS, dtype=np.float32)
    outputs = v2_infer(server, "linear", {"input-0": features})
    assert list(outputs) == ["output-0"]
    np.testing.assert_array_equal(outputs["output-0"], expected(models_dir, "linear", features))


def test_v2_inputs_go_to_forward_in_order_and_a_tuple_becomes_numbered_outputs(
    server, models_dir, v2_infer
):
    # Names are free: TorchScript takes arguments by position.
    outputs = v2_infer(server, "pair", {"first": LEFT, "second": RIGHT})
    total, product = expected(models_dir, "pair", LEFT, RIGHT)
    assert list(outputs) == ["output-0", "output-1"]
    np.testing.assert_array_equal(outputs["output-0"], total)
    np.testing.assert_array_equal(outputs["output-1"], product)


def test_v2_metadata_is_empty_because_torchscript_records_no_shapes(server):
    body = httpx.get(f"{server.url}/v2/models/linear").json()
    assert body["inputs"] == [] and body["outputs"] == []


def test_a_shape_the_module_cannot_take_is_a_400_with_torchs_reason(server):
    response = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": [[1.0]]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "shapes cannot be multiplied" in error
    assert "Traceback" not in error


def test_a_missing_argument_is_a_400(server):
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = httpx.post(f"{server.url}/v2/models/pair/infer", json=body)
    assert response.status_code == 400
    assert "Traceback" not in response.json()["error"]
