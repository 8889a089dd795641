"""vLLM's LoRA flags on the huggingface runtime: both spellings, `name=path` and the JSON form,
and the mistakes vLLM refuses (adapters without --enable-lora, a name twice)."""

from __future__ import annotations

import pytest

from ksrv.errors import InvalidInput
from ksrv.runtimes.huggingface import settings as flags


def test_lora_modules_take_name_equals_path_and_vllms_json_form():
    parsed = flags.parse(["--enable-lora", "--lora-modules", "sql=/adapters/sql",
                          '{"name": "chat", "path": "s3://b/chat", "base_model_name": "m"}',
                          "--max-lora-rank", "64", "--max_loras", "2"])  # fmt: skip
    assert parsed.enable_lora and (parsed.max_lora_rank, parsed.max_loras) == (64, 2)
    assert parsed.lora_modules == (
        flags.LoRAModule("sql", "/adapters/sql"),
        flags.LoRAModule("chat", "s3://b/chat", "m"),
    )
    assert flags.parse([]).lora_modules == () and flags.parse([]).max_lora_rank == 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lora-modules", "a=/x"], "needs --enable-lora"),
        (["--enable-lora", "--lora-modules", "a=/x", "a=/y"], "names twice: a"),
        (["--enable-lora", "--lora-modules", "just-a-name"], "expected name=path"),
        (["--enable-lora", "--lora-modules", '{"name": "a"'], "not valid JSON"),
        (
            ["--enable-lora", "--lora-modules", '{"name": "a", "path": "/x", "rank": 4}'],
            "expected an object",
        ),
        (["--max-lora-rank", "0"], "must be positive"),
        (["--max-loras", "4", "--max-cpu-loras", "2"], "--max-cpu-loras must be >="),
    ],
)
def test_bad_lora_flags_name_what_is_wrong(args, message):
    with pytest.raises(InvalidInput, match=message):
        flags.parse(args)
