"""KServe huggingfaceserver's command-line flags, parsed into `HFSettings`.

The flags keep KServe's spelling (`--model_id`, `--max_model_len`, ...) so an InferenceService's
`args` mean the same here as in KServe's container. ksrv's engine adds two of vLLM's names for
the continuous-batching budget (`--max_num_batched_tokens`, `--max_num_seqs`) and vLLM's LoRA
flags (`--enable-lora`, `--lora-modules name=path ...` or its JSON form, `--max-lora-rank`,
`--max-loras`, `--max-cpu-loras`). Flags this runtime does not know are an error naming them,
never silently ignored, except with the vLLM backend: there they are vLLM's engine flags
(`engine_args`, parsed by vLLM itself in vllm_backend.py), as in KServe's container.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import NoReturn

from ksrv.errors import InvalidInput

BACKENDS = ("auto", "huggingface", "vllm")
DTYPES = ("auto", "float16", "float32", "bfloat16", "float", "half")
# The container's default model directory (KServe's `--model_dir`): locally the model is
# wherever `--model-dir` put it, so this value means "the downloaded model".
CONTAINER_MODEL_DIR = "/mnt/models"
# The transformers backend's batching budget when the flags do not set it (vLLM has its own).
DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048
DEFAULT_MAX_NUM_SEQS = 64


@dataclass(frozen=True, slots=True)
class LoRAModule:
    """One `--lora-modules` entry: the adapter's served name and where it is (a path or any
    storageUri); `base_model_name` is the model it adapts (vLLM's JSON form), shown as `parent`."""

    name: str
    path: str
    base_model_name: str | None = None


@dataclass(frozen=True, slots=True)
class HFSettings:
    """How to load and serve one Hugging Face model (KServe's flags, snake_case)."""

    model_name: str | None = None
    model_dir: str | None = None
    model_id: str | None = None
    model_revision: str | None = None
    tokenizer_revision: str | None = None
    task: str | None = None
    backend: str = "auto"
    dtype: str = "auto"
    max_model_len: int | None = None
    disable_lower_case: bool = False
    disable_special_tokens: bool = False
    trust_remote_code: bool = False
    tensor_input_names: tuple[str, ...] | None = None
    return_token_type_ids: bool = False
    return_offsets_mapping: bool = False
    return_probabilities: bool = False
    return_raw_logits: bool = False
    disable_log_requests: bool = False
    max_log_len: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    enable_lora: bool = False
    lora_modules: tuple[LoRAModule, ...] = ()
    max_lora_rank: int = 16  # vLLM's default
    max_loras: int = 1
    max_cpu_loras: int | None = None
    engine_args: tuple[str, ...] = ()  # flags left for vLLM (kept only when asked to)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"huggingface runtime: {message}")


def _parser() -> _Parser:
    parser = _Parser(prog="huggingface", add_help=False, allow_abbrev=False)
    add = parser.add_argument
    add("--model_name")
    add("--model_dir")
    add("--model_id")
    add("--model_revision")
    add("--tokenizer_revision")
    add("--task")
    add("--backend", choices=BACKENDS, default="auto")
    add("--dtype", choices=DTYPES, default="auto")
    # KServe keeps --max_length as the older spelling of --max_model_len.
    add("--max_model_len", "--max_length", dest="max_model_len", type=int)
    add("--max_log_len", "--max-log-len", dest="max_log_len", type=int)
    add("--tensor_input_names", type=lambda value: tuple(value.split(",")))
    add("--max_num_batched_tokens", "--max-num-batched-tokens", type=int)
    add("--max_num_seqs", "--max-num-seqs", type=int)
    add("--enable-lora", "--enable_lora", dest="enable_lora", action="store_true")
    add("--lora-modules", "--lora_modules", dest="lora_modules", nargs="+", type=lora_module,
        default=[])  # fmt: skip
    add("--max-lora-rank", "--max_lora_rank", dest="max_lora_rank", type=int, default=16)
    add("--max-loras", "--max_loras", dest="max_loras", type=int, default=1)
    add("--max-cpu-loras", "--max_cpu_loras", dest="max_cpu_loras", type=int)
    for flag in (
        "disable_lower_case", "disable_special_tokens", "trust_remote_code",
        "return_token_type_ids", "return_offsets_mapping", "disable_log_requests",
    ):  # fmt: skip
        add(f"--{flag}", action="store_true")
    outputs = parser.add_mutually_exclusive_group()
    outputs.add_argument("--return_probabilities", action="store_true")
    outputs.add_argument("--return_raw_logits", action="store_true")
    return parser


def lora_module(value: str) -> LoRAModule:
    """`name=path`, or vLLM's JSON `{"name": ..., "path": ..., "base_model_name": ...}`."""
    if value.lstrip().startswith("{"):
        try:
            entry = json.loads(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {value}") from None
        if not isinstance(entry, dict) or set(entry) - {"name", "path", "base_model_name"}:
            raise argparse.ArgumentTypeError(
                f"expected an object with name, path and optionally base_model_name: {value}"
            )
        name, path, base = entry.get("name"), entry.get("path"), entry.get("base_model_name")
    else:
        name, _, path = value.partition("=")
        base = None
    if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
        raise argparse.ArgumentTypeError(f"expected name=path, got {value!r}")
    if base is not None and not isinstance(base, str):
        raise argparse.ArgumentTypeError(f"base_model_name must be a string: {value}")
    return LoRAModule(name, path, base)


def parse(args: list[str] | tuple[str, ...], keep_unknown: bool = False) -> HFSettings:
    """`HFSettings` from KServe-style flags; bad values raise InvalidInput, and so do unknown
    flags unless `keep_unknown` keeps them in `engine_args` (for vLLM to judge)."""
    namespace, unknown = _parser().parse_known_args(list(args))
    if unknown and not keep_unknown:
        raise unknown_arguments(unknown)
    values = vars(namespace)
    values["engine_args"] = tuple(unknown)
    for name in ("max_model_len", "max_num_batched_tokens", "max_num_seqs", "max_lora_rank",
                 "max_loras", "max_cpu_loras"):  # fmt: skip
        if values[name] is not None and values[name] <= 0:
            raise InvalidInput(f"huggingface runtime: --{name} must be positive")
    values["lora_modules"] = tuple(values["lora_modules"])
    _check_lora(values)
    return HFSettings(**values)


def unknown_arguments(unknown: list[str] | tuple[str, ...]) -> InvalidInput:
    return InvalidInput(f"huggingface runtime: unknown argument(s): {' '.join(unknown)}")


def _check_lora(values: dict[str, object]) -> None:
    """vLLM's rules: adapters need `--enable-lora`; names are unique; the CPU cache holds at
    least the batch's adapters."""
    modules = values["lora_modules"]
    assert isinstance(modules, tuple)
    if modules and not values["enable_lora"]:
        raise InvalidInput("huggingface runtime: --lora-modules needs --enable-lora")
    names = [module.name for module in modules]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInput(f"huggingface runtime: --lora-modules names twice: {', '.join(twice)}")
    cpu, batch = values["max_cpu_loras"], values["max_loras"]
    if isinstance(cpu, int) and isinstance(batch, int) and cpu < batch:
        raise InvalidInput("huggingface runtime: --max-cpu-loras must be >= --max-loras")
