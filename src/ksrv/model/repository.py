"""Loaded models by name, and the repository extension's load / unload.

A `ModelLoader` builds a model for a name (a runtime reading `{model_dir}/{name}`); without
one, `load` can only re-load models that are already registered.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ksrv.errors import KsrvError, ModelNotFound, ModelNotReady
from ksrv.model.base import Model

logger = logging.getLogger(__name__)


class ModelLoader(Protocol):
    """Builds (but does not load) the model to serve under `name`, or None if unknown."""

    def __call__(self, name: str) -> Model | None: ...


class ModelRepository:
    """A name -> model table with KServe's repository semantics."""

    def __init__(self, loader: ModelLoader | None = None) -> None:
        self._models: dict[str, Model] = {}
        self._loader = loader

    def update(self, model: Model, name: str | None = None) -> None:
        self._models[name or model.name] = model

    def get_model(self, name: str) -> Model | None:
        return self._models.get(name)

    def get_models(self) -> dict[str, Model]:
        return dict(self._models)

    def require(self, name: str) -> Model:
        """The model registered as `name`, or `ModelNotFound`."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(name)
        return model

    async def is_model_ready(self, name: str) -> bool:
        model = self._models.get(name)
        return model is not None and await model.healthy()

    def load(self, name: str) -> Model:
        """Load (or reload) `name`; any failure leaves it not ready and raises 503."""
        model = self._models.get(name)
        if model is None and self._loader is not None:
            try:
                model = self._loader(name)
            except KsrvError:
                raise
            except Exception as exc:
                logger.exception("building model failed", extra={"model": name})
                raise ModelNotReady(name, f"Loading failed: {exc}") from exc
        if model is None:
            raise ModelNotFound(name)
        try:
            result = model.load()
        except Exception as exc:
            logger.exception("model load failed", extra={"model": name})
            model.ready = False
            if isinstance(exc, ModelNotReady) and exc.model_name == name:
                raise  # wrapped, it would say "Model … is not ready." twice
            raise ModelNotReady(name, f"Loading failed: {exc}") from exc
        if result is True:
            model.ready = True
        if not model.ready:
            raise ModelNotReady(name, "load() did not make it ready")
        self._models[name] = model
        return model

    def unload(self, name: str) -> None:
        model = self._models.pop(name, None)
        if model is None:
            raise ModelNotFound(name)
        model.stop()
