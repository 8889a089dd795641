"""The payload logger's CloudEvents -> the instances they carry.

A request event's data is the body the model server received: V1 (`instances`, or `inputs`
as rows) or V2 (the first input tensor, reshaped by its `shape`). Both CloudEvents modes are
read (binary `ce-*` headers, structured `application/cloudevents+json`), through the
`cloudevents` library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ksrv.errors import InvalidInput

REQUEST_TYPE: Final = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    source: str
    service: str | None
    data: Any


def parse_event(headers: dict[str, str], body: bytes) -> Event:
    """The CloudEvent in a request; InvalidInput (400) naming what is wrong otherwise."""
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_http

    try:
        event = from_http(headers, body)
    except GenericException as exc:
        raise InvalidInput(f"not a CloudEvent: {exc}") from exc
    data = event.data
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidInput("the event's data is not JSON") from exc
    service = event.get("inferenceservicename")
    return Event(
        str(event["id"]), str(event["type"]), str(event["source"]), service and str(service), data
    )


def instances(data: Any, n_features: int) -> np.ndarray:
    """The rows of a V1 or V2 request body, as floats with `n_features` columns."""
    if not isinstance(data, dict):
        raise InvalidInput("the event's data must be a V1 or V2 request (a JSON object)")
    if "instances" in data:
        raw, where = data["instances"], "instances"
    elif isinstance(data.get("inputs"), list) and data["inputs"] and _is_tensor(data["inputs"][0]):
        tensor = data["inputs"][0]
        raw, where = _reshaped(tensor), "inputs[0].data"
    elif "inputs" in data:
        raw, where = data["inputs"], "inputs"
    else:
        raise InvalidInput("the event's data has no instances (V1) or inputs (V2)")
    try:
        rows = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where} must be rows of numbers") from exc
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[1] != n_features:
        raise InvalidInput(
            f"{where} must be rows of {n_features} numbers (the reference set's), got shape "
            f"{list(rows.shape)}"
        )
    return rows


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and "data" in value


def _reshaped(tensor: dict[str, Any]) -> Any:
    shape = tensor.get("shape")
    try:
        return np.asarray(tensor["data"], dtype=np.float64).reshape(shape or -1)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("inputs[0].data does not fit inputs[0].shape") from exc
