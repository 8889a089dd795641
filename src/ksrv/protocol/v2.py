"""Open Inference Protocol (V2) request and response types.

Constructors, attribute names and helpers mirror KServe's `InferRequest`, `InferInput`,
`InferOutput` and `InferResponse`, so a KServe custom model runs after changing its imports.
Tensors keep numpy arrays underneath; the codecs in `rest_codec` fill and read them.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.protocol import tensor

if TYPE_CHECKING:
    import pandas as pd

Parameters = dict[str, Any]


def generate_uuid() -> str:
    """A random UUID4 string (KServe's `generate_uuid`)."""
    return str(uuid.uuid4())


class _ResponseIds:
    """UUID-shaped ids for responses whose request had none: a random per-process prefix
    and a counter, so the hot path makes no syscall. Forked workers draw a new prefix."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) % (1 << 48):012x}"


response_ids = _ResponseIds()


class _Tensor:
    """Shared state of inputs and outputs: a name, a shape, a datatype and the data."""

    __slots__ = ("_array", "_data", "datatype", "name", "parameters", "shape")

    def __init__(
        self,
        name: str,
        shape: list[int],
        datatype: str,
        data: Any = None,
        parameters: Parameters | None = None,
    ) -> None:
        self.name = name
        self.shape = list(shape)
        self.datatype = datatype
        self.parameters: Parameters = parameters if parameters is not None else {}
        self._array: np.ndarray | None = None
        self._data: Any = None
        if isinstance(data, np.ndarray):
            self._array = data
        else:
            self._data = data

    @property
    def data(self) -> Any:
        """The data as given: a (possibly nested) list from JSON, else the numpy array."""
        return self._data if self._data is not None else self._array

    @data.setter
    def data(self, value: Any) -> None:
        self._array, self._data = (value, None) if isinstance(value, np.ndarray) else (None, value)

    def as_numpy(self) -> np.ndarray:
        """The data as a numpy array of the declared datatype and shape."""
        if self._array is None:
            if self._data is None:
                raise InvalidInput(f"Tensor '{self.name}' has no data")
            self._array = tensor.from_json(self._data, self.datatype, self.shape, self.name)
        return self._array

    def as_string(self) -> list[str]:
        """BYTES data decoded as UTF-8 strings, flattened."""
        return [
            item.decode() if isinstance(item, bytes) else str(item)
            for item in self.as_numpy().reshape(-1)
        ]

    def set_data_from_numpy(self, array: np.ndarray, binary_data: bool = True) -> None:
        """Replace the data; the array must match the declared datatype and shape."""
        if not isinstance(array, np.ndarray):
            raise InvalidInput("set_data_from_numpy expects a numpy array")
        datatype = tensor.datatype_of(array)
        if datatype != self.datatype and not (self.datatype == "BF16" and datatype == "FP32"):
            raise InvalidInput(
                f"Tensor '{self.name}': got {datatype} data for declared {self.datatype}"
            )
        if list(array.shape) != self.shape:
            raise InvalidInput(
                f"Tensor '{self.name}': got shape {list(array.shape)} for declared {self.shape}"
            )
        self._array, self._data = array, None
        if binary_data:
            self.parameters["binary_data"] = True
        else:
            self.parameters.pop("binary_data", None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Tensor) or type(other) is not type(self):
            return NotImplemented
        return (
            self.name == other.name
            and self.shape == other.shape
            and self.datatype == other.datatype
            and self.parameters == other.parameters
            and np.array_equal(self.as_numpy(), other.as_numpy())
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, shape={self.shape}, "
            f"datatype={self.datatype!r})"
        )


class InferInput(_Tensor):
    """One named input tensor of an inference request."""

    __slots__ = ()


class InferOutput(_Tensor):
    """One named output tensor of an inference response."""

    __slots__ = ()

    def __init__(
        self,
        name: str,
        shape: list[int],
        datatype: str,
        data: Any = None,
        parameters: Parameters | None = None,
    ) -> None:
        super().__init__(name, shape, datatype, data, parameters)


class RequestedOutput:
    """An output the caller asked for, with per-output parameters (e.g. `binary_data`)."""

    __slots__ = ("name", "parameters")

    def __init__(self, name: str, parameters: Parameters | None = None) -> None:
        self.name = name
        self.parameters: Parameters = parameters if parameters is not None else {}

    @property
    def binary_data(self) -> bool | None:
        value = self.parameters.get("binary_data")
        return None if value is None else bool(value)


class InferRequest:
    """An inference request: named input tensors, parameters and an optional id."""

    def __init__(
        self,
        model_name: str,
        infer_inputs: list[InferInput],
        request_id: str | None = None,
        raw_inputs: list[bytes] | None = None,
        from_grpc: bool = False,
        parameters: Parameters | None = None,
        request_outputs: list[RequestedOutput] | None = None,
        model_version: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.inputs = infer_inputs
        self.id = request_id
        self.from_grpc = from_grpc
        self.parameters: Parameters = parameters if parameters is not None else {}
        self.request_outputs = request_outputs or []
        self.model_version = model_version
        # gRPC: a request that sent raw_input_contents gets raw_output_contents back.
        self.used_raw_inputs = bool(raw_inputs)
        if raw_inputs:
            for infer_input, raw in zip(infer_inputs, raw_inputs, strict=True):
                infer_input.data = tensor.from_raw(
                    raw, infer_input.datatype, infer_input.shape, infer_input.name
                )

    @property
    def use_binary_outputs(self) -> bool:
        return bool(self.parameters.get("binary_data_output", False))

    def get_input_by_name(self, name: str) -> InferInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    def as_dataframe(self) -> pd.DataFrame:
        """One column per input (as KServe does); 2-D inputs become one column per feature."""
        import pandas as pd

        columns: dict[str, Any] = {}
        for infer_input in self.inputs:
            array = infer_input.as_numpy()
            if infer_input.datatype == "BYTES":
                array = np.array(infer_input.as_string(), dtype=object).reshape(array.shape)
            if array.ndim == 2 and array.shape[1] > 1:
                for column in range(array.shape[1]):
                    columns[f"{infer_input.name}_{column}"] = array[:, column]
            else:
                columns[infer_input.name] = array.reshape(-1)
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        return f"InferRequest(model_name={self.model_name!r}, id={self.id!r}, inputs={self.inputs})"


class InferResponse:
    """An inference response: named output tensors, parameters and the request's id."""

    def __init__(
        self,
        response_id: str | None,
        model_name: str,
        infer_outputs: list[InferOutput],
        model_version: str | None = None,
        raw_outputs: list[bytes] | None = None,
        from_grpc: bool = False,
        parameters: Parameters | None = None,
        use_binary_outputs: bool = False,
        requested_outputs: list[RequestedOutput] | None = None,
    ) -> None:
        self.id = response_id if response_id is not None else response_ids.next()
        self.model_name = model_name
        self.outputs = infer_outputs
        self.model_version = model_version
        self.from_grpc = from_grpc
        self.parameters: Parameters = parameters if parameters is not None else {}
        self.use_binary_outputs = use_binary_outputs
        self.requested_outputs = requested_outputs
        if raw_outputs:
            for output, raw in zip(infer_outputs, raw_outputs, strict=True):
                output.data = tensor.from_raw(raw, output.datatype, output.shape, output.name)

    def get_output_by_name(self, name: str) -> InferOutput | None:
        return next((o for o in self.outputs if o.name == name), None)

    def __repr__(self) -> str:
        return (
            f"InferResponse(model_name={self.model_name!r}, id={self.id!r}, outputs={self.outputs})"
        )
