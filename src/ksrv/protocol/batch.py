"""Merge several inference requests into one along the batch axis, and split the answer back.

Requests merge only when they agree on everything but their rows: for V2 the same inputs
(names, datatypes, trailing dimensions), parameters and requested outputs; for V1 bodies that
hold nothing but `instances` rows of numbers of one width and kind. `key` says which requests
may merge (None: this one never does); `split` returns None when an answer cannot be cut
back into per-request rows, and the caller then runs the requests one by one.
"""

from __future__ import annotations

from collections.abc import Hashable
from itertools import accumulate, pairwise
from typing import Any

import numpy as np

from ksrv.protocol.v2 import InferInput, InferOutput, InferRequest, InferResponse

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Per-request transport details that say nothing about the data's meaning.
_TRANSPORT_PARAMETERS = frozenset({"binary_data_size"})


def key(payload: Any, max_rows: int) -> Hashable | None:
    """What a request must share with others to merge with them; None if it never merges
    (including when it holds `max_rows` rows or more: nothing to gain)."""
    if isinstance(payload, InferRequest):
        return _v2_key(payload, max_rows)
    if isinstance(payload, dict):
        return _v1_key(payload, max_rows)
    return None


def rows(payload: Any) -> int:
    """The number of rows in a request that `key` accepted."""
    if isinstance(payload, InferRequest):
        return payload.inputs[0].shape[0]
    return len(payload["instances"])


def merge(payloads: list[Any]) -> Any:
    """One request holding every row of `payloads`, in order (all share one `key`)."""
    first = payloads[0]
    if not isinstance(first, InferRequest):
        return {"instances": [row for payload in payloads for row in payload["instances"]]}
    total = sum(rows(payload) for payload in payloads)
    inputs = []
    for index, model_input in enumerate(first.inputs):
        data = np.concatenate([payload.inputs[index].as_numpy() for payload in payloads])
        shape = [total, *model_input.shape[1:]]
        parameters = dict(_meaningful(model_input.parameters))
        inputs.append(InferInput(model_input.name, shape, model_input.datatype, data, parameters))
    merged = InferRequest(
        first.model_name,
        inputs,
        from_grpc=first.from_grpc,
        parameters=dict(first.parameters),
        request_outputs=first.request_outputs,
        model_version=first.model_version,
    )
    merged.used_raw_inputs = first.used_raw_inputs
    return merged


def split(answer: Any, payloads: list[Any]) -> list[Any] | None:
    """`answer` to the merged request cut into one answer per payload, or None if it can't be."""
    bounds = list(accumulate((rows(payload) for payload in payloads), initial=0))
    if isinstance(answer, InferResponse):
        return _split_v2(answer, payloads, bounds)
    if isinstance(answer, dict) and answer.keys() == {"predictions"}:
        predictions = answer["predictions"]
        if not isinstance(predictions, list) or len(predictions) != bounds[-1]:
            return None
        return [{"predictions": predictions[start:stop]} for start, stop in pairwise(bounds)]
    return None


def _split_v2(
    answer: InferResponse, payloads: list[InferRequest], bounds: list[int]
) -> list[Any] | None:
    arrays = [output.as_numpy() for output in answer.outputs]
    if not arrays or any(
        array.ndim == 0 or len(array) != bounds[-1] or list(array.shape) != output.shape
        for output, array in zip(answer.outputs, arrays, strict=True)
    ):
        return None
    answers = []
    for payload, (start, stop) in zip(payloads, pairwise(bounds), strict=True):
        outputs = [
            InferOutput(
                output.name,
                [stop - start, *array.shape[1:]],
                output.datatype,
                array[start:stop],
                dict(output.parameters),
            )
            for output, array in zip(answer.outputs, arrays, strict=True)
        ]
        answers.append(
            InferResponse(
                payload.id,
                answer.model_name,
                outputs,
                model_version=answer.model_version,
                from_grpc=answer.from_grpc,
                parameters=dict(answer.parameters),
                use_binary_outputs=answer.use_binary_outputs,
                requested_outputs=answer.requested_outputs,
            )
        )
    return answers


def _v2_key(request: InferRequest, max_rows: int) -> Hashable | None:
    inputs = request.inputs
    if not inputs:
        return None
    count = inputs[0].shape[0] if inputs[0].shape else 0
    if count >= max_rows:
        return None
    described = []
    for model_input in inputs:
        shape = model_input.shape
        if not shape or shape[0] != count or count < 1:
            return None
        parameters = _frozen(_meaningful(model_input.parameters))
        described.append((model_input.name, model_input.datatype, tuple(shape[1:]), parameters))
    outputs = tuple((output.name, _frozen(output.parameters)) for output in request.request_outputs)
    return (
        "v2",
        request.model_version,
        request.from_grpc,
        request.used_raw_inputs,
        _frozen(request.parameters),
        tuple(described),
        outputs,
    )


def _v1_key(body: dict[str, Any], max_rows: int) -> Hashable | None:
    instances = body.get("instances")
    if len(body) != 1 or not isinstance(instances, list) or not 0 < len(instances) < max_rows:
        return None
    first = instances[0]
    if not isinstance(first, list) or not first:
        return None
    width, all_int = len(first), True
    for row in instances:
        if not isinstance(row, list) or len(row) != width:
            return None
        for value in row:
            kind = type(value)
            if kind is float:
                all_int = False
            elif kind is not int or not _INT64_MIN <= value <= _INT64_MAX:
                return None  # huge ints turn a merged array into float64 or uint64
    return ("v1", width, all_int)


def _meaningful(parameters: dict[str, Any]) -> dict[str, Any]:
    if not parameters or _TRANSPORT_PARAMETERS.isdisjoint(parameters):
        return parameters
    return {name: value for name, value in parameters.items() if name not in _TRANSPORT_PARAMETERS}


def _frozen(parameters: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if not parameters:
        return ()
    return tuple(sorted((name, repr(value)) for name, value in parameters.items()))
