"""PMML runtime: a JVM-backed evaluator (JPMML through jpmml_evaluator + JPype).

As KServe's pmmlserver: rows go in (lists in the model's input-field order, or records by
field name), the evaluator scores them all at once, and the result fields come back as a
table (V1 records, V2 one output per field). The JVM starts once per process at load, so
forked `--workers` each load their own copy rather than share a parent's JVM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers
from ksrv.protocol import v1
from ksrv.protocol.v2 import InferRequest
from ksrv.runtimes import files


class PMMLModel(files.FileModel):
    """Serves a `.pmml` document with the JPMML evaluator."""

    MODEL_EXTENSIONS = (".pmml",)

    def __init__(self, name: str, model_dir: str | Path) -> None:
        super().__init__(name, model_dir)
        self._evaluator: Any = None
        self._input_names: list[str] = []
        self._result_names: list[str] = []

    def load(self) -> bool:
        from jpmml_evaluator import make_evaluator  # type: ignore[import-untyped]

        path = self.model_file()
        try:
            self._evaluator = make_evaluator(str(path), backend="jpype").verify()
        except Exception as exc:
            raise files.load_failure(path, "PMML file", str(exc)) from None
        self._input_names = [f.getName() for f in self._evaluator.getInputFields()]
        self._result_names = [
            f.getName()
            for f in [*self._evaluator.getTargetFields(), *self._evaluator.getOutputFields()]
        ]
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        import pandas as pd

        features = self._table(payload, pd)
        try:
            results = self._evaluator.evaluateAll(features)
        except Exception as exc:  # the JVM reports bad values as Java exceptions
            raise InvalidInput(f"Model '{self.name}' rejected the input: {exc}") from None
        return v1.get_predict_response(payload, results, self.name)

    def _table(self, payload: Any, pd: Any) -> Any:
        if isinstance(payload, InferRequest) and len(payload.inputs) > 1:
            return payload.as_dataframe()
        rows = v1.get_predict_input(payload)
        if isinstance(rows, pd.DataFrame):
            unknown = set(rows.columns) - set(self._input_names)
            if unknown:
                raise InvalidInput(f"unknown input fields {sorted(unknown)}")
            return rows
        table = pd.DataFrame(rows)
        if table.ndim != 2 or table.shape[1] != len(self._input_names):
            raise InvalidInput(
                f"each row needs {len(self._input_names)} values: {', '.join(self._input_names)}"
            )
        table.columns = self._input_names
        return table

    def get_input_types(self) -> list[dict[str, Any]]:
        width = len(self._input_names)
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, width]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": name, "datatype": "FP64", "shape": [-1]} for name in self._result_names]
