"""Answers made of several named output tensors, for runtimes whose models return more than one.

V2 gets one output per name. V1 gets the single output as a list, or, for several outputs with
the same batch size, one `{name: value}` record per row as TF Serving's row format does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ksrv.protocol import tensor, v2


def response(payload: Any, results: dict[str, Any], model_name: str) -> Any:
    """`results` (name -> array) as a V2 `InferResponse` or a V1 `{"predictions": ...}` body."""
    arrays = {name: np.asarray(value) for name, value in results.items()}
    if isinstance(payload, v2.InferRequest):
        return v2.InferResponse(
            response_id=payload.id,
            model_name=model_name,
            infer_outputs=[_output(name, array) for name, array in arrays.items()],
            model_version=payload.model_version,
        )
    return {"predictions": _predictions(arrays)}


def _output(name: str, array: np.ndarray) -> v2.InferOutput:
    datatype = tensor.datatype_of(array)
    if datatype == "BYTES" and array.dtype.kind != "O":
        array = array.astype(object)
    return v2.InferOutput(name=name, shape=list(array.shape), datatype=datatype, data=array)


def _predictions(arrays: dict[str, np.ndarray]) -> Any:
    values = list(arrays.values())
    if len(values) == 1:
        return values[0].tolist()
    rows = {len(value) if value.ndim else -1 for value in values}
    if len(rows) != 1 or -1 in rows:
        return {name: array.tolist() for name, array in arrays.items()}
    count = rows.pop()
    return [
        {name: _plain(array[index]) for name, array in arrays.items()} for index in range(count)
    ]


def _plain(value: Any) -> Any:
    """A row of an array as JSON-ready values (object arrays hold Python values already)."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value
