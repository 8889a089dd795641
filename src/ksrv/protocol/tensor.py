"""Open Inference Protocol datatypes and their numpy form.

Every conversion between wire data (JSON lists, raw little-endian bytes) and numpy arrays lives
here, so the REST and gRPC codecs agree. BF16 has no numpy dtype: on the way in it widens to
float32 (its upper 16 bits), on the way out float32 is rounded to nearest-even.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BF16": np.dtype(np.float32),
    "BYTES": np.dtype(object),
}
DATATYPES = frozenset(NUMPY_DTYPES)

# Wire width of one element, little-endian; BYTES is variable.
_WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    **{k: v.newbyteorder("<") for k, v in NUMPY_DTYPES.items() if k not in ("BYTES", "BF16")},
    "BF16": np.dtype("<u2"),
}

_DATATYPE_BY_KIND_SIZE = {
    ("b", 1): "BOOL",
    ("i", 1): "INT8",
    ("i", 2): "INT16",
    ("i", 4): "INT32",
    ("i", 8): "INT64",
    ("u", 1): "UINT8",
    ("u", 2): "UINT16",
    ("u", 4): "UINT32",
    ("u", 8): "UINT64",
    ("f", 2): "FP16",
    ("f", 4): "FP32",
    ("f", 8): "FP64",
}

_INTEGER_KINDS = frozenset("iu")


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype that carries `array` without loss (object/str/bytes become BYTES)."""
    kind = array.dtype.kind
    if kind in "OSUM":
        return "BYTES"
    try:
        return _DATATYPE_BY_KIND_SIZE[(kind, array.dtype.itemsize)]
    except KeyError:
        raise InvalidInput(f"numpy dtype {array.dtype} has no Open Inference datatype") from None


def check_datatype(datatype: Any, name: str) -> str:
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInput(
            f"Input '{name}': unknown datatype {datatype!r}; expected one of "
            + ", ".join(sorted(DATATYPES))
        )
    return datatype


def check_shape(shape: Any, name: str) -> list[int]:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(f"Input '{name}': shape must be a list of non-negative integers")
    return shape


def element_count(shape: list[int]) -> int:
    return math.prod(shape)


def from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """A numpy array from JSON `data` (flat or nested, row-major) declared as datatype/shape."""
    if not isinstance(data, list):
        data = [data]
    expected = element_count(shape)
    if datatype == "BYTES":
        array = _bytes_array_from_json(data, name)
    else:
        array = _numeric_array_from_json(data, datatype, name)
    if array.size != expected:
        raise InvalidInput(
            f"Input '{name}': shape {shape} needs {expected} elements but data has {array.size}"
        )
    return _reshape(array, shape, name)


def _reshape(array: np.ndarray, shape: list[int], name: str) -> np.ndarray:
    try:
        return array.reshape(shape)
    except ValueError as exc:  # e.g. a zero-size shape with a dimension numpy cannot hold
        raise InvalidInput(f"Input '{name}': shape {shape} cannot be represented: {exc}") from None


def _numeric_array_from_json(data: list[Any], datatype: str, name: str) -> np.ndarray:
    try:
        parsed = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"Input '{name}': data is not a regular {datatype} tensor") from exc
    kind = parsed.dtype.kind
    target = NUMPY_DTYPES[datatype]
    if not parsed.size:
        return parsed.astype(target)
    if kind not in "biuf":
        raise InvalidInput(f"Input '{name}': data contains non-numeric values for {datatype}")
    if kind == "f" and target.kind in _INTEGER_KINDS | {"b"}:
        if target.kind == "b" or not np.all(np.isfinite(parsed) & (parsed == np.trunc(parsed))):
            raise InvalidInput(
                f"Input '{name}': data contains floating point values for {datatype}"
            )
        # Integers beyond int64 (UINT64) widened to float64: convert from the exact ints.
        try:
            return np.array(data, dtype=target)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"Input '{name}': data does not fit {datatype}") from exc
    if target.kind == "b" and kind in _INTEGER_KINDS and not np.isin(parsed, (0, 1)).all():
        raise InvalidInput(f"Input '{name}': BOOL data must be true/false")
    if kind in _INTEGER_KINDS and target.kind in _INTEGER_KINDS:
        limits = np.iinfo(target)
        if parsed.min() < limits.min or parsed.max() > limits.max:
            raise InvalidInput(f"Input '{name}': data is out of range for {datatype}")
    try:
        with np.errstate(over="raise", invalid="raise"):
            return parsed.astype(target, copy=False)
    except (ValueError, TypeError, OverflowError, FloatingPointError) as exc:
        raise InvalidInput(f"Input '{name}': data does not fit {datatype}") from exc


def _bytes_array_from_json(data: list[Any], name: str) -> np.ndarray:
    try:
        # dtype=object keeps each string whole; ragged or too-deep nesting leaves lists inside.
        array = np.array(data, dtype=object)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"Input '{name}': data is not a regular BYTES tensor") from exc
    flat = array.reshape(-1)
    for item in flat:
        if not isinstance(item, str | bytes):
            raise InvalidInput(
                f"Input '{name}': BYTES data must be strings, in a regular (nested) list"
            )
    return flat


def from_raw(raw: bytes | memoryview, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """A numpy array from the binary tensor extension's raw little-endian bytes."""
    expected = element_count(shape)
    if datatype == "BYTES":
        items = decode_bytes_elements(raw, name)
        if len(items) != expected:
            raise InvalidInput(
                f"Input '{name}': shape {shape} needs {expected} BYTES elements "
                f"but the binary data holds {len(items)}"
            )
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return _reshape(array, shape, name)
    wire = _WIRE_DTYPES[datatype]
    if len(raw) != expected * wire.itemsize:
        raise InvalidInput(
            f"Input '{name}': shape {shape} of {datatype} needs {expected * wire.itemsize} "
            f"bytes but {len(raw)} were sent"
        )
    array = np.frombuffer(raw, dtype=wire)
    if datatype == "BF16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return _reshape(array, shape, name)


def decode_bytes_elements(raw: bytes | memoryview, name: str) -> list[bytes]:
    """OIP BYTES: each element is a little-endian uint32 length followed by that many bytes."""
    view = memoryview(raw)
    items: list[bytes] = []
    offset, end = 0, len(view)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(f"Input '{name}': truncated BYTES length prefix")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"Input '{name}': BYTES element runs past the end of the data")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    return items


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """Raw little-endian bytes of `array` as the binary tensor extension carries them."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for item in array.reshape(-1):
            encoded = _as_bytes(item)
            parts.append(struct.pack("<I", len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    if datatype == "BF16":
        return bf16_bits(array).tobytes()
    wire = _WIRE_DTYPES[datatype]
    return np.ascontiguousarray(array, dtype=wire).tobytes()


def bf16_bits(array: np.ndarray) -> np.ndarray:
    """float32 values rounded to nearest-even bfloat16, as uint16 bit patterns."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    rounded = (bits + rounding) >> 16
    is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
    # Rounding would carry a NaN's payload into the exponent: keep it a (quiet) NaN.
    return np.where(is_nan, (bits >> 16) | 0x40, rounded).astype("<u2")


def to_json_data(array: np.ndarray, datatype: str) -> Any:
    """Flat row-major data for a JSON body (orjson serialises numeric numpy arrays natively)."""
    if datatype == "BYTES":
        return [_as_text(item) for item in array.reshape(-1)]
    if datatype == "BF16":
        widened = (bf16_bits(array).astype(np.uint32) << 16).view(np.float32)
        return widened.reshape(-1)
    flat = array.reshape(-1)
    if not flat.flags.c_contiguous or flat.dtype.byteorder == ">":
        flat = np.ascontiguousarray(flat, dtype=flat.dtype.newbyteorder("="))
    return flat


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return str(item).encode()


def _as_text(item: Any) -> Any:
    if isinstance(item, bytes):
        try:
            return item.decode()
        except UnicodeDecodeError:
            # JSON cannot carry raw bytes; binary_data output is the lossless path.
            return item.decode("latin-1")
    if isinstance(item, np.generic):
        return item.item()
    return item
