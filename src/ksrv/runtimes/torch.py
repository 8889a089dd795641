"""PyTorch runtime: a TorchScript `model.pt`, run on the CPU without autograd.

V2 inputs are passed to `forward` positionally, in request order; outputs are named
`output-0`, `output-1`, ... (a dict result keeps its keys). V1 `instances` are the single
argument, with JSON floats cast to the model's floating dtype (JSON carries no width). TorchScript
records no input shapes or dtypes, so the V2 metadata lists none. Intra-op threads come from
`num_threads`, else `$TORCH_NUM_THREADS`, else torch's default; they are process-wide.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers
from ksrv.protocol import v1, v2
from ksrv.runtimes import files, outputs, threads


class TorchModel(files.FileModel):
    """Serves a TorchScript module saved with `torch.jit.save`."""

    MODEL_EXTENSIONS = (".pt",)
    enable_batcher = True  # the first dimension is the batch: a batcher may merge requests

    def __init__(self, name: str, model_dir: str | Path, num_threads: int | None = None) -> None:
        super().__init__(name, model_dir)
        self.num_threads = threads.thread_count(num_threads, "TORCH_NUM_THREADS", None)
        self._module: Any = None
        self._float_dtype: Any = None

    def load(self) -> bool:
        import torch

        path = self.model_file()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            with warnings.catch_warnings():
                # torch 2.13 deprecates TorchScript in favour of torch.export; serving the
                # files users already have is this runtime's job, so the log stays quiet.
                warnings.filterwarnings("ignore", ".*torch.jit.load", DeprecationWarning)
                module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        except (RuntimeError, ValueError) as exc:
            # The last line says what is wrong; what follows its first sentence is advice
            # about checkpoints that does not apply to TorchScript.
            first = _last_line(exc).split(". ", 1)[0].rstrip(".")
            reason = f"{first} (save the model with torch.jit.save)"
            raise files.load_failure(path, "TorchScript file", reason) from None
        module.eval()
        floating = [p.dtype for p in module.parameters() if p.dtype.is_floating_point]
        self._float_dtype = floating[0] if floating else torch.float32
        self._module = module
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        import torch

        arguments = [torch.from_numpy(array) for array in self._arguments(payload)]
        try:
            with torch.inference_mode():
                result = self._module(*arguments)
        except (RuntimeError, ValueError, TypeError) as exc:
            # TorchScript reports wrong shapes, dtypes and argument counts this way; the
            # interpreter's traceback stays in the log, the caller gets its last line.
            raise InvalidInput(
                f"Model '{self.name}' rejected the input: {_last_line(exc)}"
            ) from None
        return outputs.response(payload, _named(result), self.name)

    def _arguments(self, payload: Any) -> list[np.ndarray]:
        if isinstance(payload, v2.InferRequest):
            if not payload.inputs:
                raise InvalidInput("The request has no inputs")
            arrays = []
            for infer_input in payload.inputs:
                if infer_input.datatype in ("BYTES", "BF16"):
                    raise InvalidInput(
                        f"Input '{infer_input.name}': {infer_input.datatype} cannot become a "
                        "torch tensor"
                    )
                arrays.append(_writable(infer_input.as_numpy()))
            return arrays
        features = v1.get_predict_input(payload)
        array = np.asarray(features)
        if array.dtype.kind not in "biuf":
            raise InvalidInput(f"Model '{self.name}' takes numeric instances")
        if array.dtype.kind == "f":
            array = array.astype(_numpy_dtype(self._float_dtype), copy=False)
        return [_writable(array)]


def _named(result: Any) -> dict[str, np.ndarray]:
    """`output-N` for a tensor or a tuple/list of tensors; a dict keeps its keys."""
    if isinstance(result, dict):
        return {str(key): _to_numpy(value) for key, value in result.items()}
    if isinstance(result, tuple | list):
        return {f"output-{index}": _to_numpy(value) for index, value in enumerate(result)}
    return {"output-0": _to_numpy(result)}


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


def _numpy_dtype(torch_dtype: Any) -> Any:
    import torch

    try:
        return torch.empty(0, dtype=torch_dtype).numpy().dtype
    except TypeError:  # bfloat16 has no numpy dtype: send float32 and let the model decide
        return np.dtype(np.float32)


def _writable(array: np.ndarray) -> np.ndarray:
    # torch.from_numpy shares memory and warns on read-only buffers (binary tensor data).
    return np.require(array, requirements=["W", "C"])


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
