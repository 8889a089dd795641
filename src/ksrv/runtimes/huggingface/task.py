"""Which ML task a Hugging Face model serves, and its longest sequence: KServe's rules, as data.

The task comes from `--task`, else from the suffix of `config.architectures[0]`; the length
from `--max_model_len`, else the smallest of the config's position limits. Pure functions of a
config dict, so tables test them without transformers.
"""

from __future__ import annotations

from typing import Any

from ksrv.errors import InvalidInput

SEQUENCE_CLASSIFICATION = "sequence_classification"
TOKEN_CLASSIFICATION = "token_classification"
FILL_MASK = "fill_mask"
TEXT_EMBEDDING = "text_embedding"
TEXT_GENERATION = "text_generation"
TEXT2TEXT_GENERATION = "text2text_generation"

ENCODER_TASKS = (SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION, FILL_MASK, TEXT_EMBEDDING)
GENERATIVE_TASKS = (TEXT_GENERATION, TEXT2TEXT_GENERATION)
SUPPORTED_TASKS = ENCODER_TASKS + GENERATIVE_TASKS
# KServe names these tasks too, but its transformers backend does not serve them.
KNOWN_UNSUPPORTED = (
    "question_answering", "table_question_answering", "multiple_choice", "time_series_forecast",
)  # fmt: skip

# Architecture-name suffix -> task, in KServe's order (the first match wins).
_ARCHITECTURE_SUFFIXES = (
    ("TapasForQuestionAnswering", "table_question_answering"),
    ("ForQuestionAnswering", "question_answering"),
    ("ForTokenClassification", TOKEN_CLASSIFICATION),
    ("ForSequenceClassification", SEQUENCE_CLASSIFICATION),
    ("ForMultipleChoice", "multiple_choice"),
    ("ForMaskedLM", FILL_MASK),
    ("ForCausalLM", TEXT_GENERATION),
    ("ForConditionalGeneration", TEXT2TEXT_GENERATION),
    ("MTModel", TEXT2TEXT_GENERATION),
    ("EncoderDecoderModel", TEXT2TEXT_GENERATION),
    ("ForPrediction", "time_series_forecast"),
)
# Config keys that bound the sequence length (vLLM's and KServe's list); the smallest wins.
_LENGTH_KEYS = (
    "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
    "max_sequence_length", "max_seq_length", "seq_len",
)  # fmt: skip
DEFAULT_MAX_LEN = 2048


def _supported_list() -> str:
    return ", ".join(SUPPORTED_TASKS)


def checked_task(name: str) -> str:
    """`--task` as given, if this runtime serves it."""
    task = name.strip().lower()
    if task not in SUPPORTED_TASKS:
        raise InvalidInput(
            f"Unsupported task: {name}. Currently supported tasks are: {_supported_list()}"
        )
    return task


def infer_task(architectures: list[str] | None) -> str:
    """The task of a model whose config lists `architectures` (KServe's suffix rule)."""
    if not architectures:
        raise InvalidInput("the model's config.json names no architectures: set --task")
    architecture = architectures[0]
    for suffix, task in _ARCHITECTURE_SUFFIXES:
        if architecture.endswith(suffix):
            if task not in SUPPORTED_TASKS:
                raise InvalidInput(
                    f"Task {task} is not supported. Currently supported tasks are: "
                    f"{_supported_list()}"
                )
            return task
    raise InvalidInput(
        f"Task couldn't be inferred from {architecture}. Please manually set `task` option."
    )


def max_length(config: dict[str, Any], requested: int | None) -> int:
    """The longest sequence served: `requested` if within the model's limit, else the limit."""
    limits = [int(v) for k in _LENGTH_KEYS if isinstance(v := config.get(k), int | float)]
    derived = min(limits) if limits else None
    if requested is None:
        return derived if derived is not None else DEFAULT_MAX_LEN
    if derived is not None and requested > derived:
        raise InvalidInput(
            f"--max_model_len {requested} is greater than the model's maximum length {derived} "
            "(from its config.json)"
        )
    return requested
