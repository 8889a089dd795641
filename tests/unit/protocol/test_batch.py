"""Merging requests along the batch axis and splitting answers back: who may merge, and how."""

from __future__ import annotations

import numpy as np
import pytest

from ksrv.protocol import batch
from ksrv.protocol.v2 import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput


def key(payload, max_rows=32):
    return batch.key(payload, max_rows)


def v2(rows, request_id=None, datatype="FP64", parameters=None, input_parameters=None, **extra):
    array = np.asarray(rows, dtype=np.float64 if datatype == "FP64" else np.float32)
    tensor = InferInput("x", list(array.shape), datatype, array, input_parameters)
    return InferRequest("m", [tensor], request_id=request_id, parameters=parameters, **extra)


def test_requests_that_differ_only_in_rows_share_a_key():
    assert key(v2([[1, 2]])) == key(v2([[3, 4], [5, 6]], request_id="b"))


@pytest.mark.parametrize(
    "other",
    [
        v2([[1, 2, 3]]),  # another width
        v2([[1, 2]], datatype="FP32"),
        v2([[1, 2]], parameters={"predict_proba": True}),
        v2([[1, 2]], input_parameters={"content_type": "np"}),
        v2([[1, 2]], request_outputs=[RequestedOutput("y")]),
        v2([[1, 2]], request_outputs=[RequestedOutput("y", {"binary_data": True})]),
        v2([[1, 2]], from_grpc=True),
        v2([[1, 2]], model_version="2"),
        InferRequest(
            "m", [InferInput("x", [1, 2], "FP64")], raw_inputs=[np.zeros(2, "<f8").tobytes()]
        ),
    ],
    ids=[
        "width", "datatype", "parameters", "input-parameters", "outputs", "binary-output",
        "grpc", "version", "raw-inputs",
    ],
)  # fmt: skip
def test_requests_that_differ_in_meaning_do_not_share_a_key(other):
    assert key(v2([[1, 2]])) != key(other)


def test_binary_sizes_are_transport_detail_not_meaning():
    small = v2([[1, 2]], input_parameters={"binary_data_size": 16})
    large = v2([[1, 2], [3, 4]], input_parameters={"binary_data_size": 32})
    assert key(small) == key(large)
    assert "binary_data_size" not in batch.merge([small, large]).inputs[0].parameters


@pytest.mark.parametrize(
    "payload",
    [
        InferRequest("m", []),
        InferRequest("m", [InferInput("x", [], "FP64", np.float64(1.0))]),
        InferRequest("m", [InferInput("x", [0, 2], "FP64", np.zeros((0, 2)))]),
        InferRequest(
            "m",
            [InferInput("a", [2], "FP64", np.zeros(2)), InferInput("b", [3], "FP64", np.zeros(3))],
        ),
        {"instances": [[1, 2], [3]]},
        {"instances": [["a", "b"]]},
        {"instances": [[True, 1]]},
        {"instances": [[2**63, 0]]},
        {"instances": [[-(2**63) - 1, 0]]},
        {"instances": []},
        {"instances": [[1, 2]], "parameters": {}},
        {"inputs": [[1, 2]]},
        "text",
    ],
    ids=[
        "no-inputs", "scalar", "no-rows", "unequal-rows", "ragged", "strings", "bools",
        "beyond-int64", "below-int64",
        "empty", "v1-parameters", "v1-inputs", "not-a-request",
    ],
)  # fmt: skip
def test_requests_without_a_clear_batch_axis_never_merge(payload):
    assert key(payload) is None


def test_requests_of_max_rows_or_more_never_merge():
    assert key(v2([[1, 2]] * 3), max_rows=4) is not None
    assert key(v2([[1, 2]] * 4), max_rows=4) is None
    assert key({"instances": [[1, 2]] * 3}, max_rows=4) is not None
    assert key({"instances": [[1, 2]] * 4}, max_rows=4) is None


def test_v1_rows_of_ints_and_of_floats_merge_separately():
    assert key({"instances": [[1, 2]]}) != key({"instances": [[1.0, 2]]})
    assert key({"instances": [[1.5, 2]]}) == key({"instances": [[3, 4.5], [5.0, 6.0]]})


def test_v2_merge_stacks_rows_in_order_and_split_cuts_them_back_with_each_id():
    first, second = v2([[1, 2]], request_id="a"), v2([[3, 4], [5, 6]], request_id="b")
    merged = batch.merge([first, second])
    assert merged.inputs[0].shape == [3, 2]
    np.testing.assert_array_equal(merged.inputs[0].as_numpy(), [[1, 2], [3, 4], [5, 6]])

    total = merged.inputs[0].as_numpy().sum(axis=1)
    output = InferOutput("y", [3], "FP64", total, parameters={"binary_data": True})
    answer = InferResponse(None, "m", [output], model_version="7", parameters={"kept": 1})
    one, two = batch.split(answer, [first, second])
    assert (one.id, two.id) == ("a", "b")
    assert one.model_version == two.model_version == "7"
    assert one.outputs[0].parameters == two.outputs[0].parameters == {"binary_data": True}
    assert one.outputs[0].shape == [1] and two.outputs[0].shape == [2]
    np.testing.assert_array_equal(one.outputs[0].as_numpy(), [3])
    np.testing.assert_array_equal(two.outputs[0].as_numpy(), [7, 11])
    assert one.parameters == two.parameters == {"kept": 1}


def test_bytes_tensors_merge_and_split():
    def strings(*values):
        array = np.array(values, dtype=object)
        return InferRequest("m", [InferInput("s", [len(values)], "BYTES", array)])

    first, second = strings(b"a"), strings(b"b", b"c")
    merged = batch.merge([first, second])
    assert merged.inputs[0].as_numpy().tolist() == [b"a", b"b", b"c"]
    answer = InferResponse(None, "m", [InferOutput("s", [3], "BYTES", merged.inputs[0].as_numpy())])
    assert [r.outputs[0].as_numpy().tolist() for r in batch.split(answer, [first, second])] == [
        [b"a"],
        [b"b", b"c"],
    ]


def test_v1_merge_and_split():
    first, second = {"instances": [[1, 2]]}, {"instances": [[3, 4], [5, 6]]}
    assert batch.merge([first, second]) == {"instances": [[1, 2], [3, 4], [5, 6]]}
    answer = {"predictions": [0, 1, 2]}
    assert batch.split(answer, [first, second]) == [
        {"predictions": [0]},
        {"predictions": [1, 2]},
    ]


@pytest.mark.parametrize(
    "answer",
    [
        InferResponse(None, "m", [InferOutput("y", [1], "FP64", np.array([6.0]))]),
        InferResponse(None, "m", [InferOutput("y", [], "FP64", np.float64(6.0))]),
        InferResponse(None, "m", []),
        # declared [3] over a [3, 1] array: rows would come back in another shape
        InferResponse(None, "m", [InferOutput("y", [3], "FP64", np.zeros((3, 1)))]),
        {"predictions": [1, 2]},
        {"predictions": 3},
        {"predictions": [1, 2, 3], "extra": True},
        "not an answer",
    ],
    ids=[
        "fewer-rows",
        "scalar",
        "no-outputs",
        "declared-shape",
        "v1-fewer",
        "v1-scalar",
        "v1-extra",
        "other",
    ],
)
def test_answers_that_do_not_have_one_row_per_request_row_do_not_split(answer):
    payloads = [v2([[1, 2]]), v2([[3, 4], [5, 6]])] if not isinstance(answer, dict) else None
    payloads = payloads or [{"instances": [[1, 2]]}, {"instances": [[3, 4], [5, 6]]}]
    assert batch.split(answer, payloads) is None
