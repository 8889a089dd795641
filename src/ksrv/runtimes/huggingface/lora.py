"""LoRA adapters on a transformers causal LM with peft: load them, pick one per generation.

Adapters (`--lora-modules`) are fetched like models (a local path, or any storageUri through the
server's `Fetch`) and loaded into one peft model that shares the base weights. No adapter is
active, so transformers' shared continuous batch (engine.py) keeps computing the base model.
A generation for an adapter runs on `generate` in its own thread, and a forward pre-hook on
every LoRA layer hands peft that thread's adapter as its per-row `adapter_names` (peft's
mixed-batch inference); other threads see no adapter. Adapters are not batched: transformers'
continuous batch lays every sequence's tokens along one row, while peft picks adapters per row.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ksrv.errors import InvalidInput, StorageError
from ksrv.runtimes.huggingface.settings import HFSettings, LoRAModule

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
# Turns a storageUri into a local directory (the server passes ksrv.storage's download).
Fetch = Callable[[str], Path]


@dataclass(frozen=True, slots=True)
class Adapter:
    """A loaded adapter: its served name, where it came from (vLLM's `root`), and its base."""

    name: str
    root: str
    parent: str


def adapter_dir(module: LoRAModule, fetch: Fetch | None) -> Path:
    """The adapter's local directory: a path as given, a URI through `fetch`."""
    if "://" in module.path:
        if fetch is None:
            raise StorageError(f"LoRA adapter {module.name}: cannot fetch {module.path} here")
        directory = Path(fetch(module.path))
    else:
        directory = Path(module.path)
    if not (directory / ADAPTER_CONFIG).is_file():
        raise StorageError(
            f"LoRA adapter {module.name}: {module.path} has no {ADAPTER_CONFIG} "
            "(not a peft adapter)"
        )
    return directory


def check_rank(module: LoRAModule, directory: Path, max_rank: int) -> None:
    """vLLM refuses an adapter whose rank exceeds `--max-lora-rank`; so does ksrv."""
    try:
        config = json.loads((directory / ADAPTER_CONFIG).read_text())
    except ValueError as exc:
        raise StorageError(f"LoRA adapter {module.name}: bad {ADAPTER_CONFIG}: {exc}") from None
    rank = config.get("r") if isinstance(config, dict) else None
    if isinstance(rank, int) and rank > max_rank:
        raise InvalidInput(
            f"LoRA adapter {module.name} has rank {rank}, more than --max-lora-rank {max_rank}"
        )
    if isinstance(config, dict) and config.get("use_dora"):
        raise InvalidInput(f"LoRA adapter {module.name}: DoRA adapters are not supported")


class AdapterSet:
    """The adapters loaded on one model, and which one the current thread generates with."""

    def __init__(self, adapters: dict[str, Adapter]) -> None:
        self.adapters = adapters
        self._local = threading.local()

    @classmethod
    def load(
        cls, model: Any, settings: HFSettings, base_name: str, fetch: Fetch | None
    ) -> AdapterSet:
        """Load every `--lora-modules` adapter into `model` (in place: its linear layers become
        peft's LoRA layers), none of them active."""
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        adapters: dict[str, Adapter] = {}
        peft_model: Any = None
        for module in settings.lora_modules:
            if module.name == base_name:
                raise InvalidInput(f"LoRA adapter {module.name} has the base model's name")
            directory = adapter_dir(module, fetch)
            check_rank(module, directory, settings.max_lora_rank)
            try:
                peft_model = _attach(model, peft_model, module.name, directory)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise StorageError(
                    f"LoRA adapter {module.name} ({module.path}) does not fit the model: {exc}"
                ) from None
            adapters[module.name] = Adapter(
                module.name, module.path, module.base_model_name or base_name
            )
            logger.info("loaded LoRA adapter %s from %s", module.name, module.path)
        chosen = cls(adapters)
        if peft_model is None:
            return chosen
        peft_model.eval()
        wrapped = (BaseTunerLayer, AuxiliaryTrainingWrapper)  # LoRA layers, modules_to_save
        layer: Any
        for layer in [m for m in model.modules() if isinstance(m, wrapped)]:
            # None active: the layer computes the base model unless a thread names an adapter.
            layer.set_adapter([])
            layer.register_forward_pre_hook(chosen._inject, with_kwargs=True)
        return chosen

    @contextmanager
    def active(self, name: str | None) -> Iterator[None]:
        """Forward passes made by this thread inside the block use adapter `name`."""
        previous = getattr(self._local, "name", None)
        self._local.name = name
        try:
            yield
        finally:
            self._local.name = previous

    def _inject(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        name = getattr(self._local, "name", None)
        if name is None or not args:
            return None
        return args, {**kwargs, "adapter_names": [name] * len(args[0])}


def _attach(model: Any, peft_model: Any, name: str, directory: Path) -> Any:
    """`model` as a peft model with the adapter in `directory` added as `name`."""
    from peft import PeftModel

    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5 a deprecated question (gradient checkpointing).
        warnings.simplefilter("ignore", FutureWarning)
        if peft_model is None:
            return PeftModel.from_pretrained(model, str(directory), adapter_name=name)
        peft_model.load_adapter(str(directory), adapter_name=name)
        return peft_model
