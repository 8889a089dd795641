"""KServe V1 (TF-Serving-like) payloads and the predict-input/response helpers.

`get_predict_input` and `get_predict_response` behave as KServe's helpers of the same names, so
built-in runtimes and ported custom models see the same values for V1 dicts and V2 requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.protocol import tensor
from ksrv.protocol.v2 import InferOutput, InferRequest, InferResponse


def check_request(document: Any) -> dict[str, Any]:
    """A V1 body must be a JSON object; `instances` must be a list and `inputs` a list or,
    in TF Serving's columnar form for several named inputs, an object."""
    if not isinstance(document, dict):
        raise InvalidInput('Expected a JSON object with "instances" or "inputs"')
    if "instances" in document and not isinstance(document["instances"], list):
        raise InvalidInput('Expected "instances" to be a list')
    if "inputs" in document and not isinstance(document["inputs"], list | dict):
        raise InvalidInput('Expected "inputs" to be a list or an object of named inputs')
    return document


def instances(document: dict[str, Any]) -> list[Any]:
    """The V1 instances (KServe reads `inputs` first, then `instances`)."""
    value = document.get("inputs", document.get("instances"))
    if not isinstance(value, list):
        raise InvalidInput('Expected "instances" or "inputs" to be a list')
    return value


def get_predict_input(payload: dict[str, Any] | InferRequest) -> Any:
    """The model input: a numpy array, a DataFrame (records or `content_type: pd`) or strings."""
    if isinstance(payload, InferRequest):
        if payload.parameters.get("content_type") == "pd":
            return payload.as_dataframe()
        if not payload.inputs:
            raise InvalidInput("The request has no inputs")
        return payload.inputs[0].as_numpy()
    rows = instances(check_request(payload))
    is_nested = rows and all(isinstance(row, list) and row for row in rows)
    if is_nested and all(isinstance(item, dict) for row in rows for item in row):
        rows = [item for row in rows for item in row]  # KServe: a list of lists of records
    if rows and all(isinstance(row, dict) for row in rows):
        import pandas as pd

        return pd.DataFrame(rows)
    if rows and all(isinstance(row, str) for row in rows):
        return rows
    try:
        array = np.asarray(rows)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"instances are not a regular array: {exc}") from None
    if array.dtype.kind not in "biufUS" and array.size:
        raise InvalidInput("instances must be numbers, strings or objects of named features")
    return array


def get_predict_response(
    payload: dict[str, Any] | InferRequest, result: Any, model_name: str
) -> dict[str, Any] | InferResponse:
    """Wrap a model's result as `{"predictions": ...}` (V1) or an `output-0` tensor (V2)."""
    if not isinstance(payload, InferRequest):
        if hasattr(result, "to_dict") and hasattr(result, "columns"):
            return {"predictions": result.to_dict(orient="records")}
        if isinstance(result, np.ndarray):
            return {"predictions": result.tolist()}
        return {"predictions": result}
    if hasattr(result, "columns"):  # a DataFrame: one output per column
        outputs = [_output(str(column), result[column].to_numpy()) for column in result.columns]
    else:
        outputs = [_output("output-0", np.asarray(result))]
    return InferResponse(
        response_id=payload.id,
        model_name=model_name,
        infer_outputs=outputs,
        model_version=payload.model_version,
    )


def _output(name: str, array: np.ndarray) -> InferOutput:
    datatype = tensor.datatype_of(array)
    if datatype == "BYTES" and array.dtype.kind != "O":
        array = array.astype(object)
    return InferOutput(name=name, shape=list(array.shape), datatype=datatype, data=array)
