"""Protobuf `ModelInferRequest` / `ModelInferResponse` <-> `InferRequest` / `InferResponse`.

The gRPC twin of `rest_codec`: same validation, same errors, same types inward. Tensors come
as typed `contents` or as `raw_input_contents`; as in KServe, a request that sent raw inputs
gets raw outputs, and FP16/BF16 (which have no typed field) always travel raw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.protocol import rest_codec, tensor
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.v2 import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_INT64_MAX = 2**63 - 1


def decode_request(message: pb.ModelInferRequest) -> InferRequest:
    """An `InferRequest` from a gRPC `ModelInferRequest`, fully validated."""
    raw_contents = message.raw_input_contents
    if raw_contents and len(raw_contents) != len(message.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw_contents)} entries for {len(message.inputs)} inputs;"
            " send one per input or none"
        )
    inputs = []
    for index, item in enumerate(message.inputs):
        name = item.name
        datatype = tensor.check_datatype(item.datatype, name)
        shape = tensor.check_shape(list(item.shape), name)
        if raw_contents:
            if item.HasField("contents") and item.contents.ByteSize():
                raise InvalidInput(
                    f"Input '{name}' sets contents while the request uses raw_input_contents"
                )
            array = tensor.from_raw(raw_contents[index], datatype, shape, name)
        else:
            array = _from_contents(item.contents, datatype, shape, name)
        inputs.append(InferInput(name, shape, datatype, array, parameters(item.parameters)))
    requested = [RequestedOutput(o.name, parameters(o.parameters)) for o in message.outputs]
    request = InferRequest(
        model_name=message.model_name,
        infer_inputs=inputs,
        request_id=message.id or None,
        from_grpc=True,
        parameters=parameters(message.parameters),
        request_outputs=requested,
        model_version=message.model_version or None,
    )
    request.used_raw_inputs = bool(raw_contents)
    return request


def _from_contents(
    contents: pb.InferTensorContents, datatype: str, shape: list[int], name: str
) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(f"Input '{name}': {datatype} data must be sent in raw_input_contents")
    values = getattr(contents, field)
    expected = tensor.element_count(shape)
    if len(values) != expected:
        raise InvalidInput(
            f"Input '{name}': shape {shape} needs {expected} elements but "
            f"{field} holds {len(values)}"
        )
    # The same checks as JSON data (range, kind), so the transports cannot disagree.
    return tensor.from_json(list(values), datatype, shape, name)


def parameters(entries: Any) -> dict[str, Any]:
    """A protobuf parameter map as plain Python values."""
    decoded = {}
    for key, value in entries.items():
        choice = value.WhichOneof("parameter_choice")
        decoded[key] = getattr(value, choice) if choice else None
    return decoded


def set_parameters(target: Any, values: dict[str, Any]) -> None:
    """Fill a protobuf parameter map; bool is tested before int (bool is an int in Python)."""
    for key, value in values.items():
        entry = target[key]
        if isinstance(value, bool | np.bool_):
            entry.bool_param = bool(value)
        elif isinstance(value, int | np.integer):
            if value > _INT64_MAX:
                entry.uint64_param = int(value)
            else:
                entry.int64_param = int(value)
        elif isinstance(value, float | np.floating):
            entry.double_param = float(value)
        elif isinstance(value, str):
            entry.string_param = value
        else:
            entry.string_param = rest_codec.dumps(value).decode()


def encode_response(
    response: InferResponse, request: InferRequest | None = None
) -> pb.ModelInferResponse:
    """A `ModelInferResponse`; raw outputs if the request sent raw inputs or any is FP16/BF16."""
    message = pb.ModelInferResponse(model_name=response.model_name, id=response.id or "")
    if response.model_version is not None:
        message.model_version = str(response.model_version)
    if response.parameters:
        set_parameters(message.parameters, response.parameters)
    requested = request.request_outputs if request is not None else []
    outputs = [output for output, _ in rest_codec.select_outputs(response.outputs, requested)]
    use_raw = (request is not None and request.used_raw_inputs) or any(
        output.datatype not in CONTENTS_FIELD for output in outputs
    )
    for output in outputs:
        item = message.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        output_parameters = {k: v for k, v in output.parameters.items() if k != "binary_data"}
        if output_parameters:
            set_parameters(item.parameters, output_parameters)
        array = output.as_numpy()
        if use_raw:
            message.raw_output_contents.append(tensor.to_raw(array, output.datatype))
        else:
            _fill_contents(item.contents, array, output.datatype)
    return message


def _fill_contents(contents: pb.InferTensorContents, array: np.ndarray, datatype: str) -> None:
    values = getattr(contents, CONTENTS_FIELD[datatype])
    flat = array.reshape(-1)
    if datatype == "BYTES":
        values.extend(
            item if isinstance(item, bytes) else str(item).encode() for item in flat.tolist()
        )
    else:
        values.extend(flat.tolist())


def encode_request(request: InferRequest, use_raw: bool = True) -> pb.ModelInferRequest:
    """A `ModelInferRequest` (for clients and transformers)."""
    message = pb.ModelInferRequest(
        model_name=request.model_name,
        model_version=request.model_version or "",
        id=request.id or "",
    )
    if request.parameters:
        set_parameters(message.parameters, request.parameters)
    for item in request.inputs:
        entry = message.inputs.add(name=item.name, datatype=item.datatype, shape=item.shape)
        if item.parameters:
            set_parameters(entry.parameters, item.parameters)
        array = item.as_numpy()
        if use_raw:
            message.raw_input_contents.append(tensor.to_raw(array, item.datatype))
        else:
            _fill_contents(entry.contents, array, item.datatype)
    for output in request.request_outputs:
        requested = message.outputs.add(name=output.name)
        if output.parameters:
            set_parameters(requested.parameters, output.parameters)
    return message


def decode_response(message: pb.ModelInferResponse) -> InferResponse:
    """An `InferResponse` from a `ModelInferResponse` (for clients and transformers)."""
    raw = message.raw_output_contents
    outputs = []
    for index, item in enumerate(message.outputs):
        shape = list(item.shape)
        if raw:
            array = tensor.from_raw(raw[index], item.datatype, shape, item.name)
        else:
            array = _from_contents(item.contents, item.datatype, shape, item.name)
        outputs.append(
            InferOutput(item.name, shape, item.datatype, array, parameters(item.parameters))
        )
    return InferResponse(
        response_id=message.id or None,
        model_name=message.model_name,
        infer_outputs=outputs,
        model_version=message.model_version or None,
        parameters=parameters(message.parameters),
        from_grpc=True,
    )
