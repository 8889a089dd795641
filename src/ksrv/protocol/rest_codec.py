"""JSON (plus the binary tensor extension) <-> `InferRequest` / `InferResponse`.

Decoding validates the whole envelope up front, so a malformed request fails with a clear
`InvalidInput` before any model code runs. The binary extension puts raw tensors after the
JSON header; `Inference-Header-Content-Length` says where the JSON ends.

A JSON request costs about 14 times its size while it is decoded (a Python object per number
before numpy), so a request's JSON is limited to `MAX_JSON_BYTES` (413 beyond): the binary
extension and gRPC carry larger tensors at about their own size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ksrv.errors import InvalidInput, PayloadTooLarge
from ksrv.protocol import tensor
from ksrv.protocol.v2 import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    generate_uuid,
)

HEADER_CONTENT_LENGTH = "inference-header-content-length"
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
# 32 MiB of JSON numbers peak near 450 MB in a replica; a 100 MB body of them took 1.4 GB.
MAX_JSON_BYTES = 32 * 1024 * 1024


def loads(body: bytes | memoryview, max_bytes: int | None = None) -> Any:
    """Parse a JSON body (of at most `max_bytes`); any failure is the caller's mistake."""
    if not body:
        raise InvalidInput("Request body is empty; expected a JSON object")
    if max_bytes is not None and len(body) > max_bytes:
        raise PayloadTooLarge(
            f"JSON request of {len(body)} bytes exceeds the limit of {max_bytes} bytes; send "
            "large tensors with the binary tensor extension (Inference-Header-Content-Length) "
            "or over gRPC"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Unrecognized request format: {exc}") from None


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_json_default, option=_DUMPS_OPTIONS)
    except TypeError as exc:
        raise TypeError(f"response is not JSON serialisable: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # pandas objects
        return to_dict(orient="records") if hasattr(value, "columns") else value.tolist()
    if isinstance(value, set | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def decode_request(
    body: bytes,
    model_name: str,
    json_length: int | None = None,
    model_version: str | None = None,
) -> InferRequest:
    """An `InferRequest` from a V2 REST body (JSON, or JSON + binary tensors)."""
    view = memoryview(body)
    if json_length is not None:
        if json_length < 0 or json_length > len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {json_length} exceeds the body length {len(body)}"
            )
        document = loads(view[:json_length], MAX_JSON_BYTES)
        blobs = view[json_length:]
    else:
        document = loads(body, MAX_JSON_BYTES)
        blobs = view[:0]
    if not isinstance(document, dict):
        raise InvalidInput("Request body must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list):
        raise InvalidInput('Expected "inputs" to be a list')
    offset = 0
    inputs = []
    for index, raw_input in enumerate(raw_inputs):
        infer_input, used = _decode_input(raw_input, index, blobs, offset)
        inputs.append(infer_input)
        offset += used
    if offset != len(blobs):
        raise InvalidInput(
            f"Binary data holds {len(blobs)} bytes but the inputs' binary_data_size "
            f"add up to {offset}"
        )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=request_id,
        parameters=_parameters(document.get("parameters"), "request"),
        request_outputs=_requested_outputs(document.get("outputs")),
        model_version=model_version,
    )


def _decode_input(
    raw_input: Any, index: int, blobs: memoryview, offset: int
) -> tuple[InferInput, int]:
    if not isinstance(raw_input, dict):
        raise InvalidInput(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = raw_input.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"inputs[{index}] needs a string 'name'")
    shape = tensor.check_shape(raw_input.get("shape"), name)
    datatype = tensor.check_datatype(raw_input.get("datatype"), name)
    parameters = _parameters(raw_input.get("parameters"), f"input '{name}'")
    binary_size = parameters.pop("binary_data_size", None)
    if binary_size is not None:
        if not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0:
            raise InvalidInput(f"Input '{name}': binary_data_size must be a non-negative integer")
        if offset + binary_size > len(blobs):
            raise InvalidInput(
                f"Input '{name}': binary_data_size {binary_size} runs past the end of the body"
            )
        raw = blobs[offset : offset + binary_size]
        array = tensor.from_raw(raw, datatype, shape, name)
        return InferInput(name, shape, datatype, array, parameters), binary_size
    if "data" not in raw_input:
        raise InvalidInput(f"Input '{name}' has neither 'data' nor binary_data_size")
    data = raw_input["data"]
    array = tensor.from_json(data, datatype, shape, name)
    infer_input = InferInput(name, shape, datatype, data, parameters)
    infer_input._array = array
    return infer_input, 0


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'parameters' of the {where} must be an object")
    return value


def _requested_outputs(value: Any) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be a list")
    requested = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}] needs a string 'name'")
        requested.append(
            RequestedOutput(item["name"], _parameters(item.get("parameters"), "output"))
        )
    return requested


def encode_response(
    response: InferResponse, request: InferRequest | None = None
) -> tuple[bytes, int | None]:
    """The REST body of a response, and the JSON length when binary tensors follow it."""
    requested = request.request_outputs if request is not None else []
    binary_default = response.use_binary_outputs or (
        request is not None and request.use_binary_outputs
    )
    outputs = select_outputs(response.outputs, requested)
    json_outputs = []
    blobs: list[bytes] = []
    for output, wants_binary in outputs:
        binary = binary_default if wants_binary is None else wants_binary
        json_outputs.append(_encode_output(output, binary, blobs))
    document: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        document["model_version"] = response.model_version
    document["id"] = response.id or (request.id if request and request.id else generate_uuid())
    if response.parameters:
        document["parameters"] = response.parameters
    document["outputs"] = json_outputs
    header = dumps(document)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def select_outputs(
    outputs: list[InferOutput], requested: list[RequestedOutput]
) -> list[tuple[InferOutput, bool | None]]:
    """Requested outputs filter and order the response; per-output binary_data wins."""
    if not requested:
        return [(output, output.parameters.get("binary_data")) for output in outputs]
    by_name = {output.name: output for output in outputs}
    selected = []
    for item in requested:
        output = by_name.get(item.name)
        if output is None:
            raise InvalidInput(
                f"Requested output '{item.name}' is not produced by the model; "
                f"it produces {sorted(by_name)}"
            )
        selected.append((output, item.binary_data))
    return selected


def _encode_output(output: InferOutput, binary: bool, blobs: list[bytes]) -> dict[str, Any]:
    parameters = {k: v for k, v in output.parameters.items() if k != "binary_data"}
    encoded: dict[str, Any] = {
        "name": output.name,
        "datatype": output.datatype,
        "shape": output.shape,
    }
    if binary:
        raw = tensor.to_raw(output.as_numpy(), output.datatype)
        blobs.append(raw)
        parameters["binary_data_size"] = len(raw)
    if parameters:
        encoded["parameters"] = parameters
    if not binary:
        array = output._array
        if array is not None:
            encoded["data"] = tensor.to_json_data(array, output.datatype)
        else:
            encoded["data"] = output._data
    return encoded


def infer_response_from_dict(document: dict[str, Any], model_name: str) -> InferResponse:
    """An `InferResponse` from a V2 JSON response document (used by clients and transformers)."""
    outputs = []
    for item in document.get("outputs", []):
        outputs.append(
            InferOutput(
                item["name"],
                item["shape"],
                item["datatype"],
                item.get("data"),
                item.get("parameters"),
            )
        )
    return InferResponse(
        response_id=document.get("id"),
        model_name=document.get("model_name", model_name),
        infer_outputs=outputs,
        model_version=document.get("model_version"),
        parameters=document.get("parameters"),
    )


def encode_request(request: InferRequest) -> bytes:
    """A JSON V2 request body (used by clients and transformers)."""
    document: dict[str, Any] = {"id": request.id or generate_uuid()}
    if request.parameters:
        document["parameters"] = request.parameters
    document["inputs"] = [
        {
            "name": i.name,
            "shape": i.shape,
            "datatype": i.datatype,
            **({"parameters": i.parameters} if i.parameters else {}),
            "data": tensor.to_json_data(i.as_numpy(), i.datatype),
        }
        for i in request.inputs
    ]
    if request.request_outputs:
        document["outputs"] = [
            {"name": o.name, **({"parameters": o.parameters} if o.parameters else {})}
            for o in request.request_outputs
        ]
    return dumps(document)
