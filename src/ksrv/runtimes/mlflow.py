"""MLflow runtime: pyfunc models (a directory with an `MLmodel` file), as MLServer serves them.

`mlflow.pyfunc.load_model` picks the flavour; requests become what pyfunc expects (a numpy
array, or a DataFrame for records, several named V2 inputs or `content_type: pd`) and the
result goes back through KServe's response helpers. The signature, when the model has one,
feeds V2 metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ksrv.errors import InvalidInput, ModelNotFound
from ksrv.model.base import Headers, Model
from ksrv.protocol import v1
from ksrv.protocol.v2 import InferRequest
from ksrv.runtimes import files

MLMODEL_FILE = "MLmodel"
_DATATYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
              "boolean": "BOOL", "string": "BYTES", "binary": "BYTES"}  # fmt: skip


class MLflowModel(Model):
    """Serves an MLflow pyfunc model directory."""

    def __init__(self, name: str, model_dir: str | Path) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self._model: Any = None

    @staticmethod
    def has_model_file(model_dir: str | Path) -> bool:
        return (Path(model_dir) / MLMODEL_FILE).is_file()

    def load(self) -> bool:
        if not self.has_model_file(self.model_dir):
            raise ModelNotFound(message=f"No {MLMODEL_FILE} file in {self.model_dir}")
        import mlflow.pyfunc

        try:
            self._model = mlflow.pyfunc.load_model(str(self.model_dir))
        except Exception as exc:
            raise files.load_failure(self.model_dir, "MLflow model", str(exc)) from None
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        if isinstance(payload, InferRequest) and len(payload.inputs) > 1:
            features = payload.as_dataframe()
        else:
            features = v1.get_predict_input(payload)
        try:
            result = self._model.predict(features)
        except Exception as exc:  # pyfunc wraps schema and framework errors alike
            raise InvalidInput(f"Model '{self.name}' rejected the input: {exc}") from None
        return v1.get_predict_response(payload, result, self.name)

    def get_input_types(self) -> list[dict[str, Any]]:
        schema = self._model.metadata.get_input_schema() if self._model else None
        if schema is None or not getattr(schema, "has_input_names", lambda: False)():
            return []
        return [
            {"name": name, "datatype": _DATATYPES.get(str(kind), "BYTES"), "shape": [-1]}
            for name, kind in zip(schema.input_names(), schema.input_types(), strict=True)
        ]
