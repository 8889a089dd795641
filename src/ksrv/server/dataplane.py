"""The transport-neutral data plane: liveness, readiness, metadata, inference, repository.

REST (and later gRPC) adapters decode a request, call one method here and encode the answer;
nothing below this point asks which transport a request came from. The server's metrics
(`metrics.ServerMetrics`) live here too, so every adapter reaches the same ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import ksrv
from ksrv.errors import ModelNotFound, ModelNotReady
from ksrv.model.base import EXPLAIN, PREDICT, Headers, Model
from ksrv.model.repository import ModelRepository
from ksrv.server.batching import Coalescer
from ksrv.server.metrics import ServerMetrics
from ksrv.server.settings import DEFAULT_MAX_BATCH_SIZE

SERVER_NAME = "ksrv"
EXTENSIONS = ["model_repository_extension", "binary_tensor_data", "parameters"]


class DataPlane:
    """Answers every protocol call against one `ModelRepository`."""

    def __init__(
        self,
        repository: ModelRepository,
        max_threads: int = 1,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        metrics: ServerMetrics | None = None,
        max_latency_s: float | None = None,
    ) -> None:
        self.repository = repository
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.coalescer = Coalescer(max_batch_size, self.metrics.record_merge, max_latency_s)
        self.is_draining = False
        self._max_threads = max_threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    # -- server ----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": ksrv.__version__, "extensions": EXTENSIONS}

    async def is_server_ready(self) -> bool:
        """Ready when not draining and every registered model is ready."""
        if self.is_draining:
            return False
        for name in self.repository.get_models():
            if not await self.repository.is_model_ready(name):
                return False
        return True

    # -- models ----------------------------------------------------------------------------
    def model(self, name: str, version: str | None = None) -> Model:
        """The registered model `name` (at `version`, if the model declares versions)."""
        model = self.repository.require(name)
        declared = getattr(model, "version", None)
        if version is not None and declared is not None and str(declared) != version:
            raise ModelNotFound(message=f"Model {name} has no version {version}")
        return model

    async def is_model_ready(self, name: str, version: str | None = None) -> bool:
        return await self.model(name, version).healthy()

    async def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.model(name, version)
        inputs = await self._maybe_await(model.get_input_types())
        outputs = await self._maybe_await(model.get_output_types())
        metadata: dict[str, Any] = {"name": name}
        declared = version or getattr(model, "version", None)
        if declared is not None:
            metadata["versions"] = [str(declared)]
        metadata.update(platform="", inputs=inputs or [], outputs=outputs or [])
        return metadata

    async def infer(
        self,
        name: str,
        payload: Any,
        headers: Headers,
        version: str | None = None,
        verb: str = PREDICT,
    ) -> Any:
        """Run the model's pipeline on a decoded payload (V1 dict or `InferRequest`)."""
        model = self.model(name, version)
        if not model.ready:
            raise ModelNotReady(name)
        if model.step_observers is None:
            model.observe_steps(self.metrics.step_observers(model.name))
        if verb == PREDICT and self.coalescer.merges(model):
            return await self.coalescer.submit(model, payload, headers, self._predict)
        return await model(payload, headers, verb, self.run_sync)

    async def _predict(self, model: Model, payload: Any, headers: Headers) -> Any:
        return await model(payload, headers, PREDICT, self.run_sync)

    async def explain(self, name: str, payload: Any, headers: Headers) -> Any:
        return await self.infer(name, payload, headers, verb=EXPLAIN)

    async def run_sync(self, function: Callable[[], Any]) -> Any:
        """Run blocking model code in the server's thread pool, off the event loop."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_threads, thread_name_prefix="ksrv-model"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- repository extension --------------------------------------------------------------
    async def repository_index(self) -> list[dict[str, Any]]:
        index = []
        for name, model in self.repository.get_models().items():
            # A multi-model server's TrainedModels say whether they are loaded.
            state = getattr(model, "repository_state", None)
            if state is None:
                state = ("Ready" if await model.healthy() else "NotReady", "")
            index.append({"name": name, "state": state[0], "reason": state[1]})
        return index

    async def load(self, name: str) -> None:
        started = time.perf_counter()
        await self.run_sync(lambda: self.repository.load(name))
        self.metrics.record_load(name, time.perf_counter() - started)

    async def unload(self, name: str) -> None:
        self.repository.unload(name)

    @staticmethod
    async def _maybe_await(value: Any) -> Any:
        return await value if asyncio.iscoroutine(value) else value
