"""gRPC codec: typed and raw contents, parameters, and a fuzz that only allows InvalidInput."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksrv.errors import InvalidInput
from ksrv.protocol import grpc_codec
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.v2 import InferOutput, InferRequest, InferResponse

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_typed_contents_decode_to_numpy_with_parameters():
    message = pb.ModelInferRequest(model_name="m", model_version="2", id="r")
    item = message.inputs.add(name="x", datatype="INT16", shape=[2, 2])
    item.contents.int_contents.extend([1, -2, 3, -4])
    item.parameters["note"].string_param = "hi"
    message.parameters["flag"].bool_param = True
    message.parameters["big"].uint64_param = 2**64 - 1
    message.parameters["ratio"].double_param = 0.5
    request = grpc_codec.decode_request(message)
    assert request.id == "r" and request.model_version == "2"
    assert request.parameters == {"flag": True, "big": 2**64 - 1, "ratio": 0.5}
    assert request.inputs[0].parameters == {"note": "hi"}
    np.testing.assert_array_equal(request.inputs[0].as_numpy(), [[1, -2], [3, -4]])
    assert request.inputs[0].as_numpy().dtype == np.int16
    assert not request.used_raw_inputs


def test_raw_inputs_get_raw_outputs_and_typed_get_typed():
    output = InferOutput("y", [2], "FP32", np.array([1.5, 2.5], dtype=np.float32))
    response = InferResponse("r", "m", [output], parameters={"n": 3, "s": "x", "b": False})
    raw_request = InferRequest("m", [], raw_inputs=None)
    raw_request.used_raw_inputs = True
    raw = grpc_codec.encode_response(response, raw_request)
    assert np.frombuffer(raw.raw_output_contents[0], dtype="<f4").tolist() == [1.5, 2.5]
    typed = grpc_codec.encode_response(response, InferRequest("m", []))
    assert list(typed.outputs[0].contents.fp32_contents) == [1.5, 2.5]
    assert typed.parameters["n"].int64_param == 3
    assert typed.parameters["b"].WhichOneof("parameter_choice") == "bool_param"


def test_fp16_outputs_always_travel_raw():
    output = InferOutput("y", [1], "FP16", np.array([0.5], dtype=np.float16))
    message = grpc_codec.encode_response(InferResponse("r", "m", [output]), InferRequest("m", []))
    assert np.frombuffer(message.raw_output_contents[0], dtype="<f2").tolist() == [0.5]


def test_request_round_trips_through_the_client_helpers():
    request = InferRequest("m", [], request_id="q", parameters={"k": 1})
    from ksrv.protocol.v2 import InferInput

    request.inputs = [InferInput("a", [3], "BYTES", np.array([b"x", b"", b"yz"], dtype=object))]
    decoded = grpc_codec.decode_request(grpc_codec.encode_request(request))
    assert decoded.inputs[0].as_numpy().tolist() == [b"x", b"", b"yz"]
    assert decoded.parameters == {"k": 1}


def test_contents_with_the_wrong_count_are_invalid():
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="FP64", shape=[3]).contents.fp64_contents.extend([1.0])
    with pytest.raises(InvalidInput, match="needs 3 elements"):
        grpc_codec.decode_request(message)


datatypes = st.sampled_from([*grpc_codec.CONTENTS_FIELD, "FP16", "BF16", "FP99", ""])
shapes = st.lists(st.integers(min_value=-2, max_value=6), max_size=4)


@st.composite
def infer_messages(draw):
    message = pb.ModelInferRequest(model_name=draw(st.text(max_size=5)), id=draw(st.text()))
    use_raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        item = message.inputs.add(
            name=draw(st.text(max_size=4)), datatype=draw(datatypes), shape=draw(shapes)
        )
        if use_raw:
            message.raw_input_contents.append(draw(st.binary(max_size=64)))
        else:
            field = draw(st.sampled_from(sorted(set(grpc_codec.CONTENTS_FIELD.values()))))
            values = {
                "bool_contents": st.lists(st.booleans(), max_size=8),
                "bytes_contents": st.lists(st.binary(max_size=4), max_size=8),
                "fp32_contents": st.lists(st.floats(width=32), max_size=8),
                "fp64_contents": st.lists(st.floats(), max_size=8),
            }.get(field, st.lists(st.integers(0, 2**31 - 1), max_size=8))
            getattr(item.contents, field).extend(draw(values))
    if draw(st.booleans()) and message.inputs:
        message.raw_input_contents.append(b"extra")
    return message


@FUZZ
@given(infer_messages())
def test_decoding_any_message_gives_a_request_or_invalid_input(message):
    try:
        request = grpc_codec.decode_request(message)
    except InvalidInput:
        return
    for item in request.inputs:
        assert item.as_numpy().size == int(np.prod(item.shape))


@FUZZ
@given(st.binary(max_size=512))
def test_parsing_any_bytes_gives_a_request_or_invalid_input(data):
    try:
        message = pb.ModelInferRequest.FromString(data)
    except DecodeError:
        return  # the server answers these INVALID_ARGUMENT before decoding
    with contextlib.suppress(InvalidInput):
        grpc_codec.decode_request(message)
