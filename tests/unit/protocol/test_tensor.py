"""numpy <-> raw little-endian bytes <-> JSON data for every Open Inference datatype."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from ksrv.errors import InvalidInput
from ksrv.protocol import tensor

# Independent oracle for the wire format: struct's little-endian codes, one per datatype.
STRUCT_CODES = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}

# Values that exercise each type's range, including its extremes.
SAMPLE_VALUES = {
    "BOOL": [True, False, True, True],
    "INT8": [-128, -1, 0, 127],
    "INT16": [-32768, -2, 1, 32767],
    "INT32": [-(2**31), -3, 7, 2**31 - 1],
    "INT64": [-(2**63), -4, 9, 2**63 - 1],
    "UINT8": [0, 1, 128, 255],
    "UINT16": [0, 2, 40000, 65535],
    "UINT32": [0, 3, 2**31, 2**32 - 1],
    "UINT64": [0, 4, 2**63, 2**64 - 1],
    "FP16": [-2.5, 0.0, 0.099975586, 65504.0],
    "FP32": [-1.5, 0.0, 0.1, 3.4028234663852886e38],
    "FP64": [-1e300, 0.0, 0.1, 2.2250738585072014e-308],
    "BF16": [-2.0, 0.0, 1.0, 3.140625],
}

FIXED_SIZE = {"BOOL": 1, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "UINT8": 1}
FIXED_SIZE |= {"UINT16": 2, "UINT32": 4, "UINT64": 8, "FP16": 2, "FP32": 4, "FP64": 8, "BF16": 2}


def sample(datatype: str) -> np.ndarray:
    return np.array(SAMPLE_VALUES[datatype], dtype=tensor.NUMPY_DTYPES[datatype]).reshape(2, 2)


def float32_from_bits(bits: int) -> np.ndarray:
    """A one-element float32 array from a float32 bit pattern."""
    return np.array([bits], dtype=np.uint32).view(np.float32)


def json_round_trip(array: np.ndarray, datatype: str) -> np.ndarray:
    wire = orjson.loads(
        orjson.dumps(tensor.to_json_data(array, datatype), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    return tensor.from_json(wire, datatype, list(array.shape), "x")


# --- the datatype table -------------------------------------------------------------------


def test_every_oip_datatype_is_known():
    assert set(STRUCT_CODES) | {"BF16", "BYTES"} == tensor.DATATYPES


@pytest.mark.parametrize("datatype", sorted(FIXED_SIZE))
def test_wire_width_of_each_fixed_size_datatype_matches_the_spec_table(datatype):
    raw = tensor.to_raw(sample(datatype), datatype)
    assert len(raw) == 4 * FIXED_SIZE[datatype]


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.bool_, "BOOL"),
        (np.int8, "INT8"),
        (np.int16, "INT16"),
        (np.int32, "INT32"),
        (np.int64, "INT64"),
        (np.uint8, "UINT8"),
        (np.uint16, "UINT16"),
        (np.uint32, "UINT32"),
        (np.uint64, "UINT64"),
        (np.float16, "FP16"),
        (np.float32, "FP32"),
        (np.float64, "FP64"),
        (object, "BYTES"),
        ("U3", "BYTES"),
        ("S3", "BYTES"),
        ("datetime64[s]", "BYTES"),
    ],
)
def test_datatype_of_names_the_lossless_oip_datatype(dtype, datatype):
    assert tensor.datatype_of(np.zeros(2, dtype=dtype)) == datatype


def test_datatype_of_a_complex_array_is_invalid_input():
    with pytest.raises(InvalidInput, match="complex128 has no Open Inference datatype"):
        tensor.datatype_of(np.zeros(2, dtype=np.complex128))


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", sorted(STRUCT_CODES))
def test_raw_bytes_are_little_endian_row_major_as_struct_packs_them(datatype):
    array = sample(datatype)
    expected = struct.pack("<4" + STRUCT_CODES[datatype], *SAMPLE_VALUES[datatype])
    assert tensor.to_raw(array, datatype) == expected


@pytest.mark.parametrize("datatype", sorted(FIXED_SIZE))
def test_numpy_survives_a_raw_bytes_round_trip(datatype):
    array = sample(datatype)
    back = tensor.from_raw(tensor.to_raw(array, datatype), datatype, [2, 2], "x")
    assert back.shape == (2, 2)
    assert back.dtype == tensor.NUMPY_DTYPES[datatype]
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("datatype", sorted(FIXED_SIZE))
def test_numpy_survives_a_json_round_trip(datatype):
    array = sample(datatype)
    back = json_round_trip(array, datatype)
    assert back.shape == (2, 2)
    assert back.dtype == tensor.NUMPY_DTYPES[datatype]
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("datatype", sorted(STRUCT_CODES))
def test_from_raw_reads_struct_packed_bytes(datatype):
    raw = struct.pack("<4" + STRUCT_CODES[datatype], *SAMPLE_VALUES[datatype])
    expected = np.array(SAMPLE_VALUES[datatype], dtype=tensor.NUMPY_DTYPES[datatype])
    np.testing.assert_array_equal(tensor.from_raw(raw, datatype, [4], "x"), expected)


@pytest.mark.parametrize("datatype", sorted(FIXED_SIZE))
def test_from_raw_accepts_a_memoryview_slice(datatype):
    raw = b"\xee" + tensor.to_raw(sample(datatype), datatype) + b"\xee"
    view = memoryview(raw)[1:-1]
    np.testing.assert_array_equal(tensor.from_raw(view, datatype, [2, 2], "x"), sample(datatype))


def test_to_raw_writes_little_endian_even_from_a_big_endian_array():
    array = np.array([1, -2], dtype=">i4")
    assert tensor.to_raw(array, "INT32") == b"\x01\x00\x00\x00\xfe\xff\xff\xff"


def test_to_raw_writes_row_major_order_of_a_non_contiguous_view():
    array = np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2]
    assert tensor.to_raw(array, "INT16") == struct.pack("<6h", 0, 2, 4, 6, 8, 10)


def test_to_raw_widens_a_narrower_array_to_the_declared_datatype():
    assert tensor.to_raw(np.array([1, 2], dtype=np.int8), "INT64") == struct.pack("<2q", 1, 2)


def test_to_json_data_is_flat_row_major():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert orjson.loads(
        orjson.dumps(tensor.to_json_data(array.T, "INT32"), option=orjson.OPT_SERIALIZE_NUMPY)
    ) == [
        0,
        3,
        1,
        4,
        2,
        5,
    ]


def test_to_json_data_of_a_big_endian_array_serialises_native_values():
    data = tensor.to_json_data(np.array([1, 256], dtype=">u2"), "UINT16")
    assert orjson.loads(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)) == [1, 256]


@pytest.mark.parametrize(
    "data",
    [[[1, 2], [3, 4]], [1, 2, 3, 4], [[[1], [2]], [[3], [4]]]],
    ids=["nested", "flat", "deep"],
)
def test_from_json_accepts_nested_or_flat_row_major_data(data):
    array = tensor.from_json(data, "INT32", [2, 2], "x")
    np.testing.assert_array_equal(array, [[1, 2], [3, 4]])
    assert array.dtype == np.int32


def test_from_json_accepts_a_scalar_for_a_single_element():
    array = tensor.from_json(7, "FP64", [1], "x")
    np.testing.assert_array_equal(array, [7.0])


def test_from_json_coerces_json_booleans_and_ints_to_bool():
    np.testing.assert_array_equal(
        tensor.from_json([True, False, 1, 0], "BOOL", [4], "x"), [True, False, True, False]
    )


def test_from_json_widens_ints_to_floating_point():
    array = tensor.from_json([1, 2], "FP32", [2], "x")
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, [1.0, 2.0])


@pytest.mark.parametrize("datatype", ["INT32", "UINT8", "FP32", "FP64"])
def test_from_json_of_an_empty_tensor_is_an_empty_array(datatype):
    array = tensor.from_json([], datatype, [0, 3], "x")
    assert array.shape == (0, 3)
    assert array.dtype == tensor.NUMPY_DTYPES[datatype]


def test_from_json_of_an_empty_bool_tensor_is_an_empty_array():
    array = tensor.from_json([], "BOOL", [0], "x")
    assert array.shape == (0,)
    assert array.dtype == np.bool_


def test_uint64_values_beyond_int64_survive_json():
    array = tensor.from_json([2**64 - 1, 2**63], "UINT64", [2], "x")
    assert array.tolist() == [2**64 - 1, 2**63]


# --- BYTES --------------------------------------------------------------------------------


def test_bytes_elements_are_uint32_little_endian_length_prefixed():
    array = np.array([b"abc", b"", "\u00e9"], dtype=object)
    assert tensor.to_raw(array, "BYTES") == (
        b"\x03\x00\x00\x00abc" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
    )


def test_bytes_length_prefix_uses_all_four_bytes():
    raw = tensor.to_raw(np.array([b"z" * 300], dtype=object), "BYTES")
    assert raw[:4] == b"\x2c\x01\x00\x00"
    assert len(raw) == 304


def test_bytes_of_an_empty_tensor_are_empty():
    assert tensor.to_raw(np.empty(0, dtype=object), "BYTES") == b""
    assert tensor.from_raw(b"", "BYTES", [0], "x").shape == (0,)


def test_decode_bytes_elements_reads_known_byte_strings():
    raw = b"\x05\x00\x00\x00hello" + b"\x00\x00\x00\x00" + b"\x03\x00\x00\x00\x00\xff\x01"
    assert tensor.decode_bytes_elements(raw, "x") == [b"hello", b"", b"\x00\xff\x01"]


def test_bytes_survive_a_raw_round_trip_in_row_major_order():
    array = np.array([[b"a", b"bc"], [b"", b"\x00\xff"]], dtype=object)
    back = tensor.from_raw(tensor.to_raw(array, "BYTES"), "BYTES", [2, 2], "x")
    assert back.shape == (2, 2)
    assert back.dtype == object
    assert back.tolist() == array.tolist()


def test_bytes_survive_a_json_round_trip_as_strings():
    array = np.array([["a", "b\u00e9"], ["", "zz"]], dtype=object)
    data = tensor.to_json_data(array, "BYTES")
    assert data == ["a", "b\u00e9", "", "zz"]
    back = tensor.from_json(orjson.loads(orjson.dumps(data)), "BYTES", [2, 2], "x")
    assert back.tolist() == array.tolist()


def test_bytes_to_json_decodes_utf8_and_numpy_strings_to_str():
    array = np.array([b"caf\xc3\xa9", np.str_("np"), "plain"], dtype=object)
    assert tensor.to_json_data(array, "BYTES") == ["caf\u00e9", "np", "plain"]


def test_bytes_from_json_keeps_nested_rows_in_row_major_order():
    array = tensor.from_json([["a", "b"], ["c", "d"]], "BYTES", [2, 2], "x")
    assert array.tolist() == [["a", "b"], ["c", "d"]]


def test_bytes_to_raw_encodes_non_string_items_as_their_text():
    assert tensor.to_raw(np.array([7], dtype=object), "BYTES") == b"\x01\x00\x00\x007"


# --- BF16 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bits"),
    [
        (1.0, 0x3F80),
        (-1.0, 0xBF80),
        (0.0, 0x0000),
        (-0.0, 0x8000),
        (3.140625, 0x4049),
        (np.pi, 0x4049),
        (np.inf, 0x7F80),
        (-np.inf, 0xFF80),
    ],
)
def test_bf16_keeps_the_upper_16_bits_of_values_it_can_hold(value, bits):
    assert tensor.bf16_bits(np.array([value], dtype=np.float32)).tolist() == [bits]


@pytest.mark.parametrize(
    ("float32_bits", "bf16_bits"),
    [
        (0x3F808000, 0x3F80),  # exactly halfway, even neighbour below: stays
        (0x3F818000, 0x3F82),  # exactly halfway, odd neighbour below: rounds up to even
        (0xBF818000, 0xBF82),  # same for negative values
        (0x3F808001, 0x3F81),  # just above halfway: up
        (0x3F807FFF, 0x3F80),  # just below halfway: down
        (0x3F80FFFF, 0x3F81),
    ],
)
def test_bf16_rounds_ties_to_even(float32_bits, bf16_bits):
    assert tensor.bf16_bits(float32_from_bits(float32_bits)).tolist() == [bf16_bits]


def test_bf16_rounding_a_tie_one_ulp_above_one_gives_one():
    # 1 + 2**-8 lies exactly between bfloat16 1.0 and 1.0078125.
    assert tensor.bf16_bits(np.array([1 + 2**-8], dtype=np.float32)).tolist() == [0x3F80]


def test_bf16_rounding_overflows_float32_max_to_infinity():
    assert tensor.bf16_bits(np.array([np.finfo(np.float32).max])).tolist() == [0x7F80]


def test_bf16_keeps_the_canonical_nan_a_nan():
    assert tensor.bf16_bits(np.array([np.nan], dtype=np.float32)).tolist() == [0x7FC0]


@pytest.mark.parametrize("float32_bits", [0x7F800001, 0xFF800001, 0x7F807FFF, 0xFFFFFFFF], ids=hex)
def test_bf16_keeps_every_nan_a_nan(float32_bits):
    bits = tensor.bf16_bits(float32_from_bits(float32_bits))
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    assert np.isnan(widened).all()


def test_bf16_raw_is_two_bytes_per_element_rounded():
    array = np.array([1.0, np.pi], dtype=np.float32)
    assert tensor.to_raw(array, "BF16") == b"\x80\x3f\x49\x40"


def test_bf16_from_raw_widens_to_float32():
    array = tensor.from_raw(b"\x80\x3f\x49\x40", "BF16", [2], "x")
    assert array.dtype == np.float32
    assert array.tolist() == [1.0, 3.140625]


def test_bf16_json_data_carries_the_rounded_values():
    data = tensor.to_json_data(np.array([[np.pi, 1 + 2**-8]], dtype=np.float32), "BF16")
    assert orjson.loads(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)) == [3.140625, 1.0]


def test_bf16_from_json_is_float32():
    array = tensor.from_json([1.0, 3.140625], "BF16", [2], "x")
    assert array.dtype == np.float32
    assert array.tolist() == [1.0, 3.140625]


def test_bf16_values_it_can_hold_survive_raw_and_json_round_trips():
    array = sample("BF16")
    np.testing.assert_array_equal(
        tensor.from_raw(tensor.to_raw(array, "BF16"), "BF16", [2, 2], "x"), array
    )
    np.testing.assert_array_equal(json_round_trip(array, "BF16"), array)


OUT_OF_RANGE = "Input 'in0': data (is out of range for|does not fit) {}"

# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", ["FLOAT32", "STRING", "", None, 7])
def test_unknown_datatype_is_invalid_input_naming_the_choices(datatype):
    with pytest.raises(InvalidInput) as info:
        tensor.check_datatype(datatype, "in0")
    message = str(info.value)
    assert f"Input 'in0': unknown datatype {datatype!r}" in message
    assert "BF16, BOOL, BYTES, FP16, FP32, FP64, INT16" in message


@pytest.mark.parametrize("datatype", [["FP32"], {"FP32": 1}])
def test_non_string_unhashable_datatype_is_invalid_input(datatype):
    with pytest.raises(InvalidInput, match="unknown datatype"):
        tensor.check_datatype(datatype, "in0")


@pytest.mark.parametrize("datatype", sorted(tensor.DATATYPES))
def test_every_known_datatype_passes_the_check(datatype):
    assert tensor.check_datatype(datatype, "in0") == datatype


@pytest.mark.parametrize(
    "shape",
    [[-1], [2, -3], [1.5], [2.0], [True], [1, False], ["3"], [None], [[2]], "2", 2, None, {"0": 1}],
)
def test_bad_shape_is_invalid_input(shape):
    with pytest.raises(InvalidInput, match=r"Input 'in0': shape must be a list of non-negative"):
        tensor.check_shape(shape, "in0")


@pytest.mark.parametrize("shape", [[], [0], [1, 2, 3], [2**40]])
def test_good_shape_passes_the_check(shape):
    assert tensor.check_shape(shape, "in0") == shape


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("INT32", [1, 2, 3]),
        ("FP32", [[1.0, 2.0, 3.0, 4.0, 5.0]]),
        ("BYTES", ["a"]),
        ("BOOL", [True]),
    ],
)
def test_element_count_mismatch_is_invalid_input(datatype, data):
    with pytest.raises(
        InvalidInput, match=r"Input 'in0': shape \[2, 2\] needs 4 elements but data has"
    ):
        tensor.from_json(data, datatype, [2, 2], "in0")


@pytest.mark.parametrize("data", [[[1, 2], [3]], [[1, 2], 3], [1, [2, 3]], [[[1]], [2]]])
def test_nested_ragged_numeric_data_is_invalid_input(data):
    with pytest.raises(InvalidInput, match="Input 'in0': data is not a regular INT32 tensor"):
        tensor.from_json(data, "INT32", [3], "in0")


@pytest.mark.parametrize("data", [[["a", "b"], ["c"]], [["a", "b"], "c"]])
def test_nested_ragged_bytes_data_is_invalid_input(data):
    with pytest.raises(InvalidInput, match="Input 'in0'"):
        tensor.from_json(data, "BYTES", [3], "in0")


@pytest.mark.parametrize("datatype", ["INT32", "UINT8", "FP32", "FP64", "BOOL", "FP16", "BF16"])
@pytest.mark.parametrize("data", [["1", "2"], [1, "a"], [None, 1], [{"a": 1}, 2]])
def test_strings_or_objects_in_a_numeric_tensor_are_invalid_input(datatype, data):
    with pytest.raises(
        InvalidInput, match=f"Input 'in0': data contains non-numeric values for {datatype}"
    ):
        tensor.from_json(data, datatype, [2], "in0")


@pytest.mark.parametrize("datatype", ["INT8", "INT32", "INT64", "UINT8", "UINT64"])
@pytest.mark.parametrize("data", [[1.5, 2], [0.5, 1.0], [1, -2.25]])
def test_fractional_floats_in_an_int_tensor_are_invalid_input(datatype, data):
    with pytest.raises(
        InvalidInput, match=f"Input 'in0': data contains floating point values for {datatype}"
    ):
        tensor.from_json(data, datatype, [2], "in0")


@pytest.mark.parametrize("data", [[1.0, 0.0], [0.5, 1]])
def test_floats_in_a_bool_tensor_are_invalid_input(data):
    with pytest.raises(
        InvalidInput, match="Input 'in0': data contains floating point values for BOOL"
    ):
        tensor.from_json(data, "BOOL", [2], "in0")


@pytest.mark.parametrize("data", [[0, 2], [-1, 1], [1, 1, 1, 7]])
def test_ints_other_than_zero_or_one_in_a_bool_tensor_are_invalid_input(data):
    with pytest.raises(InvalidInput, match="Input 'in0': BOOL data must be true/false"):
        tensor.from_json(data, "BOOL", [len(data)], "in0")


@pytest.mark.parametrize(
    ("datatype", "data"),
    [("INT8", [300]), ("UINT8", [-1]), ("INT16", [40000]), ("UINT32", [-5]), ("INT64", [2**63])],
)
def test_ints_out_of_range_of_the_datatype_are_invalid_input(datatype, data):
    with pytest.raises(InvalidInput, match=OUT_OF_RANGE.format(datatype)):
        tensor.from_json(data, datatype, [1], "in0")


@pytest.mark.parametrize(
    ("datatype", "data"), [("FP16", [1e10]), ("FP32", [1e300]), ("FP16", [70000])]
)
def test_floats_out_of_range_of_the_datatype_are_invalid_input(datatype, data):
    with pytest.raises(InvalidInput, match=OUT_OF_RANGE.format(datatype)):
        tensor.from_json(data, datatype, [1], "in0")


@pytest.mark.parametrize("data", [[1, 2], [None], [["a", 3]], [{"a": "b"}], [True]])
def test_non_strings_in_a_bytes_tensor_are_invalid_input(data):
    with pytest.raises(InvalidInput, match="Input 'in0': BYTES data must be strings"):
        tensor.from_json(data, "BYTES", [len(data)], "in0")


@pytest.mark.parametrize("shape", [[0, 2**64 - 1], [0, 2**40, 2**40]])
def test_shape_numpy_cannot_hold_is_invalid_input_even_when_empty(shape):
    with pytest.raises(InvalidInput, match="Input 'in0'"):
        tensor.from_json([], "FP32", shape, "in0")


@pytest.mark.parametrize("datatype", ["BYTES", "FP32"])
def test_raw_shape_numpy_cannot_hold_is_invalid_input_even_when_empty(datatype):
    with pytest.raises(InvalidInput, match="Input 'in0'"):
        tensor.from_raw(b"", datatype, [0, 2**64 - 1], "in0")


def test_deeply_nested_bytes_data_is_invalid_input():
    data: object = "a"
    for _ in range(1010):
        data = [data]
    with pytest.raises(InvalidInput, match="Input 'in0'"):
        tensor.from_json(data, "BYTES", [1], "in0")


def test_deeply_nested_numeric_data_is_invalid_input():
    data: object = 1
    for _ in range(100):
        data = [data]
    with pytest.raises(InvalidInput, match="Input 'in0': data is not a regular INT32 tensor"):
        tensor.from_json(data, "INT32", [1], "in0")


@pytest.mark.parametrize(
    "raw", [b"\x01", b"\x01\x00\x00", b"\x01\x00\x00\x00a\x05", b"\x00\x00\x00\x00\x00\x00"]
)
def test_truncated_bytes_length_prefix_is_invalid_input(raw):
    with pytest.raises(InvalidInput, match="Input 'in0': truncated BYTES length prefix"):
        tensor.decode_bytes_elements(raw, "in0")


@pytest.mark.parametrize(
    "raw", [b"\x05\x00\x00\x00ab", b"\x01\x00\x00\x00", b"\x00\x00\x00\x00\xff\xff\xff\xff"]
)
def test_bytes_element_running_past_the_end_is_invalid_input(raw):
    with pytest.raises(
        InvalidInput, match="Input 'in0': BYTES element runs past the end of the data"
    ):
        tensor.decode_bytes_elements(raw, "in0")


def test_bytes_element_count_mismatch_is_invalid_input():
    raw = b"\x01\x00\x00\x00a\x01\x00\x00\x00b"
    with pytest.raises(
        InvalidInput,
        match=r"Input 'in0': shape \[3\] needs 3 BYTES elements but the binary data holds 2",
    ):
        tensor.from_raw(raw, "BYTES", [3], "in0")


@pytest.mark.parametrize("datatype", sorted(FIXED_SIZE))
@pytest.mark.parametrize("delta", [-1, 1])
def test_raw_byte_length_mismatch_is_invalid_input(datatype, delta):
    needed = 3 * FIXED_SIZE[datatype]
    raw = b"\x00" * (needed + delta)
    sent = needed + delta
    message = rf"Input 'in0': shape \[3\] of {datatype} needs {needed} bytes but {sent} were sent"
    with pytest.raises(InvalidInput, match=message):
        tensor.from_raw(raw, datatype, [3], "in0")
