"""Toy models with no ML dependencies, for server behaviour tests.

Run as a script it is also a KServe-style entry point: `python toys.py --http_port P` serves
every toy through `ModelServer().start(...)`, the way a KServe custom model script does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import sys
import time
from typing import ClassVar

import numpy as np

from ksrv import InferOutput, InferRequest, InferResponse, Model, ModelServer
from ksrv.errors import InvalidInput

# A held model gives up after this, so a test that never releases it fails instead of hanging;
# longer than any wait of a test (tests/conftest.py HELD_TIMEOUT_S), which thus fails first.
RELEASE_TIMEOUT_S = 90.0


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


class Concurrency(Model):
    """Sleeps `delay_s` (default 0.2 s) and answers with the most requests it ever had in
    predict at once in this process: a limit upstream shows as a ceiling here."""

    def __init__(self, name: str = "concurrency") -> None:
        super().__init__(name)
        self.in_flight = 0
        self.most = 0

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(float(payload.get("delay_s", 0.2)))
        finally:
            self.in_flight -= 1
        return {"pid": os.getpid(), "most": self.most}


class Pid(Model):
    """Answers with the serving process id (to tell workers apart).

    Given a `port` it first holds its worker's loop as `hold` does, so a test knows the
    next connection can only be accepted by another worker.
    """

    def __init__(self, name: str = "pid") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None):
        if isinstance(payload, dict) and "port" in payload:
            _hold_loop(payload)
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


class Calls(Model):
    """Answers how many predictions it has made, this one included (what reached it)."""

    def __init__(self, name: str = "calls") -> None:
        super().__init__(name)
        self.ready = True
        self.calls = 0

    def predict(self, payload, headers=None):
        self.calls += 1
        if isinstance(payload, InferRequest):  # gRPC carries tensors only
            output = InferOutput("calls", [1], "INT64", np.array([self.calls], np.int64))
            return InferResponse(payload.id, self.name, [output])
        return {"calls": self.calls}


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


class Tokens(Model):
    """Streams `instances` one line each, or on V2 one JSON chunk per input (an async
    generator `predict`, as LLM models have).

    After the first line it waits until the gate of its `key` opens (`tokens-gate`), so a
    test knows the first chunk travelled before the last was produced; `tokens-state`
    tells whether the stream of a key finished or was closed early (the client hung up).
    """

    gates: ClassVar[dict[str, asyncio.Event]] = {}
    states: ClassVar[dict[str, str]] = {}

    def __init__(self, name: str = "tokens") -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):  # V2: one JSON chunk per input name
            key = payload.parameters["key"]
            chunks = [{"token": given.name} for given in payload.inputs]
        else:
            key, chunks = payload["key"], [f"{word}\n" for word in payload["instances"]]
        gate = Tokens.gates.setdefault(key, asyncio.Event())
        Tokens.states[key] = "streaming"
        outcome = "closed"
        try:
            yield chunks[0]
            await gate.wait()
            for chunk in chunks[1:]:
                yield chunk
            outcome = "finished"
        finally:
            Tokens.states[key] = outcome


class TokensGate(Model):
    """Opens the gate a `tokens` stream of the same `key` waits on."""

    def __init__(self, name: str = "tokens-gate") -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        Tokens.gates.setdefault(payload["key"], asyncio.Event()).set()
        return {"opened": payload["key"]}


class TokensState(Model):
    """How the `tokens` stream of `key` ended: streaming, finished, closed (or unknown)."""

    def __init__(self, name: str = "tokens-state") -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        return {"state": Tokens.states.get(payload["key"], "unknown")}


class Hold(Model):
    """Holds the whole event loop (an async predict that blocks) until a test releases it.

    It connects to the test's `port`, says `held`, and, when `grpc_calls` is given, waits
    until that many gRPC calls are waiting for the loop and says `queued`; then it blocks
    until the test sends `go`. Requests that arrive meanwhile are all read in the next loop
    turn, which is how tests/integration/server/test_batching.py forces requests to arrive
    together instead of hoping the OS delivers them so (tests/conftest.py `HeldLoop`).
    """

    def __init__(self, name: str = "hold") -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        _hold_loop(payload)
        return {"held": True, "pid": os.getpid()}


class Gate(Model):
    """A sync predict (run in a thread: the loop stays free) that returns when a test says so.

    It connects to the test's `port` (a request parameter on V2), says `in`, and blocks
    until the test sends `go`: the test sees how many calls are inside the model and
    decides when they end (tests/conftest.py `ModelCalls`), instead of sleeping and hoping.
    """

    def __init__(self, name: str = "gate") -> None:
        super().__init__(name)
        self.ready = True

    def predict(self, payload, headers=None):
        parameters = payload.parameters if isinstance(payload, InferRequest) else payload
        with _report(int(parameters["port"]), b"in") as test:
            _wait_for_go(test)
        if isinstance(payload, InferRequest):
            output = InferOutput("pid", [1], "INT64", np.array([os.getpid()], np.int64))
            return InferResponse(payload.id, self.name, [output])
        return {"pid": os.getpid(), "released": True}


def _report(port: int, said: bytes) -> socket.socket:
    """A connection to the test listening on `port`, on which the model said `said`."""
    test = socket.create_connection(("127.0.0.1", port), timeout=RELEASE_TIMEOUT_S)
    test.sendall(said)
    return test


def _wait_for_go(test: socket.socket) -> None:
    if test.recv(2) != b"go":
        raise RuntimeError("the test went away without releasing the model")


def _hold_loop(payload: dict) -> None:
    """Block the calling (loop) thread until the test releases it (see `Hold`)."""
    with _report(payload["port"], b"held") as test:
        if payload.get("grpc_calls"):
            deadline = time.monotonic() + RELEASE_TIMEOUT_S
            while _grpc_calls_waiting() < payload["grpc_calls"]:
                if time.monotonic() > deadline:
                    raise TimeoutError("the gRPC calls never reached the server")
                time.sleep(0.001)  # holding the loop is the point
            test.sendall(b"queued")
        _wait_for_go(test)


def _grpc_calls_waiting() -> int:
    """gRPC handler threads blocked until the event loop runs their call."""
    count = 0
    for frame in sys._current_frames().values():
        while frame is not None:
            code = frame.f_code
            if code.co_name == "handle" and code.co_filename.endswith("grpc_service.py"):
                count += 1
                break
            frame = frame.f_back
    return count


if __name__ == "__main__":
    toys = [
        Echo(), Sum(), Slow(), Pid(), Failing(), Switch(), Headers(), Rows(),
        Tokens(), TokensGate(), TokensState(), Hold(), Gate(), Calls(),
    ]  # fmt: skip
    for toy in toys:
        toy.load()
    server = ModelServer()
    # Not a KServe flag: lets tests/integration/server/test_batching.py turn merging off
    # in a server that also has the `hold` toy.
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--max_batch_size", type=int, default=server.settings.max_batch_size)
    batch_size = extra.parse_known_args()[0].max_batch_size
    server.settings = dataclasses.replace(server.settings, max_batch_size=batch_size)
    server.start(toys)
