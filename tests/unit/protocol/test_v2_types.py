"""InferInput/InferOutput/InferRequest/InferResponse and the V1/V2 predict helpers, as KServe's."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import pandas as pd
import pytest

from ksrv.errors import InvalidInput
from ksrv.protocol import v1
from ksrv.protocol.v2 import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    generate_uuid,
)

# --- InferInput / InferOutput -------------------------------------------------------------


@pytest.mark.parametrize("tensor_type", [InferInput, InferOutput])
def test_as_numpy_reshapes_json_data_to_the_declared_shape_and_datatype(tensor_type):
    tensor = tensor_type("x", [2, 3], "INT16", [1, 2, 3, 4, 5, 6])
    array = tensor.as_numpy()
    assert array.shape == (2, 3)
    assert array.dtype == np.int16
    assert array.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_as_numpy_returns_the_array_it_was_given():
    array = np.arange(4, dtype=np.float32)
    assert InferInput("x", [4], "FP32", array).as_numpy() is array


def test_as_numpy_without_data_is_invalid_input():
    with pytest.raises(InvalidInput, match="Tensor 'x' has no data"):
        InferInput("x", [1], "FP32").as_numpy()


def test_as_numpy_of_json_data_that_does_not_fit_the_shape_is_invalid_input():
    with pytest.raises(InvalidInput, match="needs 4 elements but data has 3"):
        InferInput("x", [2, 2], "FP32", [1.0, 2.0, 3.0]).as_numpy()


def test_data_returns_json_data_as_given_and_the_setter_replaces_it():
    tensor = InferInput("x", [2], "INT32", [1, 2])
    assert tensor.data == [1, 2]
    tensor.data = np.array([3, 4], dtype=np.int32)
    assert tensor.as_numpy().tolist() == [3, 4]
    tensor.data = [5, 6]
    assert tensor.data == [5, 6]
    assert tensor.as_numpy().tolist() == [5, 6]


def test_parameters_default_to_an_empty_dict_per_tensor():
    first, second = InferInput("a", [1], "INT8"), InferInput("b", [1], "INT8")
    first.parameters["k"] = 1
    assert second.parameters == {}


def test_shape_is_copied_into_a_list():
    shape = (2, 2)
    assert InferInput("x", shape, "FP32").shape == [2, 2]


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP32", np.array([[1.0, 2.0]], dtype=np.float32)),
        ("INT64", np.array([[1, 2]], dtype=np.int64)),
        ("BOOL", np.array([[True, False]])),
        ("BYTES", np.array([[b"a", b"b"]], dtype=object)),
        ("BYTES", np.array([["a", "b"]])),
        ("BF16", np.array([[1.0, 2.0]], dtype=np.float32)),
        ("FP16", np.array([[1.0, 2.0]], dtype=np.float16)),
        ("UINT64", np.array([[1, 2]], dtype=np.uint64)),
    ],
)
def test_set_data_from_numpy_takes_an_array_of_the_declared_datatype_and_shape(datatype, array):
    tensor = InferInput("x", [1, 2], datatype)
    tensor.set_data_from_numpy(array)
    assert tensor.as_numpy() is array


def test_set_data_from_numpy_marks_the_tensor_binary_by_default():
    tensor = InferOutput("x", [2], "FP32")
    tensor.set_data_from_numpy(np.zeros(2, dtype=np.float32))
    assert tensor.parameters == {"binary_data": True}


def test_set_data_from_numpy_with_binary_data_false_clears_the_flag():
    tensor = InferOutput("x", [2], "FP32", parameters={"binary_data": True, "other": 1})
    tensor.set_data_from_numpy(np.zeros(2, dtype=np.float32), binary_data=False)
    assert tensor.parameters == {"other": 1}


def test_set_data_from_numpy_replaces_json_data():
    tensor = InferInput("x", [2], "INT32", [1, 2])
    tensor.set_data_from_numpy(np.array([3, 4], dtype=np.int32))
    assert tensor.as_numpy().tolist() == [3, 4]
    assert isinstance(tensor.data, np.ndarray)


@pytest.mark.parametrize(
    ("datatype", "array", "got"),
    [
        ("FP32", np.zeros(2, dtype=np.float64), "FP64"),
        ("INT32", np.zeros(2, dtype=np.int64), "INT64"),
        ("INT64", np.zeros(2, dtype=np.uint64), "UINT64"),
        ("BOOL", np.zeros(2, dtype=np.int8), "INT8"),
        ("BYTES", np.zeros(2, dtype=np.float32), "FP32"),
        ("FP16", np.zeros(2, dtype=np.float32), "FP32"),
        ("BF16", np.zeros(2, dtype=np.float16), "FP16"),
    ],
)
def test_set_data_from_numpy_with_another_datatype_is_invalid_input(datatype, array, got):
    tensor = InferInput("x", [2], datatype)
    with pytest.raises(InvalidInput, match=f"Tensor 'x': got {got} data for declared {datatype}"):
        tensor.set_data_from_numpy(array)
    assert tensor.parameters == {}


@pytest.mark.parametrize("shape", [(3,), (2, 1), (1, 2), ()])
def test_set_data_from_numpy_with_another_shape_is_invalid_input(shape):
    tensor = InferInput("x", [2], "FP64")
    with pytest.raises(InvalidInput, match=r"Tensor 'x': got shape .* for declared \[2\]"):
        tensor.set_data_from_numpy(np.zeros(shape))


def test_set_data_from_numpy_with_a_list_is_invalid_input():
    with pytest.raises(InvalidInput, match="expects a numpy array"):
        InferInput("x", [2], "FP64").set_data_from_numpy([1.0, 2.0])


def test_as_string_decodes_bytes_and_keeps_strings_flattened():
    tensor = InferInput(
        "x", [2, 2], "BYTES", np.array([[b"a", "b"], [b"caf\xc3\xa9", ""]], dtype=object)
    )
    assert tensor.as_string() == ["a", "b", "caf\u00e9", ""]


def test_as_string_of_json_bytes_data():
    assert InferInput("x", [2], "BYTES", ["p", "q"]).as_string() == ["p", "q"]


def test_tensors_with_the_same_contents_are_equal():
    a = InferInput("x", [2], "INT32", [1, 2])
    b = InferInput("x", [2], "INT32", np.array([1, 2], dtype=np.int32))
    assert a == b
    assert a != InferInput("x", [2], "INT32", [1, 3])
    assert a != InferInput("y", [2], "INT32", [1, 2])
    assert a != InferOutput("x", [2], "INT32", [1, 2])


def test_repr_names_the_tensor():
    assert (
        repr(InferInput("x", [2], "INT32")) == "InferInput(name='x', shape=[2], datatype='INT32')"
    )


# --- RequestedOutput ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "binary_data"),
    [(None, None), ({}, None), ({"binary_data": True}, True), ({"binary_data": False}, False)],
)
def test_requested_output_binary_data_reads_its_parameter(parameters, binary_data):
    assert RequestedOutput("y", parameters).binary_data is binary_data


# --- InferRequest -------------------------------------------------------------------------


def test_infer_request_defaults():
    request = InferRequest("m", [])
    assert request.id is None
    assert request.parameters == {}
    assert request.request_outputs == []
    assert request.model_version is None
    assert request.from_grpc is False
    assert request.use_binary_outputs is False


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (None, False)])
def test_use_binary_outputs_follows_binary_data_output(value, expected):
    parameters = {} if value is None else {"binary_data_output": value}
    assert InferRequest("m", [], parameters=parameters).use_binary_outputs is expected


def test_get_input_by_name_finds_the_input_or_none():
    a, b = InferInput("a", [1], "INT8", [1]), InferInput("b", [1], "INT8", [2])
    request = InferRequest("m", [a, b])
    assert request.get_input_by_name("b") is b
    assert request.get_input_by_name("c") is None


def test_infer_request_decodes_raw_inputs_in_order():
    inputs = [InferInput("a", [2], "INT32"), InferInput("b", [1], "BYTES")]
    raw = [struct.pack("<2i", 7, -7), b"\x02\x00\x00\x00hi"]
    request = InferRequest("m", inputs, raw_inputs=raw)
    assert request.inputs[0].as_numpy().tolist() == [7, -7]
    assert request.inputs[1].as_numpy().tolist() == [b"hi"]


def test_infer_request_with_malformed_raw_inputs_is_invalid_input():
    with pytest.raises(InvalidInput, match="needs 8 bytes but 3 were sent"):
        InferRequest("m", [InferInput("a", [2], "INT32")], raw_inputs=[b"\x00\x00\x00"])


def test_as_dataframe_has_one_column_per_input():
    request = InferRequest(
        "m",
        [
            InferInput("age", [3], "INT64", [30, 40, 50]),
            InferInput("name", [3], "BYTES", np.array([b"ann", b"bob", "cy"], dtype=object)),
            InferInput("score", [3, 1], "FP64", [[0.5], [0.25], [1.0]]),
        ],
    )
    frame = request.as_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["age", "name", "score"]
    assert frame["age"].tolist() == [30, 40, 50]
    assert frame["name"].tolist() == ["ann", "bob", "cy"]
    assert frame["score"].tolist() == [0.5, 0.25, 1.0]


def test_as_dataframe_splits_a_2d_input_into_one_column_per_feature():
    request = InferRequest("m", [InferInput("x", [2, 3], "INT32", [[1, 2, 3], [4, 5, 6]])])
    frame = request.as_dataframe()
    assert list(frame.columns) == ["x_0", "x_1", "x_2"]
    assert frame.to_dict(orient="list") == {"x_0": [1, 4], "x_1": [2, 5], "x_2": [3, 6]}


def test_infer_request_repr_names_model_and_id():
    assert (
        repr(InferRequest("m", [], request_id="7"))
        == "InferRequest(model_name='m', id='7', inputs=[])"
    )


# --- InferResponse ------------------------------------------------------------------------


def test_infer_response_without_an_id_gets_a_uuid4():
    response = InferResponse(None, "m", [])
    assert uuid.UUID(response.id).version == 4
    assert InferResponse(None, "m", []).id != response.id


def test_generate_uuid_is_a_uuid4_string():
    assert uuid.UUID(generate_uuid()).version == 4


def test_infer_response_defaults():
    response = InferResponse("r", "m", [])
    assert response.id == "r"
    assert response.model_version is None
    assert response.parameters == {}
    assert response.use_binary_outputs is False
    assert response.requested_outputs is None


def test_infer_response_keeps_use_binary_outputs_and_requested_outputs():
    requested = [RequestedOutput("y")]
    response = InferResponse("r", "m", [], use_binary_outputs=True, requested_outputs=requested)
    assert response.use_binary_outputs is True
    assert response.requested_outputs is requested


def test_get_output_by_name_finds_the_output_or_none():
    y = InferOutput("y", [1], "FP32", [1.0])
    response = InferResponse("r", "m", [y])
    assert response.get_output_by_name("y") is y
    assert response.get_output_by_name("z") is None


def test_infer_response_decodes_raw_outputs():
    outputs = [InferOutput("y", [2], "FP64")]
    response = InferResponse("r", "m", outputs, raw_outputs=[struct.pack("<2d", 0.5, -1.0)])
    assert response.outputs[0].as_numpy().tolist() == [0.5, -1.0]


# --- v1.get_predict_input -----------------------------------------------------------------


def test_v1_list_of_lists_becomes_an_ndarray():
    array = v1.get_predict_input({"instances": [[1, 2], [3, 4]]})
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [[1, 2], [3, 4]]


def test_v1_list_of_numbers_becomes_an_ndarray():
    array = v1.get_predict_input({"instances": [1.5, 2.5]})
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [1.5, 2.5]


def test_v1_list_of_dicts_becomes_a_dataframe():
    frame = v1.get_predict_input({"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]})
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict(orient="records") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_v1_list_of_lists_of_dicts_becomes_a_dataframe():
    frame = v1.get_predict_input({"instances": [[{"a": 1}, {"a": 2}], [{"a": 3}]]})
    assert isinstance(frame, pd.DataFrame)
    assert frame["a"].tolist() == [1, 2, 3]


def test_v1_list_of_strings_stays_a_list():
    assert v1.get_predict_input({"instances": ["one", "two"]}) == ["one", "two"]


def test_v1_inputs_are_read_before_instances():
    assert v1.get_predict_input({"inputs": [[9]], "instances": [[1]]}).tolist() == [[9]]


def test_v1_empty_instances_are_an_empty_array():
    assert v1.get_predict_input({"instances": []}).size == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([[1, 2]], "Expected a JSON object"),
        ({"instances": {"a": 1}}, '"instances" to be a list'),
        ({"inputs": "abc"}, '"inputs" to be a list'),
        ({"predict": [[1]]}, '"instances" or "inputs" to be a list'),
        ({"instances": [[1, 2], [3]]}, "instances are not a regular array"),
        ({"instances": [None, None]}, "instances must be numbers, strings or objects"),
        ({"instances": [{"a": 1}, [1]]}, "instances"),
    ],
)
def test_v1_malformed_payload_is_invalid_input(payload, message):
    with pytest.raises(InvalidInput, match=message):
        v1.get_predict_input(payload)


# --- v2 get_predict_input -----------------------------------------------------------------


def test_v2_uses_only_the_first_input_as_numpy():
    request = InferRequest(
        "m",
        [InferInput("a", [1, 2], "FP32", [1.0, 2.0]), InferInput("b", [1], "FP32", [9.0])],
    )
    array = v1.get_predict_input(request)
    assert array.dtype == np.float32
    assert array.tolist() == [[1.0, 2.0]]


def test_v2_content_type_pd_gives_a_dataframe_of_all_inputs():
    request = InferRequest(
        "m",
        [InferInput("a", [2], "INT32", [1, 2]), InferInput("b", [2], "BYTES", ["x", "y"])],
        parameters={"content_type": "pd"},
    )
    frame = v1.get_predict_input(request)
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict(orient="records") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_v2_request_without_inputs_is_invalid_input():
    with pytest.raises(InvalidInput, match="no inputs"):
        v1.get_predict_input(InferRequest("m", []))


# --- get_predict_response -----------------------------------------------------------------


def test_v1_response_wraps_an_ndarray_as_a_list_of_predictions():
    result = v1.get_predict_response({"instances": [[1]]}, np.array([[0.25, 0.75]]), "m")
    assert result == {"predictions": [[0.25, 0.75]]}


def test_v1_response_wraps_a_dataframe_as_records():
    frame = pd.DataFrame({"label": ["a", "b"], "p": [0.5, 0.75]})
    result = v1.get_predict_response({"instances": []}, frame, "m")
    assert result == {"predictions": [{"label": "a", "p": 0.5}, {"label": "b", "p": 0.75}]}


def test_v1_response_passes_a_list_through():
    assert v1.get_predict_response({"instances": []}, ["x"], "m") == {"predictions": ["x"]}


@pytest.mark.parametrize(
    ("result", "datatype"),
    [
        (np.array([1, 2], dtype=np.int64), "INT64"),
        (np.array([1, 2], dtype=np.int32), "INT32"),
        (np.array([0.5, 1.5], dtype=np.float32), "FP32"),
        ([0.5, 1.5], "FP64"),
        (np.array([True, False]), "BOOL"),
        (np.array(["cat", "dog"]), "BYTES"),
        (np.array([7, 9], dtype=np.uint8), "UINT8"),
    ],
)
def test_v2_response_is_output_0_with_the_inferred_datatype(result, datatype):
    request = InferRequest("m", [], request_id="req-1", model_version="3")
    response = v1.get_predict_response(request, result, "m")
    assert isinstance(response, InferResponse)
    assert response.id == "req-1"
    assert response.model_name == "m"
    assert response.model_version == "3"
    (output,) = response.outputs
    assert output.name == "output-0"
    assert output.datatype == datatype
    assert output.shape == [2]
    assert output.as_numpy().tolist() == np.asarray(result).tolist()


def test_v2_response_of_strings_holds_an_object_array():
    response = v1.get_predict_response(InferRequest("m", []), np.array(["a", "bc"]), "m")
    assert response.outputs[0].as_numpy().dtype == object


def test_v2_response_keeps_a_2d_result_shape():
    response = v1.get_predict_response(InferRequest("m", []), np.zeros((3, 2)), "m")
    assert response.outputs[0].shape == [3, 2]


def test_v2_response_without_request_id_gets_a_generated_id():
    response = v1.get_predict_response(InferRequest("m", []), np.zeros(1), "m")
    assert uuid.UUID(response.id).version == 4


def test_v2_response_of_a_dataframe_has_one_output_per_column():
    frame = pd.DataFrame({"label": ["a", "b"], "p": [0.5, 0.75]})
    response = v1.get_predict_response(InferRequest("m", []), frame, "m")
    assert [(o.name, o.datatype, o.shape) for o in response.outputs] == [
        ("label", "BYTES", [2]),
        ("p", "FP64", [2]),
    ]
    assert response.outputs[0].as_numpy().tolist() == ["a", "b"]
