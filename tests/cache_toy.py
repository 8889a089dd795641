"""A toy model for the response cache's tests and bench: predict sleeps, counts its calls.

Each answer carries the number of the call that made it (`calls`), so a test tells a cached
answer (an old number) from a fresh one without reading the server's logs.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ksrv import InferOutput, InferRequest, InferResponse, Model
from ksrv.errors import InvalidInput

PREDICT_S = 0.010  # the bar's model costs at least 5 ms a call


class SlowCounter(Model):
    """Echoes its inputs after `PREDICT_S`, with the call's number; an input named `fail`
    is refused with a 400 (an error, never cached)."""

    def __init__(self, name: str = "slow") -> None:
        super().__init__(name)
        self.calls = 0
        self._lock = threading.Lock()

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        time.sleep(PREDICT_S)
        with self._lock:
            self.calls += 1
            call = self.calls
        if not isinstance(payload, InferRequest):
            if "fail" in payload:
                raise InvalidInput("asked to fail")
            return {"predictions": payload.get("instances", []), "calls": call}
        if payload.get_input_by_name("fail") is not None:
            raise InvalidInput("asked to fail")
        outputs = [
            InferOutput(item.name, item.shape, item.datatype, item.as_numpy())
            for item in payload.inputs
        ]
        outputs.append(InferOutput("calls", [1], "INT64", np.array([call], dtype=np.int64)))
        return InferResponse(payload.id, self.name, outputs)
