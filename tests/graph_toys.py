"""Stand-ins for the images KServe's InferenceGraph examples and e2e tests run: ksrv custom
models, served with `ksrv serve tests/graph_toys.py:Class` as a predictor's container command.

- `Success` and `NotFound404` stand in for `kserve/success-200-isvc` and
  `kserve/error-404-isvc` (test/e2e/graph): the first answers `{"message": "SUCCESS"}` as its
  one prediction, the second fails every call with 404 and "Intentional 404 code" (ksrv's error
  body `{"error": ...}` where KServe's image answers FastAPI's `{"detail": ...}`).
- `Target` stands in for `iamlovingit/bgtest` (docs/samples/graph/switch.yaml): it answers
  which service it is, from its `target` env variable (else its model name), and what it got.
"""

from __future__ import annotations

import os

from ksrv import Model
from ksrv.errors import ModelNotFound


class Success(Model):
    def __init__(self, name: str = "success") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        return {"predictions": [{"message": "SUCCESS"}]}


class NotFound404(Model):
    def __init__(self, name: str = "error-404") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        raise ModelNotFound(message="Intentional 404 code")


class Target(Model):
    def __init__(self, name: str = "target") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        return {"predictions": [{"target": os.environ.get("target", self.name)}], "got": payload}  # noqa: SIM112 (the example names it)
