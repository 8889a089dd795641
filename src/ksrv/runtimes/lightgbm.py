"""LightGBM runtime: KServe's lgbserver behaviour.

The model directory holds exactly one `.bst` (KServe's name) or `.txt` file, loaded as a
`Booster`. LightGBM matches features by position, so records (`{"feature": value}` or KServe's
column form `{"feature": {"0": value}}`) are laid out in the booster's feature-name order
first. Threads come from `nthread`, else `$LIGHTGBM_NTHREAD`, else 1 (KServe's default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers
from ksrv.protocol import v1
from ksrv.runtimes import files, threads


class LightGBMModel(files.FileModel):
    """Serves a LightGBM `Booster` saved with `save_model`."""

    MODEL_EXTENSIONS = (".bst", ".txt")
    batchable = True  # predictions are per row: concurrent requests may merge

    def __init__(self, name: str, model_dir: str | Path, nthread: int | None = None) -> None:
        super().__init__(name, model_dir)
        self.nthread = threads.thread_count(nthread, "LIGHTGBM_NTHREAD", 1)
        self._booster: Any = None

    def load(self) -> bool:
        import lightgbm

        path = self.model_file()
        try:
            # Threads go to predict(): Booster ignores (and warns about) params for a file.
            self._booster = lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError as exc:
            raise files.load_failure(path, "LightGBM model", str(exc)) from None
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        import lightgbm

        features = self._features(payload)
        try:
            result = self._booster.predict(features, num_threads=self.nthread)
        except (lightgbm.basic.LightGBMError, ValueError, TypeError) as exc:
            # Wrong feature counts and non-numeric data: the caller's input.
            reason = str(exc).split("\n", 1)[0]  # drop LightGBM's advice to disable the check
            raise InvalidInput(f"Model '{self.name}' rejected the input: {reason}") from None
        return v1.get_predict_response(payload, result, self.name)

    def _features(self, payload: Any) -> Any:
        names: list[str] = self._booster.feature_name()
        if isinstance(payload, dict):
            rows = v1.instances(v1.check_request(payload))
            is_nested = rows and all(isinstance(row, list) and row for row in rows)
            if is_nested and all(isinstance(item, dict) for row in rows for item in row):
                rows = [item for row in rows for item in row]  # KServe: lists of records
            if rows and all(isinstance(row, dict) for row in rows):
                return _records_frame(rows, names)
        features = v1.get_predict_input(payload)
        if hasattr(features, "columns") and set(names) <= set(features.columns):
            features = features[names]  # a `content_type: pd` request, by column name
        return features

    def get_input_types(self) -> list[dict[str, Any]]:
        if self._booster is None:
            return []
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, self._booster.num_feature()]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        if self._booster is None:
            return []
        per_row = self._booster.num_model_per_iteration()
        shape = [-1, per_row] if per_row > 1 else [-1]
        return [{"name": "output-0", "datatype": "FP64", "shape": shape}]


def _records_frame(records: list[dict[str, Any]], names: list[str]) -> Any:
    """One DataFrame with the booster's columns, in its order; absent features are missing."""
    import pandas as pd

    known = set(names)
    frames = []
    for record in records:
        unknown = sorted(str(key) for key in record if key not in known)
        if unknown:
            raise InvalidInput(
                f"Unknown feature(s) {', '.join(unknown)}; the model's features are "
                + ", ".join(names)
            )
        if any(isinstance(value, dict | list) for value in record.values()):
            frames.append(pd.DataFrame(record, columns=names))  # KServe's column form
        else:
            frames.append(pd.DataFrame([record], columns=names))
    try:
        return pd.concat(frames, axis=0, ignore_index=True).astype("float64")
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"Feature values must be numbers: {exc}") from None
