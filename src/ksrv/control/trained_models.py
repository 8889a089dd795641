"""TrainedModels on the local platform: each multi-model InferenceService's `models.json`, and
every TrainedModel's status.

As KServe's controllers do with the `modelconfig-{isvc}-0` ConfigMap, each pass writes the
document (`api.trained_model.models_json`) of every multi-model InferenceService to a file its
replicas watch (`models_config_path`); the replicas load a model on its first request, under
their memory budget. Placement differs from KServe's on one point: KServe loads every model
and so places them while their *sum* fits the memory limit; a ksrv replica unloads the least
recently used model to make room, so a model is placed when it *alone* fits the budget (the
serving container's memory request, else limit). Status is KServe's (`trained_model_status`)
plus `loadedOn`: the replicas whose repository index says the model is loaded now (asked at
most every `INDEX_POLL_S`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx

from ksrv.api import resources, trained_model
from ksrv.api.inference_service import InferenceService
from ksrv.api.meta import quantity_bytes
from ksrv.api.trained_model import TrainedModel
from ksrv.control import plan
from ksrv.control.service_status import condition, keep_transition_times, mapping
from ksrv.control.store import Store
from ksrv.control.trained_model_status import Placement, model_status
from ksrv.protocol.routes import RouteTableDoc

logger = logging.getLogger(__name__)

ISVC: Final = "InferenceService"
KIND: Final = "TrainedModel"
INDEX_POLL_S: Final = 1.0
INDEX_TIMEOUT_S: Final = 2.0
MIN_PASS_S: Final = 0.2

Key = tuple[str, str]


def models_config_path(root: Path, namespace: str, isvc: str) -> Path:
    """Where the local platform keeps `modelconfig-{isvc}-0`'s `models.json`."""
    return root / namespace / f"modelconfig-{isvc}-0" / "models.json"


def memory_budget(isvc: InferenceService) -> int | None:
    """A multi-model replica's budget: the predictor's memory request, else limit."""
    found = plan.memory_request(isvc.spec.predictor.main_container)
    return None if found is None else int(found)


def placement(
    isvc: InferenceService | None, models: list[TrainedModel]
) -> tuple[Placement, dict[str, str]]:
    """The models whose memory fits a replica's budget (`MemoryResourceAvailable`), and the
    ones the predictor cannot serve at all, with why (name -> message)."""
    is_multi_model = isvc is not None and trained_model.is_multi_model(isvc)
    budget = memory_budget(isvc) if isvc is not None else None
    framework = _framework(isvc) if isvc is not None else None
    fits = {m.metadata.name for m in models if budget is None or _memory(m) <= budget}
    unsupported = {
        m.metadata.name: framework_problem(m, framework)
        for m in models
        if framework is not None and m.spec.model.framework != framework
    }
    limit = Decimal(budget) if budget is not None else None
    return Placement(is_multi_model, limit, frozenset(fits)), unsupported


def framework_problem(model: TrainedModel, framework: str) -> str:
    return (
        f"spec.model.framework: {model.spec.model.framework!r} is not served by the "
        f"InferenceService's runtime (model format {framework!r})"
    )


def memory_problem(model: TrainedModel, budget: int) -> str:
    return (
        f"spec.model.memory: {model.spec.model.memory} is more than the InferenceService's "
        f"predictor memory ({budget} bytes): the model could never be loaded"
    )


def _memory(model: TrainedModel) -> int:
    return int(quantity_bytes(model.spec.model.memory))


class TrainedModelReconciler:
    """Writes each multi-model service's `models.json` and each TrainedModel's status."""

    kinds: Final = (KIND, ISVC)
    follows_platform: Final = True

    def __init__(
        self,
        store: Store,
        root: Path,
        routes: Callable[[], RouteTableDoc],
        *,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.root = root
        self.routes = routes
        self.now = now
        self.monotonic = monotonic
        self._parsed: dict[tuple[str, str], Any] = {}
        self._written: dict[Path, str] = {}
        self._index: dict[Key, tuple[float, dict[str, list[str]]]] = {}
        self._client: httpx.AsyncClient | None = None
        self._inputs: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        self._last_pass = -MIN_PASS_S

    async def reconcile_all(self) -> None:
        # Passes at most every MIN_PASS_S: a thousand TrainedModels applied one by one are
        # caught up in a few passes, not a thousand.
        await asyncio.sleep(max(0.0, self._last_pass + MIN_PASS_S - self.monotonic()))
        self._last_pass = self.monotonic()
        services = {_key(doc): doc for doc in self.store.list(ISVC)}
        models: dict[Key, list[dict[str, Any]]] = {}
        for doc in self.store.list(KIND):
            namespace = doc["metadata"].get("namespace") or "default"
            parent = str((doc.get("spec") or {}).get("inferenceService", ""))
            models.setdefault((namespace, parent), []).append(doc)
        wanted: set[Path] = set()
        for key in sorted(set(services) | set(models)):
            isvc_doc = services.get(key)
            isvc = self._load(isvc_doc, InferenceService) if isvc_doc is not None else None
            typed = [self._load(doc, TrainedModel) for doc in models.get(key, [])]
            where, refused = placement(isvc, [m for m in typed if m is not None])
            if where.is_multi_model:
                path = models_config_path(self.root, *key)
                wanted.add(path)
                served = [
                    m
                    for m in typed
                    if m is not None
                    and m.metadata.name in where.placed
                    and m.metadata.name not in refused
                ]
                self._write(path, trained_model.models_json(served))
            loaded = await self._loaded_on(key) if where.is_multi_model and typed else {}
            service_version = isvc_doc["metadata"].get("resourceVersion") if isvc_doc else None
            for doc, model in zip(models.get(key, []), typed, strict=True):
                metadata = doc["metadata"]
                name = metadata["name"]
                inputs = (service_version, where.is_multi_model, name in where.placed,
                          refused.get(name), tuple(loaded.get(name, ())))  # fmt: skip
                uid = metadata.get("uid", name)
                if self._inputs.get(uid) == (metadata.get("resourceVersion"), inputs):
                    continue  # its status was made from these very inputs
                status = self._status(doc, model, isvc, isvc_doc, where, refused, loaded)
                if status != mapping(doc.get("status")):
                    metadata = self.store.update_status(KIND, key[0], name, status)["metadata"]
                self._inputs[uid] = (metadata.get("resourceVersion"), inputs)
        for path in set(self._written) - wanted:
            path.unlink(missing_ok=True)
            del self._written[path]
        if len(self._inputs) > 2 * len(self._parsed) + 1000:
            self._inputs.clear()

    def _status(
        self,
        doc: dict[str, Any],
        model: TrainedModel | None,
        isvc: InferenceService | None,
        isvc_doc: dict[str, Any] | None,
        where: Placement,
        refused: dict[str, str],
        loaded: dict[str, list[str]],
    ) -> dict[str, Any]:
        old = mapping(doc.get("status"))
        generation = doc["metadata"].get("generation")
        if model is None or isvc is None or isvc_doc is None:
            why = "the TrainedModel is not valid" if model is None else "it does not exist"
            conditions = [
                condition("InferenceServiceReady", False, "InferenceServiceNotFound",
                          f"InferenceService {doc['spec'].get('inferenceService')}: {why}"),
                condition("Ready", False, "InferenceServiceNotFound", why),
            ]  # fmt: skip
            keep_transition_times(conditions, old.get("conditions") or [], self.now())
            return {"observedGeneration": generation, "conditions": conditions}
        status = model_status(model, isvc, mapping(isvc_doc.get("status")), where, old, self.now())
        status["observedGeneration"] = generation
        name = model.metadata.name
        problem = refused.get(name)
        for found in status["conditions"]:
            if found["type"] == "Ready" and problem is not None:
                found.update(status="False", reason="FrameworkNotSupported", message=problem)
        status["loadedOn"] = loaded.get(name, [])
        return status

    def _load(self, doc: dict[str, Any], kind: type[Any]) -> Any:
        """The typed resource (parsed again only when the stored document changed); None
        when it does not load."""
        metadata = doc["metadata"]
        key = (metadata.get("uid", ""), metadata.get("resourceVersion", ""))
        if key not in self._parsed:
            body = {k: v for k, v in doc.items() if k != "status"}
            try:
                resource = resources.load(body)
            except Exception as exc:
                logger.warning("%s %s does not load: %s", doc.get("kind"), metadata["name"], exc)
                resource = None
            self._parsed[key] = resource if isinstance(resource, kind) else None
            if len(self._parsed) > 100_000:
                self._parsed.clear()
        return self._parsed[key]

    def _write(self, path: Path, text: str) -> None:
        """Replace the file in one rename, so a replica never reads half of it."""
        if self._written.get(path) == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        self._written[path] = text

    async def _loaded_on(self, key: Key) -> dict[str, list[str]]:
        """model -> the predictor replicas (`host:port`) that have it loaded now."""
        cached = self._index.get(key)
        now = self.monotonic()
        if cached is not None and now - cached[0] < INDEX_POLL_S:
            return cached[1]
        found: dict[str, list[str]] = {}
        for replica in _predictor_replicas(self.routes(), key):
            for entry in await self._repository_index(replica):
                if entry.get("state") == "Ready":
                    found.setdefault(str(entry.get("name")), []).append(replica)
        self._index[key] = (now, found)
        return found

    async def _repository_index(self, replica: str) -> list[dict[str, Any]]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=INDEX_TIMEOUT_S)
        try:
            response = await self._client.post(f"http://{replica}/v2/repository/index")
            response.raise_for_status()
            entries = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.debug("repository index of %s: %s", replica, exc)
            return []
        return [entry for entry in entries if isinstance(entry, dict)]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _predictor_replicas(table: RouteTableDoc, key: Key) -> list[str]:
    for service in table.get("services", []):
        if (service["namespace"], service["name"]) == key:
            predictor: dict[str, Any] = dict(service["components"].get("predictor") or {})
            return [
                str(replica["http"])
                for backend in predictor.get("backends", [])
                for replica in backend.get("replicas", [])
            ]
    return []


def _framework(isvc: InferenceService) -> str | None:
    model = isvc.spec.predictor.model_spec
    if model is None or model.model_format is None:
        return None
    return model.model_format.name


def _key(doc: dict[str, Any]) -> Key:
    return (doc["metadata"].get("namespace") or "default", doc["metadata"]["name"])
