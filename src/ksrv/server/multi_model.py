"""A multi-model server: the TrainedModels of `models.json`, loaded on first request, LRU out.

The control plane writes one `models.json` per multi-model InferenceService (KServe's
`modelconfig-{isvc}-0` ConfigMap, the same document); every replica watches it (`refresh`: a
stat per poll, and one on a request for a name it does not know, so a model applied a moment
ago is served at once). Each entry is registered as a `TrainedModelHandle`, so the data plane's
routes (V1, V2, gRPC) find it; its first request downloads the model through `ksrv.storage`
(cached) and loads it with the runtime of its framework. Concurrent requests for a model being
loaded wait for that one load. Before a load, `MemoryBudget` names the least recently used
models to unload so the new one fits; a model in use when it is unloaded finishes its
requests first (its `stop` waits for the last). A new `storageUri` for a loaded model loads
the new version beside the old one, which serves until the new one takes over: no request
fails for a roll.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksrv import storage
from ksrv.api import runtime_selection, trained_model
from ksrv.errors import KsrvError, ModelNotFound, ModelNotReady
from ksrv.model.base import PREDICT, Headers, Model
from ksrv.model.memory_budget import MemoryBudget, TooLarge
from ksrv.model.repository import ModelRepository
from ksrv.runtimes import registry

logger = logging.getLogger(__name__)

POLL_S = 0.5
LOAD_THREADS = 4


@dataclass(slots=True)
class _Loaded:
    model: Model
    entry: trained_model.ModelEntry
    in_use: int = 0
    is_evicted: bool = False


@dataclass(slots=True)
class _Watched:
    signature: tuple[int, int, int] | None = None
    entries: dict[str, trained_model.ModelEntry] = field(default_factory=dict)


class TrainedModels:
    """The models of one `models.json`: registered in a repository, loaded on demand."""

    def __init__(
        self,
        repository: ModelRepository,
        config_path: str | Path,
        budget_bytes: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.config_path = Path(config_path)
        self.budget = MemoryBudget(budget_bytes)
        self.clock = clock
        self.loads = 0
        """Loads started (a test counts them: concurrent first requests make one)."""
        self._watched = _Watched()
        self._loaded: dict[str, _Loaded] = {}
        self._loading: dict[str, asyncio.Future[_Loaded]] = {}
        self._rolling: set[str] = set()
        self._pool = concurrent.futures.ThreadPoolExecutor(LOAD_THREADS, "ksrv-load")
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- models.json -----------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read `models.json` if it changed: register new entries, drop removed ones,
        roll the loaded models whose storageUri changed."""
        try:
            stat = self.config_path.stat()
        except FileNotFoundError:
            signature, text = None, "[]"
        else:
            # The control plane replaces the file (a new inode) on every change.
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if signature == self._watched.signature:
                return
            text = self.config_path.read_text()
        if signature == self._watched.signature:
            return
        try:
            entries = trained_model.parse_models_json(text)
        except KsrvError as exc:
            logger.error("ignoring %s: %s", self.config_path, exc)
            return
        old = self._watched.entries
        self._watched = _Watched(signature, entries)
        for name in old.keys() - entries.keys():
            if self.repository.get_model(name) is not None:
                self.repository.unload(name)  # stops the handle, which unloads the model
        for name, entry in entries.items():
            if name not in old:
                self.repository.update(TrainedModelHandle(name, self))
            elif entry != old[name]:
                self._roll(name)

    async def watch(self) -> None:
        """Refresh every `POLL_S` until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            self.refresh()
            await asyncio.sleep(POLL_S)

    def entry(self, name: str) -> trained_model.ModelEntry:
        found = self._watched.entries.get(name)
        if found is None:
            raise ModelNotFound(name)
        return found

    # -- loading ---------------------------------------------------------------------------
    async def acquire(self, name: str) -> _Loaded:
        """The loaded model `name` (loading it first, once for all who ask), marked in use:
        hand it back with `release`."""
        loaded = self._loaded.get(name)
        while loaded is None or loaded.is_evicted:
            # Unloaded again before this request's turn came (a tight budget): load again.
            pending = self._loading.get(name)
            if pending is None:
                pending = self._start_load(name, self.entry(name))
            loaded = await asyncio.shield(pending)
        loaded.in_use += 1
        self.budget.touch(name, self.clock())
        return loaded

    def release(self, loaded: _Loaded) -> None:
        loaded.in_use -= 1
        if loaded.is_evicted and loaded.in_use == 0:
            loaded.model.stop()

    def _start_load(self, name: str, entry: trained_model.ModelEntry) -> asyncio.Future[_Loaded]:
        self._loop = asyncio.get_running_loop()
        pending = self._loop.create_task(self._load(name, entry))
        self._loading[name] = pending
        pending.add_done_callback(lambda _: self._loading.pop(name, None))
        pending.add_done_callback(_consume)
        return pending

    async def _load(self, name: str, entry: trained_model.ModelEntry) -> _Loaded:
        self.loads += 1
        size = entry.memory_bytes
        try:
            victims = self.budget.admit(name, size, self.clock())
        except TooLarge as exc:
            raise ModelNotReady(name, str(exc)) from exc
        for victim in victims:
            self._evict(victim)
        loop = asyncio.get_running_loop()
        try:
            model, measured = await loop.run_in_executor(self._pool, _build, entry)
        except Exception as exc:
            self.budget.remove(name)
            if isinstance(exc, ModelNotReady):
                raise
            raise ModelNotReady(name, f"Loading failed: {exc}") from exc
        if not size:
            self.budget.resize(name, measured)
        if self._watched.entries.get(name) != entry:  # deleted or changed while loading
            self.budget.remove(name)
            model.stop()
            if name not in self._watched.entries:
                raise ModelNotFound(name)
            return await self._load(name, self._watched.entries[name])
        loaded = self._loaded[name] = _Loaded(model, entry)
        logger.info(
            "loaded model=%s uri=%s bytes=%d resident=%d",
            name,
            entry.storage_uri,
            size,
            len(self._loaded),
        )
        return loaded

    def _evict(self, name: str) -> None:
        loaded = self._loaded.pop(name, None)
        if loaded is None:
            return
        logger.info("unloading least recently used model=%s", name)
        loaded.is_evicted = True
        if loaded.in_use == 0:
            loaded.model.stop()

    def unload(self, name: str) -> None:
        """Unload `name` from memory (it stays registered and loads again on demand)."""
        self.budget.remove(name)
        self._evict(name)

    def _roll(self, name: str) -> None:
        """Load a changed model's new version beside the old, which serves meanwhile."""
        if name not in self._loaded or name in self._rolling or self._loop is None:
            return
        self._rolling.add(name)

        async def roll() -> None:
            try:
                entry = self._watched.entries.get(name)
                while entry is not None:
                    model, _ = await self._loop_run(_build, entry)
                    if self._watched.entries.get(name) == entry:
                        old = self._loaded.get(name)
                        self._loaded[name] = _Loaded(model, entry)
                        if old is not None:
                            old.is_evicted = True
                            if old.in_use == 0:
                                old.model.stop()
                        logger.info("rolled model=%s uri=%s", name, entry.storage_uri)
                        return
                    model.stop()
                    entry = self._watched.entries.get(name)
            except Exception:
                logger.exception("rolling model=%s failed: the old version keeps serving", name)
            finally:
                self._rolling.discard(name)

        self._loop.create_task(roll()).add_done_callback(_consume)

    async def _loop_run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def state(self, name: str) -> tuple[str, str]:
        """(state, reason) for the repository index, in Triton's words."""
        if name in self._loaded:
            return "Ready", ""
        if name in self._loading:
            return "Loading", ""
        entry = self._watched.entries.get(name)
        if entry is not None and not self.budget.fits(entry.memory_bytes):
            budget = self.budget.budget_bytes or 0
            return "Unavailable", str(TooLarge(name, entry.memory_bytes, budget))
        return "Unavailable", "not loaded: loads on its first request"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TrainedModelHandle(Model):
    """What the repository holds for a TrainedModel: its calls load the model first."""

    def __init__(self, name: str, models: TrainedModels) -> None:
        super().__init__(name)
        self.models = models
        self.ready = True

    async def healthy(self) -> bool:
        entry = self.models._watched.entries.get(self.name)
        return entry is not None and self.models.budget.fits(entry.memory_bytes)

    async def __call__(
        self,
        payload: Any,
        headers: Headers | None = None,
        verb: str = PREDICT,
        run_sync: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> Any:
        loaded = await self.models.acquire(self.name)
        try:
            return await loaded.model(payload, headers, verb, run_sync)
        finally:
            self.models.release(loaded)

    async def get_input_types(self) -> Any:  # type: ignore[override]
        return await self._metadata(lambda model: model.get_input_types())

    async def get_output_types(self) -> Any:  # type: ignore[override]
        return await self._metadata(lambda model: model.get_output_types())

    async def _metadata(self, read: Callable[[Model], Any]) -> Any:
        loaded = await self.models.acquire(self.name)
        try:
            value = read(loaded.model)
            return await value if asyncio.iscoroutine(value) else value
        finally:
            self.models.release(loaded)

    @property
    def repository_state(self) -> tuple[str, str]:
        return self.models.state(self.name)

    def stop(self) -> None:
        self.ready = False
        self.models.unload(self.name)


class TrainedModelRepository(ModelRepository):
    """A repository that looks at `models.json` again before it answers "not found"."""

    models: TrainedModels

    def get_model(self, name: str) -> Model | None:
        found = super().get_model(name)
        if found is None:
            self.models.refresh()
            found = super().get_model(name)
        return found

    def require(self, name: str) -> Model:
        found = self.get_model(name)
        if found is None:
            raise ModelNotFound(name)
        return found

    def unload(self, name: str) -> None:
        """The repository extension's unload frees a TrainedModel's memory; it stays listed
        (and loads again on demand) while models.json lists it."""
        if isinstance(super().get_model(name), TrainedModelHandle) and name in (
            self.models._watched.entries
        ):
            self.models.unload(name)
            return
        super().unload(name)

    async def is_model_ready(self, name: str) -> bool:
        """The server's readiness does not wait for TrainedModels: they load on demand."""
        model = super().get_model(name)
        return isinstance(model, TrainedModelHandle) or await super().is_model_ready(name)

    def load(self, name: str) -> Model:
        """The repository extension's load: the TrainedModel is loaded now, not on demand."""
        handle = self.require(name)
        loop = self.models._loop
        if not isinstance(handle, TrainedModelHandle) or loop is None:
            return super().load(name)
        loaded = asyncio.run_coroutine_threadsafe(self.models.acquire(name), loop).result()
        self.models.release(loaded)
        return handle


def multi_model_repository(
    config_path: str | Path, budget_bytes: int | None
) -> TrainedModelRepository:
    """A repository serving the TrainedModels `config_path` lists (read once now)."""
    repository = TrainedModelRepository()
    repository.models = TrainedModels(repository, config_path, budget_bytes)
    repository.models.refresh()
    return repository


def _build(entry: trained_model.ModelEntry) -> tuple[Model, int]:
    """Download (cached) and load one TrainedModel; returns it and its size on disk."""
    path = storage.download(entry.storage_uri)
    runtime = registry.runtime_class(runtime_selection.default_ksrv_runtime(entry.framework))
    model = runtime(entry.name, path)
    if model.load() is True:
        model.ready = True
    if not model.ready:
        raise ModelNotReady(entry.name, "load() did not make it ready")
    return model, _disk_bytes(Path(path))


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a background task's exception so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()
