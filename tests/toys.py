"""Toy models with no ML dependencies, for server behaviour tests.

Run as a script it is also a KServe-style entry point: `python toys.py --http_port P` serves
every toy through `ModelServer().start(...)`, the way a KServe custom model script does.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from ksrv import InferOutput, InferRequest, InferResponse, Model, ModelServer
from ksrv.errors import InvalidInput


class Echo(Model):
    """Returns every input unchanged (sync handlers)."""

    def __init__(self, name: str = "echo") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        if not isinstance(payload, InferRequest):
            return {"predictions": payload.get("instances", [])}
        outputs = []
        for item in payload.inputs:
            array = item.as_numpy()
            outputs.append(InferOutput(item.name, list(array.shape), item.datatype, array))
        return InferResponse(
            response_id=payload.id,
            model_name=self.name,
            infer_outputs=outputs,
            parameters=dict(payload.parameters),
        )


class Sum(Model):
    """Async predict: the sum of every input, as FP64."""

    def __init__(self, name: str = "sum") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None):
        total = float(sum(float(np.sum(i.as_numpy())) for i in payload.inputs))
        output = InferOutput("total", [1], "FP64", np.array([total]))
        return InferResponse(payload.id, self.name, [output])


class Slow(Model):
    """Sync predict that sleeps `delay_s` (request parameter, default 1 s)."""

    def __init__(self, name: str = "slow") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        parameters = payload.parameters if isinstance(payload, InferRequest) else payload
        time.sleep(float(parameters.get("delay_s", 1.0)))
        return {"pid": os.getpid(), "slept": True}


class Pid(Model):
    """Answers with the serving process id (to tell workers apart)."""

    def __init__(self, name: str = "pid") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None):
        await asyncio.sleep(0.01)
        if isinstance(payload, InferRequest):  # gRPC carries tensors only
            output = InferOutput("pid", [1], "INT64", np.array([os.getpid()], np.int64))
            return InferResponse(payload.id, self.name, [output])
        return {"pid": os.getpid()}


class Failing(Model):
    """Raises what the request asks for: a bug (ValueError) or the caller's mistake."""

    def __init__(self, name: str = "failing") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        if payload.get("kind") == "invalid":
            raise InvalidInput("the toy says this input is invalid")
        raise ValueError("the toy model is broken")


class Switch(Model):
    """A model the caller can switch off: `{"ready": false}` makes it not ready."""

    def __init__(self, name: str = "switch") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        self.ready = bool(payload.get("ready", True))
        return {"ready": self.ready}


class Headers(Model):
    """Returns the request headers it was given (preprocess sees them too)."""

    def __init__(self, name: str = "headers") -> None:
        super().__init__(name)
        self.ready = True

    def preprocess(self, payload, headers=None):
        return {"seen": dict(headers or {})}

    def predict(self, payload, headers=None):
        return payload


class Rows(Model):
    """A batchable model: each row's first value doubled, and how many rows its call held.

    V2 outputs `doubled` and `call_rows`; V1 predicts `[doubled, call_rows]` per row. A row
    whose first value is negative is refused (InvalidInput), failing any call it is in.
    """

    batchable = True
    enable_inline_sync = True  # as the sklearn runtime: cheap predicts run on the loop

    def __init__(self, name: str = "rows") -> None:
        super().__init__(name)
        self.ready = True

    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            rows = payload.inputs[0].as_numpy().reshape(len(payload.inputs[0].as_numpy()), -1)
        else:
            rows = np.asarray(payload["instances"], dtype=np.float64)
        if (rows[:, 0] < 0).any():
            raise InvalidInput("the toy refuses negative rows")
        doubled = rows[:, 0] * 2
        count = np.full(len(rows), len(rows), dtype=np.int64)
        if not isinstance(payload, InferRequest):
            return {
                "predictions": [[d, int(c)] for d, c in zip(doubled.tolist(), count, strict=True)]
            }
        outputs = [
            InferOutput("doubled", [len(rows)], "FP64", doubled),
            InferOutput("call_rows", [len(rows)], "INT64", count),
        ]
        return InferResponse(payload.id, self.name, outputs)


if __name__ == "__main__":
    toys = [Echo(), Sum(), Slow(), Pid(), Failing(), Switch(), Headers(), Rows()]
    for toy in toys:
        toy.load()
    ModelServer().start(toys)
