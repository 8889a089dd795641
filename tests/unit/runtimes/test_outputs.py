"""`outputs.response`: named output tensors as V2 outputs or V1 predictions."""

from __future__ import annotations

import numpy as np

from ksrv.protocol import v2
from ksrv.runtimes import outputs

SCORES = np.array([[0.5, 1.5], [2.0, -1.0]], dtype=np.float32)
LABELS = np.array([1, 0], dtype=np.int64)


def request() -> v2.InferRequest:
    features = v2.InferInput("x", [2, 1], "FP32", np.zeros((2, 1), dtype=np.float32))
    return v2.InferRequest("m", [features], request_id="r-1", model_version="3")


def test_v2_gets_one_output_per_name_with_its_datatype_and_the_request_id():
    response = outputs.response(request(), {"scores": SCORES, "labels": LABELS}, "m")
    assert isinstance(response, v2.InferResponse)
    assert (response.id, response.model_name, response.model_version) == ("r-1", "m", "3")
    assert [(o.name, o.datatype, o.shape) for o in response.outputs] == [
        ("scores", "FP32", [2, 2]),
        ("labels", "INT64", [2]),
    ]
    np.testing.assert_array_equal(response.outputs[0].as_numpy(), SCORES)


def test_v2_strings_become_bytes_tensors():
    response = outputs.response(request(), {"names": np.array(["a", "bc"])}, "m")
    assert response.outputs[0].datatype == "BYTES"
    assert response.outputs[0].as_numpy().dtype == object


def test_v1_single_output_is_the_plain_list():
    assert outputs.response({"instances": []}, {"scores": SCORES}, "m") == {
        "predictions": SCORES.tolist()
    }


def test_v1_several_outputs_become_one_record_per_row():
    body = outputs.response({"instances": []}, {"scores": SCORES, "labels": LABELS}, "m")
    assert body == {
        "predictions": [
            {"scores": [0.5, 1.5], "labels": 1},
            {"scores": [2.0, -1.0], "labels": 0},
        ]
    }


def test_v1_outputs_of_different_batch_sizes_stay_whole_by_name():
    body = outputs.response({"instances": []}, {"scores": SCORES, "total": np.float32(3)}, "m")
    assert body == {"predictions": {"scores": SCORES.tolist(), "total": 3.0}}
