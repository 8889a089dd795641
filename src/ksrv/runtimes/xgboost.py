"""XGBoost runtime: KServe's xgbserver behaviour.

The model directory holds exactly one `.bst`, `.json` or `.ubj` file, loaded as a `Booster`.
`predict` goes through a `DMatrix`, so the answer is what `Booster.predict` gives (class
probabilities for `multi:softprob`, `binary:logistic`, ...). Threads per prediction come from
`nthread`, else `$XGBOOST_NTHREAD`, else 1 (KServe's `--nthread` default).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers
from ksrv.protocol import v1
from ksrv.runtimes import files, threads


class XGBoostModel(files.FileModel):
    """Serves an XGBoost `Booster` saved with `save_model`."""

    MODEL_EXTENSIONS = (".bst", ".json", ".ubj")
    batchable = True  # predictions are per row: concurrent requests may merge

    def __init__(self, name: str, model_dir: str | Path, nthread: int | None = None) -> None:
        super().__init__(name, model_dir)
        self.nthread = threads.thread_count(nthread, "XGBOOST_NTHREAD", 1)
        self._booster: Any = None

    def load(self) -> bool:
        import xgboost

        path = self.model_file()
        try:
            # From a buffer, XGBoost tells JSON from UBJSON by content, so a `.bst` loads
            # without the file-extension warning the path form gives.
            raw = bytearray(path.read_bytes())
            self._booster = xgboost.Booster(params={"nthread": self.nthread}, model_file=raw)
        except (OSError, xgboost.core.XGBoostError) as exc:
            raise files.load_failure(path, "XGBoost model", _reason(exc)) from None
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        import xgboost

        features = v1.get_predict_input(payload)
        expected = self._booster.num_features()
        if (
            isinstance(features, np.ndarray)
            and features.ndim == 2
            and features.shape[1] != expected
        ):
            # XGBoost would treat absent columns as missing values and answer anyway.
            raise InvalidInput(
                f"Model '{self.name}' expects {expected} features, got {features.shape[1]}"
            )
        try:
            matrix = xgboost.DMatrix(features, nthread=self.nthread)
            result = self._booster.predict(matrix)
        except (ValueError, TypeError) as exc:
            # XGBoostError is a ValueError: feature-count, name and dtype mismatches.
            raise InvalidInput(f"Model '{self.name}' rejected the input: {_reason(exc)}") from None
        return v1.get_predict_response(payload, result, self.name)

    def get_input_types(self) -> list[dict[str, Any]]:
        if self._booster is None:
            return []
        return [
            {"name": "input-0", "datatype": "FP32", "shape": [-1, self._booster.num_features()]}
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        if self._booster is None:
            return []
        return [{"name": "output-0", "datatype": "FP32", "shape": self._output_shape()}]

    def _output_shape(self) -> list[int]:
        learner = json.loads(self._booster.save_config())["learner"]
        params = learner["learner_model_param"]
        num_class = int(params.get("num_class", "0"))
        num_target = int(params.get("num_target", "1"))
        if learner["objective"]["name"] == "multi:softprob" and num_class > 1:
            return [-1, num_class]
        if num_target > 1:
            return [-1, num_target]
        return [-1]


def _reason(exc: BaseException) -> str:
    """The message's first line without the native stack trace XGBoost appends, nor the time
    and source line it prefixes (`[04:43:19] /workspace/src/common/json.cc:409: Unknown …`)."""
    message = str(exc).split("\nStack trace:", 1)[0].strip()
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", message).splitlines()[0]
