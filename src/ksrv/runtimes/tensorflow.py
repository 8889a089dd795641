"""TensorFlow runtime: a SavedModel answered as TF Serving answers it, plus V2.

The model directory is a SavedModel (`saved_model.pb`), or TF Serving's layout of numbered
versions, of which the highest is served. One signature (`serving_default` unless the
constructor or a V1 body's `signature_name` says otherwise) defines the inputs and outputs.
V1 takes TF Serving's row format (`instances`, one value or `{input: value}` per row; answer
`predictions`) and columnar format (`inputs`; answer `outputs`); `{"b64": ...}` carries bytes.
V2 feeds inputs by name (any name when the signature has one input). TensorFlow reads its
thread counts from `$TF_NUM_INTRAOP_THREADS` and `$TF_NUM_INTEROP_THREADS` itself.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput, ModelNotFound, StorageError
from ksrv.model.base import Headers, Model, Payload
from ksrv.protocol import v2
from ksrv.runtimes import files, outputs

SAVED_MODEL_FILE = "saved_model.pb"
DEFAULT_SIGNATURE = "serving_default"

# tf.DType names -> Open Inference Protocol datatypes.
_DATATYPES = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "half": "FP16",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bfloat16": "BF16",
    "string": "BYTES",
}


def saved_model_dir(model_dir: str | Path) -> Path:
    """`model_dir` if it holds `saved_model.pb`, else its highest numbered version that does."""
    path = Path(model_dir)
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    versions = (
        sorted(
            (sub for sub in path.iterdir() if sub.name.isdigit() and sub.is_dir()),
            key=lambda sub: int(sub.name),
        )
        if path.is_dir()
        else []
    )
    for version in reversed(versions):
        if (version / SAVED_MODEL_FILE).is_file():
            return version
    raise ModelNotFound(message=f"No SavedModel ({SAVED_MODEL_FILE}) found in {path}")


class TensorFlowModel(Model):
    """Serves one signature of a TensorFlow SavedModel."""

    enable_batcher = True  # the first dimension is the batch: a batcher may merge requests

    def __init__(
        self, name: str, model_dir: str | Path, signature_name: str = DEFAULT_SIGNATURE
    ) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.signature_name = signature_name
        self._loaded: Any = None
        self._signatures: dict[str, Any] = {}

    @staticmethod
    def has_model_file(model_dir: Path) -> bool:
        try:
            saved_model_dir(model_dir)
        except ModelNotFound:
            return False
        return True

    def load(self) -> bool:
        import tensorflow as tf  # type: ignore[import-untyped, unused-ignore]

        path = saved_model_dir(self.model_dir)
        try:
            self._loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError, tf.errors.OpError) as exc:
            raise files.load_failure(path, "TensorFlow SavedModel", _reason(exc)) from None
        self._signatures = dict(self._loaded.signatures)
        if self.signature_name not in self._signatures:
            raise StorageError(
                f"SavedModel {path} has no signature '{self.signature_name}'; it has "
                + (", ".join(self._signatures) or "none")
            )
        self.ready = True
        return self.ready

    def validate(self, payload: Payload) -> Payload:
        # TF Serving's columnar `inputs` may be an object of named inputs, not only a list.
        return payload

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        if isinstance(payload, v2.InferRequest):
            signature = self._signature(self.signature_name)
            results = self._call(signature, self._v2_feeds(signature, payload))
            return outputs.response(payload, results, self.name)
        if not isinstance(payload, dict):
            raise InvalidInput('Expected a JSON object with "instances" or "inputs"')
        signature = self._signature(payload.get("signature_name", self.signature_name))
        if "instances" in payload and "inputs" not in payload:
            feeds = self._row_feeds(signature, payload["instances"])
            return outputs.response(payload, _jsonable(self._call(signature, feeds)), self.name)
        if "inputs" in payload:
            results = _jsonable(self._call(signature, self._columnar_feeds(signature, payload)))
            if len(results) == 1:
                return {"outputs": next(iter(results.values())).tolist()}
            return {"outputs": {name: value.tolist() for name, value in results.items()}}
        raise InvalidInput('Expected "instances" (row format) or "inputs" (columnar format)')

    # -- requests -> feeds -----------------------------------------------------------------
    def _signature(self, name: Any) -> Any:
        signature = self._signatures.get(name) if isinstance(name, str) else None
        if signature is None:
            raise InvalidInput(
                f"Model '{self.name}' has no signature {name!r}; it has "
                + ", ".join(self._signatures)
            )
        return signature

    def _v2_feeds(self, signature: Any, request: v2.InferRequest) -> dict[str, np.ndarray]:
        specs = _input_specs(signature)
        if len(specs) == 1 and len(request.inputs) == 1:
            (name,) = specs
            return {name: _check(specs[name], name, request.inputs[0], strict=True)}
        feeds = {}
        for infer_input in request.inputs:
            if infer_input.name not in specs:
                raise InvalidInput(
                    f"Model '{self.name}' has no input '{infer_input.name}'; its inputs are "
                    + ", ".join(specs)
                )
            feeds[infer_input.name] = _check(
                specs[infer_input.name], infer_input.name, infer_input, strict=True
            )
        return feeds

    def _row_feeds(self, signature: Any, instances: Any) -> dict[str, np.ndarray]:
        specs = _input_specs(signature)
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list')
        if all(isinstance(row, dict) for row in instances) and not _is_b64(instances[0]):
            names = set().union(*instances)
            return {
                name: _check(specs.get(name), name, [row.get(name) for row in instances])
                for name in sorted(names)
            }
        if len(specs) != 1:
            raise InvalidInput(
                f"Model '{self.name}' has inputs {', '.join(specs)}: each instance must be an "
                "object naming them"
            )
        (name,) = specs
        return {name: _check(specs[name], name, instances)}

    def _columnar_feeds(self, signature: Any, payload: dict[str, Any]) -> dict[str, np.ndarray]:
        specs = _input_specs(signature)
        value = payload["inputs"]
        if isinstance(value, dict) and not _is_b64(value):
            return {name: _check(specs.get(name), name, item) for name, item in value.items()}
        if len(specs) != 1:
            raise InvalidInput(
                f"Model '{self.name}' has inputs {', '.join(specs)}: send them by name"
            )
        (name,) = specs
        return {name: _check(specs[name], name, value)}

    def _call(self, signature: Any, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        import tensorflow as tf

        missing = sorted(set(_input_specs(signature)) - set(feeds))
        if missing:
            raise InvalidInput(f"Model '{self.name}' needs input(s) {', '.join(missing)}")
        try:
            result = signature(**{name: tf.constant(array) for name, array in feeds.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise InvalidInput(f"Model '{self.name}' rejected the input: {_reason(exc)}") from None
        return {name: result[name].numpy() for name in sorted(result)}

    # -- metadata --------------------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        signature = self._signatures.get(self.signature_name)
        if signature is None:
            return []
        return [_describe(name, spec) for name, spec in _input_specs(signature).items()]

    def get_output_types(self) -> list[dict[str, Any]]:
        signature = self._signatures.get(self.signature_name)
        if signature is None:
            return []
        specs = sorted(signature.structured_outputs.items())
        return [_describe(name, spec) for name, spec in specs]


def _input_specs(signature: Any) -> dict[str, Any]:
    # The signature's mapping has no meaningful order: sort so metadata is stable.
    return dict(sorted(signature.structured_input_signature[1].items()))


def _describe(name: str, spec: Any) -> dict[str, Any]:
    shape = [-1 if dim is None else int(dim) for dim in spec.shape.as_list() or []]
    return {
        "name": name,
        "datatype": _DATATYPES.get(spec.dtype.name, spec.dtype.name),
        "shape": shape,
    }


def _check(spec: Any, name: str, value: Any, strict: bool = False) -> np.ndarray:
    """`value` (JSON or a V2 input) as an array of the spec's dtype and a compatible shape."""
    if spec is None:
        raise InvalidInput(f"Unknown input '{name}'")
    datatype = _DATATYPES.get(spec.dtype.name, spec.dtype.name)
    if isinstance(value, v2.InferInput):
        if strict and value.datatype != datatype:
            raise InvalidInput(
                f"Input '{name}': datatype {value.datatype} does not match the model's {datatype}"
            )
        array = value.as_numpy()
    elif datatype == "BYTES":
        array = np.asarray(_decode_b64(value), dtype=object)
    else:
        try:
            array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"Input '{name}' does not fit {datatype}: {exc}") from None
    if not spec.shape.is_compatible_with(array.shape):
        raise InvalidInput(
            f"Input '{name}': shape {list(array.shape)} does not fit the model's "
            f"{_describe(name, spec)['shape']}"
        )
    return array


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _decode_b64(value: Any) -> Any:
    """TF Serving: `{"b64": "..."}` stands for the bytes it encodes."""
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"Invalid base64 data: {exc}") from None
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
    return value.encode() if isinstance(value, str) else value


def _jsonable(results: dict[str, Any]) -> dict[str, np.ndarray]:
    """String outputs as text, as TF Serving's JSON answers carry them."""
    converted = {}
    for name, value in results.items():
        array = np.asarray(value)
        if array.dtype == object:
            flat = [
                item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                for item in array.reshape(-1)
            ]
            array = np.array(flat, dtype=object).reshape(array.shape)
        converted[name] = array
    return converted


def _reason(exc: BaseException) -> str:
    """TensorFlow's message without its graph-location lines."""
    message = getattr(exc, "message", None) or str(exc)
    skipped = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(skipped)]
    return (useful or lines or [type(exc).__name__])[0]
