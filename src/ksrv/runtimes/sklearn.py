"""scikit-learn runtime: KServe's sklearnserver behaviour.

The model directory holds exactly one `model.joblib`, `.pkl` or `.pickle` file, or a
`model.skops` file: skops' format, the safe alternative, which rebuilds only the types it
trusts instead of running whatever a pickle says. Trusted are skops' defaults (scikit-learn's
estimators, numpy, scipy, builtins) and the types named in `KSRV_SKOPS_TRUSTED_TYPES`
(comma-separated, e.g. `mylib.MyTransformer`); a file with any other type is refused, naming
them, before anything in it runs. `predict` is the default; `predict_proba` is used when the
`PREDICT_PROBA` environment variable is "true" (as in KServe) or the request sets the
parameter `predict_proba: true`.
"""

from __future__ import annotations

import gzip
import lzma
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput, StorageError
from ksrv.model.base import Headers
from ksrv.protocol import tensor, v1
from ksrv.protocol.v2 import InferRequest
from ksrv.runtimes import files

# What unpickling bytes that are no pickle raises (and joblib's decompressors, for a file
# that starts like a compressed one).
NOT_A_PICKLE = (
    pickle.UnpicklingError,
    EOFError,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
    gzip.BadGzipFile,
)
CORRUPT = "it is truncated or corrupt, or was not written by joblib.dump or pickle.dump"
SKOPS_TRUSTED_ENV = "KSRV_SKOPS_TRUSTED_TYPES"


class SklearnModel(files.FileModel):
    """Serves a pickled scikit-learn estimator or pipeline."""

    MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle", ".skops")

    enable_inline_sync = True  # small batches predict in microseconds: see model.base.SyncCost
    batchable = True  # predictions are per row: concurrent requests may merge

    def __init__(self, name: str, model_dir: str | Path, predict_proba: bool | None = None):
        super().__init__(name, model_dir)
        if predict_proba is None:
            predict_proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true"
        self.predict_proba = predict_proba
        self._estimator: Any = None

    @classmethod
    def preload(cls) -> None:
        """Import what unpickling common estimators needs, ahead of any model (a fork server
        calls this once, so the replicas it forks share these modules instead of importing
        them: scikit-learn takes about a second to import)."""
        import joblib  # noqa: F401
        import sklearn.ensemble
        import sklearn.linear_model
        import sklearn.pipeline
        import sklearn.preprocessing
        import sklearn.tree  # noqa: F401

    def load(self) -> bool:
        path = self.model_file()
        if path.suffix == ".skops":
            self._estimator = _load_skops(path)
            self.ready = True
            return self.ready
        import joblib

        try:
            self._estimator = joblib.load(path)
        except ModuleNotFoundError as exc:
            raise StorageError(
                f"{path.name} (in {path.parent}) needs the Python module {exc.name!r}, "
                "which is not installed where ksrv serve runs"
            ) from exc
        except MemoryError as exc:
            raise StorageError(
                f"{path.name} (in {path.parent}) could not be unpickled: out of memory (the "
                "model is too big for this machine, or a corrupt file claims a huge size)"
            ) from exc
        except NOT_A_PICKLE as exc:
            # The pickle machine fails on garbage with whatever it tripped on (KeyError 194,
            # "pop from empty list"): meaningless to the user, so kept for the log only.
            raise files.load_failure(path, "joblib/pickle file", CORRUPT) from exc
        except Exception as exc:
            reason = str(exc).replace(str(path), path.name)
            raise StorageError(
                f"{path.name} (in {path.parent}) could not be unpickled: "
                f"{type(exc).__name__}: {reason}"
            ) from exc
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        features = v1.get_predict_input(payload)
        method = self._estimator.predict
        if self._wants_proba(payload):
            method = getattr(self._estimator, "predict_proba", None)
            if method is None:
                raise InvalidInput(f"Model '{self.name}' does not support predict_proba")
        try:
            result = method(features)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # scikit-learn reports wrong feature counts and dtypes this way: the caller's input.
            raise InvalidInput(f"Model '{self.name}' rejected the input: {exc}") from None
        return v1.get_predict_response(payload, result, self.name)

    def _wants_proba(self, payload: Any) -> bool:
        parameters = (
            payload.parameters
            if isinstance(payload, InferRequest)
            else payload.get("parameters")
            if isinstance(payload, dict)
            else None
        )
        if isinstance(parameters, dict) and "predict_proba" in parameters:
            return bool(parameters["predict_proba"])
        return self.predict_proba

    def get_input_types(self) -> list[dict[str, Any]]:
        features = getattr(self._estimator, "n_features_in_", None)
        if features is None:
            return []
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, int(features)]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        if self.predict_proba:
            classes = getattr(self._estimator, "classes_", None)
            width = -1 if classes is None else len(classes)
            return [{"name": "output-0", "datatype": "FP64", "shape": [-1, width]}]
        classes = getattr(self._estimator, "classes_", None)
        datatype = "FP64" if classes is None else tensor.datatype_of(np.asarray(classes))
        return [{"name": "output-0", "datatype": datatype, "shape": [-1]}]


def _load_skops(path: Path) -> Any:
    """The estimator in a skops file, if every type in it is trusted (module docstring).

    Raises:
        StorageError: an untrusted type (named, with how to trust it), or a file skops
            cannot read.
    """
    try:
        import skops.io
    except ModuleNotFoundError as exc:
        raise StorageError(
            f"{path.name} is a skops file, but skops is not installed (pip install 'ksrv[sklearn]')"
        ) from exc
    extra = os.environ.get(SKOPS_TRUSTED_ENV, "")
    trusted = [name.strip() for name in extra.split(",") if name.strip()]
    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
        if untrusted:
            raise StorageError(
                f"{path.name} (in {path.parent}) holds types skops does not trust: "
                f"{', '.join(untrusted)}; if you trust them, list them in {SKOPS_TRUSTED_ENV}"
            )
        return skops.io.load(path, trusted=trusted or None)
    except StorageError:
        raise
    except Exception as exc:
        raise files.load_failure(path, "skops file", f"{type(exc).__name__}: {exc}") from exc
