"""`HuggingFaceModel`: the `huggingface` runtime's entry, which becomes an encoder or a generator.

`HuggingFaceModel(name, model_dir, args)` reads the flags and `config.json` and returns a
`HuggingFaceEncoderModel` or a `HuggingFaceGenerativeModel` (the task decides), so the server
builds it like any runtime. This module holds what both share: where the model is, which task
and dtype, and loading a tokenizer and weights with transformers (imported only in `load`).
Intra-op threads come from `$TORCH_NUM_THREADS`, else torch's default.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ksrv.errors import InvalidInput, StorageError, Unsupported
from ksrv.model.base import Model
from ksrv.runtimes import threads
from ksrv.runtimes.huggingface import settings as flags
from ksrv.runtimes.huggingface import task as tasks

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
_DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "half": "float16",
           "bfloat16": "bfloat16"}  # fmt: skip


class HuggingFaceModel(Model):
    """A transformers model in a directory (or a hub id given by `--model_id`)."""

    takes_runtime_args = True
    # How to fetch a storageUri that a flag names (LoRA adapters); the server sets it.
    fetch_uri: Callable[[str], Path] | None = None

    def __new__(
        cls, name: str, model_dir: str | Path, args: tuple[str, ...] | list[str] = ()
    ) -> HuggingFaceModel:
        if cls is not HuggingFaceModel:
            return super().__new__(cls)
        settings = flags.parse(args)
        task = _task(settings, _read_config(_source(settings, model_dir)))
        if task in tasks.GENERATIVE_TASKS:
            from ksrv.runtimes.huggingface.generative import HuggingFaceGenerativeModel

            return super().__new__(HuggingFaceGenerativeModel)
        from ksrv.runtimes.huggingface.encoder import HuggingFaceEncoderModel

        return super().__new__(HuggingFaceEncoderModel)

    def __init__(
        self, name: str, model_dir: str | Path, args: tuple[str, ...] | list[str] = ()
    ) -> None:
        self.settings = flags.parse(args)
        super().__init__(self.settings.model_name or name)
        self.source = _source(self.settings, model_dir)
        self.root: str | None = self.source  # vLLM's model card `root`
        self.config = _read_config(self.source)
        self.task = _task(self.settings, self.config)
        self.max_length = tasks.max_length(self.config, self.settings.max_model_len)
        _check_backend(self.settings.backend)
        self.tokenizer: Any = None
        self.model: Any = None

    @classmethod
    def has_model_file(cls, model_dir: str | Path) -> bool:
        return (Path(model_dir) / CONFIG_FILE).is_file()

    def load_pretrained(self, auto_class: str, **tokenizer_options: Any) -> None:
        """The tokenizer and weights, in the dtype `--dtype` asks for, in inference mode."""
        import torch
        import transformers

        count = threads.thread_count(None, "TORCH_NUM_THREADS", None)
        if count:
            # Process-wide, as in the pytorch runtime: on a busy machine one thread per
            # replica beats intra-op threads that spin waiting for each other.
            torch.set_num_threads(count)
        options: dict[str, Any] = {"trust_remote_code": self.settings.trust_remote_code}
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.source,
                revision=self.settings.tokenizer_revision,
                do_lower_case=not self.settings.disable_lower_case,
                **options,
                **tokenizer_options,
            )
            model_class = getattr(transformers, auto_class)
            self.model = model_class.from_pretrained(
                self.source,
                revision=self.settings.model_revision,
                dtype=getattr(torch, self._dtype_name()),
                attn_implementation="sdpa",
                **options,
            ).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(
                f"{self.source} could not be loaded as a {self.task} model: {exc}"
            ) from None
        if self.tokenizer.pad_token is None:
            # KServe adds a pad token when the tokenizer has none; batches need one.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        logger.info("loaded %s model %s from %s", self.task, self.name, self.source)

    def _dtype_name(self) -> str:
        """`--dtype auto` is the config's dtype, else float32 (this runtime runs on the CPU)."""
        if self.settings.dtype != "auto":
            return _DTYPES[self.settings.dtype]
        configured = self.config.get("dtype") or self.config.get("torch_dtype")
        return str(configured) if configured in _DTYPES.values() else "float32"


def _source(settings: flags.HFSettings, model_dir: str | Path) -> str:
    """Where the model is: `--model_dir` (unless the container default), `--model_id`, or the
    directory the server was given."""
    if settings.model_dir and settings.model_dir != flags.CONTAINER_MODEL_DIR:
        return settings.model_dir
    if settings.model_id and not HuggingFaceModel.has_model_file(model_dir):
        return settings.model_id
    return str(model_dir)


def _read_config(source: str) -> dict[str, Any]:
    path = Path(source) / CONFIG_FILE
    if not path.is_file():
        if Path(source).exists():
            raise StorageError(f"{source} has no {CONFIG_FILE}: not a Hugging Face model")
        from transformers import AutoConfig  # a hub id: transformers fetches it

        return dict(AutoConfig.from_pretrained(source).to_dict())
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise StorageError(f"{CONFIG_FILE} (in {source}) is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise StorageError(f"{CONFIG_FILE} (in {source}) is not a JSON object")
    return config


def _task(settings: flags.HFSettings, config: dict[str, Any]) -> str:
    if settings.task:
        return tasks.checked_task(settings.task)
    architectures = config.get("architectures")
    if architectures is not None and not isinstance(architectures, list):
        raise InvalidInput(f"{CONFIG_FILE}: architectures must be a list")
    return tasks.infer_task(architectures)


def _check_backend(backend: str) -> None:
    if backend != "vllm":
        return  # auto serves with transformers while ksrv has no vLLM backend
    if importlib.util.find_spec("vllm") is None:
        raise Unsupported(
            "--backend vllm: vLLM is not installed where ksrv serve runs; "
            "use --backend huggingface (or auto)"
        )
    raise Unsupported("--backend vllm: ksrv's vLLM backend is not available yet; use auto")
