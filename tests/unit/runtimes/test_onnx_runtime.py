"""`ONNXModel` in-process: thread settings reach the session; V1 casts to the graph's type."""

from __future__ import annotations

import numpy as np
import pytest

from ksrv.errors import StorageError
from ksrv.runtimes.onnx import ONNXModel
from tests import runtime_models

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture
def linear_dir(tmp_path):
    return runtime_models.onnx_linear(tmp_path)


def test_thread_counts_come_from_the_constructor_or_the_environment(linear_dir, monkeypatch):
    monkeypatch.setenv("ONNX_INTER_OP_THREADS", "2")
    monkeypatch.delenv("ONNX_INTRA_OP_THREADS", raising=False)
    model = ONNXModel("m", linear_dir, intra_op_threads=1)
    model.load()
    options = model._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)


def test_v1_integers_are_cast_to_the_graphs_float_input(linear_dir):
    model = ONNXModel("m", linear_dir)
    model.load()
    rows = [[1, 2, 3, 4]]
    session = onnxruntime.InferenceSession(
        str(linear_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    scores, probabilities = session.run(None, {"features": np.asarray(rows, np.float32)})
    assert model.predict({"instances": rows}) == {
        "predictions": [{"scores": scores[0].tolist(), "probabilities": probabilities[0].tolist()}]
    }


def test_a_file_that_is_not_onnx_is_a_storage_error(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(StorageError) as caught:
        ONNXModel("m", tmp_path).load()
    # onnxruntime says "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from PATH failed:"
    assert str(caught.value) == (
        f"model.onnx is not a valid ONNX model (in {tmp_path}): Protobuf parsing failed."
    )
