"""`HuggingFaceModel`: the `huggingface` runtime's entry, which becomes an encoder or a generator.

`HuggingFaceModel(name, model_dir, args)` reads the flags and `config.json` and returns a
`HuggingFaceEncoderModel` or a `HuggingFaceGenerativeModel` (the task decides), or a
`VLLMGenerativeModel` (the backend decides: `--backend vllm`, or `auto` with vLLM installed and
the architecture in vLLM's registry), so the server builds it like any runtime. This module
holds what they share: where the model is, which task and backend and dtype, and loading a
tokenizer and weights with transformers (imported only in `load`).
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
        settings = flags.parse(args, keep_unknown=True)
        config = _read_config(_source(settings, model_dir))
        task = _task(settings, config)
        if _backend(settings, config, task) == "vllm":
            from ksrv.runtimes.huggingface.vllm_backend import VLLMGenerativeModel

            return super().__new__(VLLMGenerativeModel)
        if task in tasks.GENERATIVE_TASKS:
            from ksrv.runtimes.huggingface.generative import HuggingFaceGenerativeModel

            return super().__new__(HuggingFaceGenerativeModel)
        from ksrv.runtimes.huggingface.encoder import HuggingFaceEncoderModel

        return super().__new__(HuggingFaceEncoderModel)

    def __init__(
        self, name: str, model_dir: str | Path, args: tuple[str, ...] | list[str] = ()
    ) -> None:
        self.settings = flags.parse(args, keep_unknown=True)
        super().__init__(self.settings.model_name or name)
        self.source = _source(self.settings, model_dir)
        self.root: str | None = self.source  # vLLM's model card `root`
        self.config = _read_config(self.source)
        self.task = _task(self.settings, self.config)
        self.max_length = tasks.max_length(self.config, self.settings.max_model_len)
        self.backend = _backend(self.settings, self.config, self.task)
        if self.settings.engine_args and self.backend != "vllm":
            # Only vLLM's engine takes flags beyond KServe's (and judges them itself).
            raise flags.unknown_arguments(self.settings.engine_args)
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
        self.load_tokenizer(**tokenizer_options)
        try:
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
        logger.info("loaded %s model %s from %s", self.task, self.name, self.source)

    def load_tokenizer(self, **tokenizer_options: Any) -> None:
        """The model's tokenizer, with a pad token (KServe adds one when it has none)."""
        import transformers

        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.source,
                revision=self.settings.tokenizer_revision,
                do_lower_case=not self.settings.disable_lower_case,
                trust_remote_code=self.settings.trust_remote_code,
                **tokenizer_options,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(
                f"{self.source} could not be loaded as a {self.task} model: {exc}"
            ) from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token

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


def _backend(settings: flags.HFSettings, config: dict[str, Any], task: str) -> str:
    """KServe's rule: vLLM when asked for, or (`auto`) when it is installed and supports the
    model's architecture for text generation; transformers otherwise."""
    if settings.backend == "huggingface":
        return "huggingface"
    is_installed = importlib.util.find_spec("vllm") is not None
    if settings.backend == "vllm":
        if not is_installed:
            raise Unsupported(
                "--backend vllm: vLLM is not installed where ksrv serve runs (pip install "
                "'ksrv[vllm]'); use --backend huggingface (or auto)"
            )
        if task != tasks.TEXT_GENERATION:
            raise Unsupported(
                f"--backend vllm: ksrv serves {task} with transformers only; "
                "use --backend huggingface (or auto)"
            )
        return "vllm"
    if not is_installed or task != tasks.TEXT_GENERATION:
        return "huggingface"
    from ksrv.runtimes.huggingface.vllm_backend import supports

    return "vllm" if supports(config.get("architectures") or []) else "huggingface"
