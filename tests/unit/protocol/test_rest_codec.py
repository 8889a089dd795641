"""V2 REST bodies (JSON, and JSON + the binary tensor extension) <-> InferRequest/InferResponse.

Binary bodies are built by hand as the extension describes them: a JSON header whose binary
inputs carry `parameters.binary_data_size` and no `data`, then the raw tensors in input order;
`Inference-Header-Content-Length` (here `json_length`) is the header's length in bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from ksrv.errors import InvalidInput
from ksrv.protocol import rest_codec
from ksrv.protocol.v2 import InferOutput, InferRequest, InferResponse, RequestedOutput


def json_body(document: Any) -> bytes:
    return json.dumps(document).encode()


def binary_body(document: dict[str, Any], *blobs: bytes) -> tuple[bytes, int]:
    header = json.dumps(document).encode()
    return header + b"".join(blobs), len(header)


def bytes_blob(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def parse_response(body: bytes, json_length: int | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON header of an encoded response and each binary output's raw bytes by name."""
    header = json.loads(body if json_length is None else body[:json_length])
    blobs: dict[str, bytes] = {}
    offset = 0 if json_length is None else json_length
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blobs[output["name"]] = body[offset : offset + size]
            offset += size
    assert offset == len(body) or json_length is None
    return header, blobs


def response(*outputs: InferOutput, **kwargs: Any) -> InferResponse:
    return InferResponse(kwargs.pop("response_id", "r-1"), "m", list(outputs), **kwargs)


def int_output(name: str = "a", values: tuple[int, ...] = (1, 2, 3)) -> InferOutput:
    return InferOutput(name, [len(values)], "INT32", np.array(values, dtype=np.int32))


def walk_values(value: Any):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_values(item)


# --- decode_request: JSON -----------------------------------------------------------------


def test_decode_request_reads_a_json_body():
    body = json_body(
        {
            "inputs": [
                {"name": "in0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
                {"name": "in1", "shape": [3], "datatype": "BOOL", "data": [True, False, True]},
            ]
        }
    )
    request = rest_codec.decode_request(body, "mymodel")
    assert request.model_name == "mymodel"
    assert [i.name for i in request.inputs] == ["in0", "in1"]
    in0, in1 = request.inputs
    assert (in0.shape, in0.datatype) == ([2, 2], "UINT32")
    np.testing.assert_array_equal(in0.as_numpy(), np.array([[1, 2], [3, 4]], dtype=np.uint32))
    assert in0.as_numpy().dtype == np.uint32
    np.testing.assert_array_equal(in1.as_numpy(), [True, False, True])


def test_decode_request_keeps_the_json_data_as_sent():
    data = [[1.5, 2.5], [3.5, 4.5]]
    body = json_body({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": data}]})
    request = rest_codec.decode_request(body, "m")
    assert request.inputs[0].data == data


def test_decode_request_passes_the_id_and_parameters_through():
    parameters = {"content_type": "np", "priority": 3, "flag": True}
    body = json_body(
        {
            "id": "42",
            "parameters": parameters,
            "inputs": [
                {
                    "name": "x",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"content_type": "str"},
                    "data": ["hi"],
                }
            ],
        }
    )
    request = rest_codec.decode_request(body, "m", model_version="7")
    assert request.id == "42"
    assert request.parameters == parameters
    assert request.model_version == "7"
    assert request.inputs[0].parameters == {"content_type": "str"}


def test_decode_request_without_id_or_parameters_has_none_and_empty():
    body = json_body({"inputs": []})
    request = rest_codec.decode_request(body, "m")
    assert request.id is None
    assert request.parameters == {}
    assert request.inputs == []
    assert request.request_outputs == []


def test_decode_request_reads_requested_outputs_in_order_with_parameters():
    body = json_body(
        {
            "inputs": [],
            "outputs": [
                {"name": "probs", "parameters": {"binary_data": True}},
                {"name": "label"},
                {"name": "score", "parameters": {"binary_data": False}},
            ],
        }
    )
    request = rest_codec.decode_request(body, "m")
    outputs = request.request_outputs
    assert [o.name for o in outputs] == ["probs", "label", "score"]
    assert [o.binary_data for o in outputs] == [True, None, False]
    assert outputs[0].parameters == {"binary_data": True}
    assert outputs[1].parameters == {}


def test_decode_request_sets_use_binary_outputs_from_binary_data_output():
    body = json_body({"parameters": {"binary_data_output": True}, "inputs": []})
    assert rest_codec.decode_request(body, "m").use_binary_outputs is True
    assert rest_codec.decode_request(json_body({"inputs": []}), "m").use_binary_outputs is False


def test_decode_request_accepts_a_json_length_equal_to_the_body_length():
    body = json_body({"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [5]}]})
    request = rest_codec.decode_request(body, "m", json_length=len(body))
    assert request.inputs[0].as_numpy().tolist() == [5]


# --- decode_request: JSON + binary --------------------------------------------------------


def test_decode_request_reads_binary_inputs_after_the_json_header():
    document = {
        "id": "b-1",
        "inputs": [
            {
                "name": "ints",
                "shape": [2, 2],
                "datatype": "INT32",
                "parameters": {"binary_data_size": 16},
            },
            {"name": "json", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5]},
            {
                "name": "words",
                "shape": [3],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 4 * 3 + 6},
            },
            {
                "name": "flags",
                "shape": [2],
                "datatype": "BOOL",
                "parameters": {"binary_data_size": 2},
            },
        ],
    }
    body, json_length = binary_body(
        document,
        struct.pack("<4i", 1, -2, 3, -4),
        bytes_blob(b"one", b"", b"\xff\x00\x01"),
        b"\x01\x00",
    )
    request = rest_codec.decode_request(body, "m", json_length)
    assert request.id == "b-1"
    ints, floats, words, flags = request.inputs
    np.testing.assert_array_equal(ints.as_numpy(), np.array([[1, -2], [3, -4]], dtype=np.int32))
    np.testing.assert_array_equal(floats.as_numpy(), np.array([0.5, 1.5], dtype=np.float32))
    assert words.as_numpy().tolist() == [b"one", b"", b"\xff\x00\x01"]
    np.testing.assert_array_equal(flags.as_numpy(), [True, False])


@pytest.mark.parametrize(
    ("datatype", "code", "values"),
    [
        ("BOOL", "?", [True, False]),
        ("INT8", "b", [-128, 127]),
        ("INT16", "h", [-32768, 32767]),
        ("INT32", "i", [-(2**31), 2**31 - 1]),
        ("INT64", "q", [-(2**63), 2**63 - 1]),
        ("UINT8", "B", [0, 255]),
        ("UINT16", "H", [0, 65535]),
        ("UINT32", "I", [0, 2**32 - 1]),
        ("UINT64", "Q", [0, 2**64 - 1]),
        ("FP16", "e", [-0.5, 65504.0]),
        ("FP32", "f", [-0.5, 1e30]),
        ("FP64", "d", [-0.5, 1e300]),
    ],
)
def test_decode_request_reads_every_fixed_size_datatype_as_binary(datatype, code, values):
    raw = struct.pack("<2" + code, *values)
    document = {
        "inputs": [
            {
                "name": "x",
                "shape": [2],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    body, json_length = binary_body(document, raw)
    array = rest_codec.decode_request(body, "m", json_length).inputs[0].as_numpy()
    assert array.tolist() == list(struct.unpack("<2" + code, raw))


def test_decode_request_reads_bf16_binary_as_float32():
    document = {
        "inputs": [
            {"name": "x", "shape": [2], "datatype": "BF16", "parameters": {"binary_data_size": 4}}
        ]
    }
    body, json_length = binary_body(document, b"\x80\x3f\x49\x40")
    array = rest_codec.decode_request(body, "m", json_length).inputs[0].as_numpy()
    assert array.dtype == np.float32
    assert array.tolist() == [1.0, 3.140625]


def test_decode_request_accepts_a_zero_size_binary_input():
    document = {
        "inputs": [
            {"name": "x", "shape": [0], "datatype": "FP32", "parameters": {"binary_data_size": 0}}
        ]
    }
    body, json_length = binary_body(document)
    assert rest_codec.decode_request(body, "m", json_length).inputs[0].as_numpy().shape == (0,)


def test_decode_request_keeps_other_input_parameters_of_a_binary_input():
    document = {
        "inputs": [
            {
                "name": "x",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 6, "content_type": "str"},
            }
        ]
    }
    body, json_length = binary_body(document, bytes_blob(b"hi"))
    infer_input = rest_codec.decode_request(body, "m", json_length).inputs[0]
    assert infer_input.parameters.get("content_type") == "str"
    assert infer_input.as_string() == ["hi"]


# --- decode_request: malformed envelopes --------------------------------------------------

GOOD_INPUT = {"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}
BINARY_INPUT = {
    "name": "x",
    "shape": [1],
    "datatype": "INT32",
    "parameters": {"binary_data_size": 4},
}
ONE = struct.pack("<i", 1)


def _binary(document: dict[str, Any], *blobs: bytes) -> tuple[bytes, int]:
    return binary_body(document, *blobs)


MALFORMED: list[tuple[str, bytes, int | None, str]] = [
    ("empty body", b"", None, "Request body is empty"),
    ("invalid JSON", b'{"inputs": [', None, "Unrecognized request format"),
    ("not JSON at all", b"hello", None, "Unrecognized request format"),
    ("invalid UTF-8", b'{"id": "\xff", "inputs": []}', None, "Unrecognized request format"),
    ("NaN literal", b'{"inputs": [{"data": [NaN]}]}', None, "Unrecognized request format"),
    ("top-level JSON array", b"[]", None, "must be a JSON object"),
    ("top-level JSON string", b'"inputs"', None, "must be a JSON object"),
    ("top-level JSON null", b"null", None, "must be a JSON object"),
    ("missing inputs", json_body({"id": "1"}), None, '"inputs" to be a list'),
    ("inputs not a list", json_body({"inputs": {"name": "x"}}), None, '"inputs" to be a list'),
    ("inputs null", json_body({"inputs": None}), None, '"inputs" to be a list'),
    ("input not an object", json_body({"inputs": [["x"]]}), None, "inputs[0] must be an object"),
    (
        "second input not an object",
        json_body({"inputs": [GOOD_INPUT, "x"]}),
        None,
        "inputs[1] must be an object",
    ),
    (
        "missing name",
        json_body({"inputs": [{"shape": [1], "datatype": "INT32", "data": [1]}]}),
        None,
        "inputs[0] needs a string 'name'",
    ),
    (
        "name not a string",
        json_body({"inputs": [{**GOOD_INPUT, "name": 3}]}),
        None,
        "inputs[0] needs a string 'name'",
    ),
    (
        "missing shape",
        json_body({"inputs": [{"name": "x", "datatype": "INT32", "data": [1]}]}),
        None,
        "Input 'x': shape must be a list",
    ),
    (
        "negative shape",
        json_body({"inputs": [{**GOOD_INPUT, "shape": [-1]}]}),
        None,
        "Input 'x': shape must be a list",
    ),
    (
        "missing datatype",
        json_body({"inputs": [{"name": "x", "shape": [1], "data": [1]}]}),
        None,
        "Input 'x': unknown datatype None",
    ),
    (
        "unknown datatype",
        json_body({"inputs": [{**GOOD_INPUT, "datatype": "FLOAT"}]}),
        None,
        "Input 'x': unknown datatype 'FLOAT'",
    ),
    (
        "missing data and no binary size",
        json_body({"inputs": [{"name": "x", "shape": [1], "datatype": "INT32"}]}),
        None,
        "Input 'x' has neither 'data' nor binary_data_size",
    ),
    (
        "missing data with other parameters",
        json_body({"inputs": [{**BINARY_INPUT, "parameters": {"content_type": "np"}}]}),
        None,
        "Input 'x' has neither 'data' nor binary_data_size",
    ),
    (
        "data does not match shape",
        json_body({"inputs": [{**GOOD_INPUT, "data": [1, 2]}]}),
        None,
        "Input 'x': shape [1] needs 1 elements but data has 2",
    ),
    (
        "input parameters not an object",
        json_body({"inputs": [{**GOOD_INPUT, "parameters": [1]}]}),
        None,
        "'parameters' of the input 'x' must be an object",
    ),
    (
        "request parameters not an object",
        json_body({"inputs": [GOOD_INPUT], "parameters": "binary"}),
        None,
        "'parameters' of the request must be an object",
    ),
    (
        "id not a string",
        json_body({"id": 42, "inputs": [GOOD_INPUT]}),
        None,
        "'id' must be a string",
    ),
    ("id a list", json_body({"id": ["42"], "inputs": []}), None, "'id' must be a string"),
    ("outputs not a list", json_body({"inputs": [], "outputs": {"name": "y"}}), None, "'outputs'"),
    (
        "output without a name",
        json_body({"inputs": [], "outputs": [{"parameters": {}}]}),
        None,
        "outputs[0] needs a string 'name'",
    ),
    (
        "output not an object",
        json_body({"inputs": [], "outputs": ["y"]}),
        None,
        "outputs[0] needs a string 'name'",
    ),
    (
        "output parameters not an object",
        json_body({"inputs": [], "outputs": [{"name": "y", "parameters": 1}]}),
        None,
        "'parameters' of the output must be an object",
    ),
    (
        "binary size past the end",
        *_binary({"inputs": [BINARY_INPUT]}, b"\x01\x00"),
        "Input 'x': binary_data_size 4 runs past the end of the body",
    ),
    (
        "binary size past the end with no blob at all",
        *_binary({"inputs": [BINARY_INPUT]}),
        "Input 'x': binary_data_size 4 runs past the end of the body",
    ),
    (
        "binary size without a json length",
        json_body({"inputs": [BINARY_INPUT]}),
        None,
        "Input 'x': binary_data_size 4 runs past the end of the body",
    ),
    (
        "second binary input past the end",
        *_binary({"inputs": [BINARY_INPUT, {**BINARY_INPUT, "name": "y"}]}, ONE, b"\x01"),
        "Input 'y': binary_data_size 4 runs past the end of the body",
    ),
    (
        "leftover blob bytes",
        *_binary({"inputs": [BINARY_INPUT]}, ONE, b"\x00"),
        "Binary data holds 5 bytes but the inputs' binary_data_size add up to 4",
    ),
    (
        "blob bytes with only json inputs",
        *_binary({"inputs": [GOOD_INPUT]}, ONE),
        "Binary data holds 4 bytes but the inputs' binary_data_size add up to 0",
    ),
    (
        "binary size negative",
        *_binary({"inputs": [{**BINARY_INPUT, "parameters": {"binary_data_size": -4}}]}, ONE),
        "Input 'x': binary_data_size must be a non-negative integer",
    ),
    (
        "binary size a string",
        *_binary({"inputs": [{**BINARY_INPUT, "parameters": {"binary_data_size": "4"}}]}, ONE),
        "Input 'x': binary_data_size must be a non-negative integer",
    ),
    (
        "binary size a boolean",
        *_binary({"inputs": [{**BINARY_INPUT, "parameters": {"binary_data_size": True}}]}, b"\x01"),
        "Input 'x': binary_data_size must be a non-negative integer",
    ),
    (
        "binary size a float",
        *_binary({"inputs": [{**BINARY_INPUT, "parameters": {"binary_data_size": 4.0}}]}, ONE),
        "Input 'x': binary_data_size must be a non-negative integer",
    ),
    (
        "binary size not matching the shape",
        *_binary(
            {"inputs": [{**BINARY_INPUT, "parameters": {"binary_data_size": 3}}]}, b"\x01\x00\x00"
        ),
        "Input 'x': shape [1] of INT32 needs 4 bytes but 3 were sent",
    ),
    (
        "binary BYTES with a truncated prefix",
        *_binary(
            {
                "inputs": [
                    {**BINARY_INPUT, "datatype": "BYTES", "parameters": {"binary_data_size": 3}}
                ]
            },
            b"\x01\x00\x00",
        ),
        "Input 'x': truncated BYTES length prefix",
    ),
    (
        "header length larger than the body",
        json_body({"inputs": [GOOD_INPUT]}),
        10_000,
        "Inference-Header-Content-Length 10000 exceeds the body length",
    ),
    (
        "negative header length",
        json_body({"inputs": [GOOD_INPUT]}),
        -1,
        "Inference-Header-Content-Length -1",
    ),
    ("zero header length", json_body({"inputs": [GOOD_INPUT]}), 0, "Request body is empty"),
    (
        "header length cutting the JSON short",
        json_body({"inputs": [GOOD_INPUT]}),
        5,
        "Unrecognized request format",
    ),
    (
        "header length too short leaves JSON as blob",
        json_body({"inputs": []}) + b" ",
        len(json_body({"inputs": []})) - 1,
        "Unrecognized request format",
    ),
]


@pytest.mark.parametrize(
    ("body", "json_length", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_request_is_invalid_input_with_a_clear_message(body, json_length, message):
    with pytest.raises(InvalidInput) as info:
        rest_codec.decode_request(body, "m", json_length)
    assert message in str(info.value)


def test_malformed_request_message_names_the_valid_datatypes():
    body = json_body({"inputs": [{**GOOD_INPUT, "datatype": "fp32x"}]})
    with pytest.raises(InvalidInput, match="expected one of BF16, BOOL, BYTES"):
        rest_codec.decode_request(body, "m")


def test_decoding_the_same_body_twice_gives_the_same_request():
    """Decoding does not consume or mutate the caller's body."""
    document = {"inputs": [BINARY_INPUT]}
    body, json_length = binary_body(document, ONE)
    first = rest_codec.decode_request(body, "m", json_length)
    second = rest_codec.decode_request(body, "m", json_length)
    assert first.inputs[0].as_numpy().tolist() == second.inputs[0].as_numpy().tolist() == [1]


# --- encode_response ----------------------------------------------------------------------


def test_encode_response_writes_json_without_null_fields():
    body, json_length = rest_codec.encode_response(response(int_output()))
    assert json_length is None
    document = json.loads(body)
    assert document == {
        "model_name": "m",
        "id": "r-1",
        "outputs": [{"name": "a", "datatype": "INT32", "shape": [3], "data": [1, 2, 3]}],
    }
    assert None not in list(walk_values(document))


def test_encode_response_includes_model_version_and_parameters_when_set():
    body, _ = rest_codec.encode_response(
        response(int_output(), model_version="2", parameters={"k": "v", "n": 1})
    )
    document = json.loads(body)
    assert document["model_version"] == "2"
    assert document["parameters"] == {"k": "v", "n": 1}
    assert list(document) == ["model_name", "model_version", "id", "parameters", "outputs"]


def test_encode_response_keeps_output_parameters_other_than_binary_data():
    output = InferOutput("a", [1], "INT32", np.array([1], np.int32), {"content_type": "np"})
    document = json.loads(rest_codec.encode_response(response(output))[0])
    assert document["outputs"][0]["parameters"] == {"content_type": "np"}


def test_encode_response_writes_data_given_as_a_list_as_is():
    output = InferOutput("a", [2, 2], "FP64", [[1.0, 2.0], [3.0, 4.0]])
    document = json.loads(rest_codec.encode_response(response(output))[0])
    assert document["outputs"][0]["data"] == [[1.0, 2.0], [3.0, 4.0]]


def test_encode_response_flattens_numpy_data_row_major():
    output = InferOutput("a", [2, 2], "FP32", np.array([[1, 2], [3, 4]], dtype=np.float32))
    document = json.loads(rest_codec.encode_response(response(output))[0])
    assert document["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]


def test_encode_response_writes_bytes_outputs_as_strings_in_json():
    array = np.array([b"spam", "eggs", b"caf\xc3\xa9"], dtype=object)
    output = InferOutput("words", [3], "BYTES", array)
    document = json.loads(rest_codec.encode_response(response(output))[0])
    assert document["outputs"][0]["data"] == ["spam", "eggs", "caf\u00e9"]


def test_encode_response_writes_bf16_outputs_rounded_in_json():
    output = InferOutput("x", [2], "BF16", np.array([np.pi, 1.0], dtype=np.float32))
    document = json.loads(rest_codec.encode_response(response(output))[0])
    assert document["outputs"][0]["data"] == [3.140625, 1.0]


def test_encode_response_uses_the_response_id():
    request = InferRequest("m", [], request_id="req-9")
    document = json.loads(rest_codec.encode_response(response(int_output()), request)[0])
    assert document["id"] == "r-1"


def test_encode_response_writes_binary_outputs_when_the_request_asks_with_binary_data_output():
    words = InferOutput("w", [2], "BYTES", np.array([b"ab", b""], dtype=object))
    halves = InferOutput("h", [2], "FP16", np.array([0.5, -2.0], dtype=np.float16))
    request = InferRequest("m", [], parameters={"binary_data_output": True})
    body, json_length = rest_codec.encode_response(response(int_output(), words, halves), request)
    assert json_length is not None
    header, blobs = parse_response(body, json_length)
    assert [o["name"] for o in header["outputs"]] == ["a", "w", "h"]
    for output in header["outputs"]:
        assert "data" not in output
        assert set(output["parameters"]) == {"binary_data_size"}
    assert struct.unpack("<3i", blobs["a"]) == (1, 2, 3)
    assert blobs["w"] == b"\x02\x00\x00\x00ab\x00\x00\x00\x00"
    assert struct.unpack("<2e", blobs["h"]) == (0.5, -2.0)
    assert len(body) == json_length + 12 + 10 + 4


def test_encode_response_writes_bf16_binary_outputs_as_two_bytes_each():
    output = InferOutput("x", [2], "BF16", np.array([np.pi, 1.0], dtype=np.float32))
    request = InferRequest("m", [], parameters={"binary_data_output": True})
    body, json_length = rest_codec.encode_response(response(output), request)
    _, blobs = parse_response(body, json_length)
    assert blobs["x"] == b"\x49\x40\x80\x3f"


def test_encode_response_honours_per_output_binary_data_of_requested_outputs():
    request = InferRequest(
        "m",
        [],
        request_outputs=[RequestedOutput("b", {"binary_data": True}), RequestedOutput("a")],
    )
    outputs = (int_output("a"), int_output("b", (7, 8)))
    body, json_length = rest_codec.encode_response(response(*outputs), request)
    header, blobs = parse_response(body, json_length)
    b, a = header["outputs"]
    assert b["parameters"] == {"binary_data_size": 8}
    assert "data" not in b
    assert struct.unpack("<2i", blobs["b"]) == (7, 8)
    assert a["data"] == [1, 2, 3]
    assert "parameters" not in a


def test_encode_response_per_output_binary_data_false_overrides_binary_data_output():
    request = InferRequest(
        "m",
        [],
        parameters={"binary_data_output": True},
        request_outputs=[RequestedOutput("a", {"binary_data": False}), RequestedOutput("b")],
    )
    outputs = (int_output("a"), int_output("b", (7, 8)))
    body, json_length = rest_codec.encode_response(response(*outputs), request)
    header, blobs = parse_response(body, json_length)
    assert header["outputs"][0]["data"] == [1, 2, 3]
    assert list(blobs) == ["b"]


def test_encode_response_writes_an_output_marked_binary_by_set_data_from_numpy_as_binary():
    output = InferOutput("a", [2], "INT64")
    output.set_data_from_numpy(np.array([5, 6], dtype=np.int64))
    body, json_length = rest_codec.encode_response(response(output))
    header, blobs = parse_response(body, json_length)
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert struct.unpack("<2q", blobs["a"]) == (5, 6)


def test_encode_response_writes_json_for_an_output_set_with_binary_data_false():
    output = InferOutput("a", [2], "INT64")
    output.set_data_from_numpy(np.array([5, 6], dtype=np.int64), binary_data=False)
    body, json_length = rest_codec.encode_response(response(output))
    assert json_length is None
    assert json.loads(body)["outputs"][0] == {
        "name": "a",
        "datatype": "INT64",
        "shape": [2],
        "data": [5, 6],
    }


def test_encode_response_writes_binary_outputs_when_the_response_asks_for_them():
    body, json_length = rest_codec.encode_response(response(int_output(), use_binary_outputs=True))
    _, blobs = parse_response(body, json_length)
    assert struct.unpack("<3i", blobs["a"]) == (1, 2, 3)


def test_encode_response_converts_list_data_for_binary_outputs():
    output = InferOutput("a", [2, 2], "UINT16", [[1, 2], [3, 65535]])
    request = InferRequest("m", [], parameters={"binary_data_output": True})
    body, json_length = rest_codec.encode_response(response(output), request)
    _, blobs = parse_response(body, json_length)
    assert struct.unpack("<4H", blobs["a"]) == (1, 2, 3, 65535)


def test_requested_outputs_filter_and_order_the_response():
    outputs = (int_output("a"), int_output("b"), int_output("c"))
    request = InferRequest("m", [], request_outputs=[RequestedOutput("c"), RequestedOutput("a")])
    document = json.loads(rest_codec.encode_response(response(*outputs), request)[0])
    assert [o["name"] for o in document["outputs"]] == ["c", "a"]


def test_unknown_requested_output_is_invalid_input_naming_it():
    request = InferRequest("m", [], request_outputs=[RequestedOutput("nope")])
    with pytest.raises(InvalidInput, match=r"Requested output 'nope' is not produced.*\['a'\]"):
        rest_codec.encode_response(response(int_output("a")), request)


def test_a_decoded_binary_request_and_its_binary_response_round_trip():
    document = {
        "id": "rt",
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "x", "shape": [3], "datatype": "FP64", "parameters": {"binary_data_size": 24}}
        ],
        "outputs": [{"name": "doubled"}],
    }
    body, json_length = binary_body(document, struct.pack("<3d", 1.0, 2.5, -4.0))
    request = rest_codec.decode_request(body, "m", json_length)
    doubled = request.inputs[0].as_numpy() * 2
    result = InferResponse(
        request.id, "m", [InferOutput("doubled", [3], "FP64", doubled), int_output("extra")]
    )
    out_body, out_length = rest_codec.encode_response(result, request)
    header, blobs = parse_response(out_body, out_length)
    assert header["id"] == "rt"
    assert [o["name"] for o in header["outputs"]] == ["doubled"]
    assert struct.unpack("<3d", blobs["doubled"]) == (2.0, 5.0, -8.0)
