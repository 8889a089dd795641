"""Fuzz `rest_codec.decode_request`: a body is either a request or `InvalidInput`, never a crash.

Anything else (TypeError, ValueError, RecursionError, a numpy RuntimeWarning, which pytest turns
into an error) would reach the client as a 500 instead of a 400.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ksrv.errors import InvalidInput
from ksrv.protocol import rest_codec, tensor
from ksrv.protocol.v2 import InferRequest

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    derandomize=True,  # the same examples every run, so an xfail stays an xfail
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = ["id", "parameters", "inputs", "outputs", "name", "shape", "datatype", "data"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_keys = st.sampled_from(KEYS) | st.text(max_size=6)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4)
    ),
    max_leaves=10,
)


def outcome(body: bytes, json_length: int | None) -> InferRequest | InvalidInput:
    """The request decoded from `body`, or the InvalidInput it raised; anything else fails."""
    try:
        return rest_codec.decode_request(body, "m", json_length)
    except InvalidInput as exc:
        return exc


def dumps(document: Any) -> bytes:
    # stdlib json writes integers beyond 64 bits, which orjson must then refuse cleanly.
    return json.dumps(document).encode()


def assert_inputs_are_consistent(request: InferRequest) -> None:
    for infer_input in request.inputs:
        array = infer_input.as_numpy()
        assert list(array.shape) == infer_input.shape
        assert array.dtype == tensor.NUMPY_DTYPES[infer_input.datatype]


@st.composite
def json_lengths(draw: st.DrawFn, body: bytes) -> int | None:
    return draw(st.none() | st.integers(-3, len(body) + 3) | st.just(len(body)))


# --- arbitrary bytes and arbitrary JSON ---------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=200), data=st.data())
def test_arbitrary_bytes_decode_to_a_request_or_invalid_input(body, data):
    outcome(body, data.draw(json_lengths(body)))


@FUZZ
@given(document=json_values, blob=st.binary(max_size=32), with_length=st.booleans())
def test_arbitrary_json_documents_decode_to_a_request_or_invalid_input(document, blob, with_length):
    header = dumps(document)
    if with_length:
        outcome(header + blob, len(header))
    else:
        outcome(header, None)


@FUZZ
@given(document=json_values, data=st.data())
def test_arbitrary_json_with_an_arbitrary_json_length_decodes_to_a_request_or_invalid_input(
    document, data
):
    body = dumps(document) + data.draw(st.binary(max_size=16))
    outcome(body, data.draw(json_lengths(body)))


# --- documents shaped like inference requests ---------------------------------------------

INT_RANGES = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in tensor.NUMPY_DTYPES.items()
    if dtype.kind in "iu"
}
WIRE_WIDTH = {"BF16": 2, **{k: v.itemsize for k, v in tensor.NUMPY_DTYPES.items() if k != "BF16"}}


def elements(datatype: str) -> st.SearchStrategy[Any]:
    """JSON values that fit `datatype` (floats stay inside FP16's range: see test_tensor.py)."""
    if datatype == "BOOL":
        return st.booleans()
    if datatype in INT_RANGES:
        return st.integers(*INT_RANGES[datatype])
    if datatype == "BYTES":
        return st.text(max_size=4)
    return st.floats(-6e4, 6e4, allow_nan=False) | st.integers(-1000, 1000)


@st.composite
def consistent_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A well-formed request input, as JSON data or as a binary blob, and its blob."""
    datatype = draw(st.sampled_from(sorted(tensor.DATATYPES)))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    count = int(np.prod(shape))
    item: dict[str, Any] = {"name": draw(st.text(max_size=4)), "shape": shape, "datatype": datatype}
    if draw(st.booleans()):
        values = draw(st.lists(elements(datatype), min_size=count, max_size=count))
        if draw(st.booleans()) and shape:
            values = np.array(values, dtype=object).reshape(shape).tolist()
        item["data"] = values
        if datatype == "BOOL" and count == 0:
            # Known bug (test_tensor.py::test_from_json_of_an_empty_bool_tensor_...): send one.
            item["shape"], item["data"] = [1], [True]
        return item, b""
    if datatype == "BYTES":
        parts = draw(st.lists(st.binary(max_size=5), min_size=count, max_size=count))
        blob = b"".join(len(part).to_bytes(4, "little") + part for part in parts)
    else:
        size = count * WIRE_WIDTH[datatype]
        blob = draw(st.binary(min_size=size, max_size=size))
    item["parameters"] = {"binary_data_size": len(blob)}
    if draw(st.booleans()):
        item["parameters"]["content_type"] = draw(st.sampled_from(["np", "str"]))
    return item, blob


@st.composite
def consistent_requests(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A well-formed request document and the blobs that follow its JSON header."""
    pairs = draw(st.lists(consistent_inputs(), max_size=3))
    document: dict[str, Any] = {"inputs": [item for item, _ in pairs]}
    if draw(st.booleans()):
        document["id"] = draw(st.text(max_size=4))
    if draw(st.booleans()):
        document["parameters"] = {"binary_data_output": draw(st.booleans())}
    if draw(st.booleans()):
        document["outputs"] = [
            {"name": draw(st.text(max_size=3)), "parameters": {"binary_data": draw(st.booleans())}}
        ]
    return document, b"".join(blob for _, blob in pairs)


def encode(document: dict[str, Any], blob: bytes) -> tuple[bytes, int | None]:
    header = dumps(document)
    return (header + blob, len(header)) if blob else (header, None)


@FUZZ
@given(request=consistent_requests())
def test_well_formed_requests_decode_to_tensors_of_their_declared_shape_and_datatype(request):
    document, blob = request
    body, json_length = encode(document, blob)
    decoded = rest_codec.decode_request(body, "m", json_length)
    assert [i.name for i in decoded.inputs] == [i["name"] for i in document["inputs"]]
    assert decoded.id == document.get("id")
    assert_inputs_are_consistent(decoded)


@FUZZ
@given(
    values=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8),
    datatype=st.sampled_from(["INT32", "INT64", "FP64"]),
    binary=st.booleans(),
)
def test_well_formed_requests_decode_to_their_values(values, datatype, binary):
    dtype = tensor.NUMPY_DTYPES[datatype]
    item: dict[str, Any] = {"name": "x", "shape": [len(values)], "datatype": datatype}
    if binary:
        raw = np.array(values, dtype=dtype).astype(dtype.newbyteorder("<")).tobytes()
        item["parameters"] = {"binary_data_size": len(raw)}
        header = dumps({"inputs": [item]})
        request = rest_codec.decode_request(header + raw, "m", len(header))
    else:
        item["data"] = values
        request = rest_codec.decode_request(dumps({"inputs": [item]}), "m")
    assert request.inputs[0].as_numpy().tolist() == np.array(values, dtype=dtype).tolist()


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A well-formed request with one to three fields replaced by any JSON value, or removed."""
    document, blob = draw(consistent_requests())
    targets: list[dict[str, Any]] = [document, *document["inputs"]]
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(targets))
        key = draw(st.sampled_from(sorted({*target, "parameters", "data", "shape", "datatype"})))
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    body, json_length = encode(document, blob)
    if draw(st.integers(0, 3)) == 0:
        json_length = draw(json_lengths(body))
    return body, json_length


@settings(FUZZ, phases=[Phase.generate])  # stop at the first failure: no slow shrinking
@given(request=mutated_requests())
def test_well_formed_requests_with_fields_replaced_by_any_json_decode_or_are_invalid_input(
    request,
):
    outcome(*request)
