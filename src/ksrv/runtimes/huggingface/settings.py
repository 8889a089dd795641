"""KServe huggingfaceserver's command-line flags, parsed into `HFSettings`.

The flags keep KServe's spelling (`--model_id`, `--max_model_len`, ...) so an InferenceService's
`args` mean the same here as in KServe's container. ksrv's engine adds two of vLLM's names for
the continuous-batching budget (`--max_num_batched_tokens`, `--max_num_seqs`). Flags this
runtime does not know are an error naming them, never silently ignored.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import NoReturn

from ksrv.errors import InvalidInput

BACKENDS = ("auto", "huggingface", "vllm")
DTYPES = ("auto", "float16", "float32", "bfloat16", "float", "half")
# The container's default model directory (KServe's `--model_dir`): locally the model is
# wherever `--model-dir` put it, so this value means "the downloaded model".
CONTAINER_MODEL_DIR = "/mnt/models"


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
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 64


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
    add("--max_num_batched_tokens", "--max-num-batched-tokens", type=int, default=2048)
    add("--max_num_seqs", "--max-num-seqs", type=int, default=64)
    for flag in (
        "disable_lower_case", "disable_special_tokens", "trust_remote_code",
        "return_token_type_ids", "return_offsets_mapping", "disable_log_requests",
    ):  # fmt: skip
        add(f"--{flag}", action="store_true")
    outputs = parser.add_mutually_exclusive_group()
    outputs.add_argument("--return_probabilities", action="store_true")
    outputs.add_argument("--return_raw_logits", action="store_true")
    return parser


def parse(args: list[str] | tuple[str, ...]) -> HFSettings:
    """`HFSettings` from KServe-style flags; unknown flags or bad values raise InvalidInput."""
    namespace, unknown = _parser().parse_known_args(list(args))
    if unknown:
        raise InvalidInput(f"huggingface runtime: unknown argument(s): {' '.join(unknown)}")
    values = vars(namespace)
    for name in ("max_model_len", "max_num_batched_tokens", "max_num_seqs"):
        if values[name] is not None and values[name] <= 0:
            raise InvalidInput(f"huggingface runtime: --{name} must be positive")
    return HFSettings(**values)
