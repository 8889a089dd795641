"""ONNX runtime (onnxruntime, CPU): names, datatypes and shapes come from the graph.

V2 requests feed every graph input by name, and answer with the graph's outputs by name (only
the requested ones are computed). V1 `instances` feed the first input, cast to its element type
since JSON numbers carry no width; `predictions` is the first output, or one record per row
when the graph has several outputs (TF-Serving's row format). Threads come from the
constructor, else `$ONNX_INTRA_OP_THREADS` / `$ONNX_INTER_OP_THREADS`, else onnxruntime's own
defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput, Unsupported
from ksrv.model.base import Headers
from ksrv.protocol import tensor, v1, v2
from ksrv.runtimes import files, outputs, threads

# onnxruntime's type strings -> Open Inference Protocol datatypes.
_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(bfloat16)": "BF16",
    "tensor(string)": "BYTES",
}


class ONNXModel(files.FileModel):
    """Serves an `.onnx` graph with an onnxruntime `InferenceSession` on the CPU."""

    MODEL_EXTENSIONS = (".onnx",)
    enable_batcher = True  # the first dimension is the batch: a batcher may merge requests

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ) -> None:
        super().__init__(name, model_dir)
        self.intra_op_threads = threads.thread_count(
            intra_op_threads, "ONNX_INTRA_OP_THREADS", None
        )
        self.inter_op_threads = threads.thread_count(
            inter_op_threads, "ONNX_INTER_OP_THREADS", None
        )
        self._session: Any = None
        self._inputs: list[dict[str, Any]] = []
        self._outputs: list[dict[str, Any]] = []
        self._input_errors: tuple[type[Exception], ...] = ()

    def load(self) -> bool:
        import onnxruntime  # type: ignore[import-untyped, unused-ignore]

        path = self.model_file()
        options = onnxruntime.SessionOptions()
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads is not None:
            options.inter_op_num_threads = self.inter_op_threads
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own pybind classes, all Exception
            raise files.load_failure(path, "ONNX model", _reason(exc)) from None
        self._inputs = [_describe(arg) for arg in self._session.get_inputs()]
        self._outputs = [_describe(arg) for arg in self._session.get_outputs()]
        state = onnxruntime.capi.onnxruntime_pybind11_state
        self._input_errors = (state.InvalidArgument, state.Fail, ValueError, TypeError)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        if isinstance(payload, v2.InferRequest):
            feeds = self._v2_feeds(payload)
            known = {output["name"] for output in self._outputs}
            wanted = [o.name for o in payload.request_outputs if o.name in known] or None
        else:
            feeds = self._v1_feeds(payload)
            wanted = None
        names = wanted or [output["name"] for output in self._outputs]
        results = dict(zip(names, self._run(names, feeds), strict=True))
        return outputs.response(payload, results, self.name)

    def _run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[Any]:
        try:
            return list(self._session.run(names, feeds))
        except self._input_errors as exc:
            # Wrong rank, dimension or element type for the graph: the caller's input.
            reason = " ".join(str(exc).split())  # onnxruntime spreads one message over lines
            raise InvalidInput(f"Model '{self.name}' rejected the input: {reason}") from None

    def _v2_feeds(self, request: v2.InferRequest) -> dict[str, np.ndarray]:
        graph_inputs = {item["name"]: item for item in self._inputs}
        feeds: dict[str, np.ndarray] = {}
        for infer_input in request.inputs:
            spec = graph_inputs.get(infer_input.name)
            if spec is None:
                raise InvalidInput(
                    f"Model '{self.name}' has no input '{infer_input.name}'; its inputs are "
                    + ", ".join(graph_inputs)
                )
            if infer_input.datatype != spec["datatype"]:
                raise InvalidInput(
                    f"Input '{infer_input.name}': datatype {infer_input.datatype} does not match "
                    f"the model's {spec['datatype']}"
                )
            feeds[infer_input.name] = _feedable(infer_input.as_numpy(), spec["datatype"])
        missing = [name for name in graph_inputs if name not in feeds]
        if missing:
            raise InvalidInput(f"Model '{self.name}' needs input(s) {', '.join(missing)}")
        return feeds

    def _v1_feeds(self, payload: Any) -> dict[str, np.ndarray]:
        first = self._inputs[0]
        features = v1.get_predict_input(payload)
        if hasattr(features, "columns"):
            raise InvalidInput(f"Model '{self.name}' takes a tensor, not named features")
        array = np.asarray(features, dtype=object if first["datatype"] == "BYTES" else None)
        if first["datatype"] != "BYTES":
            try:
                array = array.astype(tensor.NUMPY_DTYPES[first["datatype"]], copy=False)
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"instances do not fit {first['datatype']}: {exc}") from None
        return {first["name"]: _feedable(array, first["datatype"])}

    def get_input_types(self) -> list[dict[str, Any]]:
        return [dict(item) for item in self._inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [dict(item) for item in self._outputs]


def _describe(arg: Any) -> dict[str, Any]:
    """V2 metadata of a graph input or output; symbolic or unknown dimensions are -1."""
    shape = [dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape or []]
    return {"name": arg.name, "datatype": _DATATYPES.get(arg.type, arg.type), "shape": shape}


def _feedable(array: np.ndarray, datatype: str) -> np.ndarray:
    """onnxruntime wants str for string tensors; bfloat16 has no numpy form to feed."""
    if datatype == "BF16":
        raise Unsupported("BF16 inputs cannot be fed to onnxruntime from numpy")
    if datatype == "BYTES":
        flat = [
            item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            for item in array.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(array.shape)
    return array


def _reason(exc: BaseException) -> str:
    """onnxruntime's message without its code prefix and the "Load model from X failed:" it
    wraps around the cause (`[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model ...`)."""
    message = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc))
    return re.sub(r"^Load model from .* failed:", "", message).strip()
