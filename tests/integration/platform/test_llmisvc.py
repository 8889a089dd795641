"""An LLMInferenceService on a real `ksrv up`: served by the huggingface runtime through the
gateway, answered by the official openai client.

The tiny Llama (tests/hf_models.py) is the model, given as a file:// uri by a
LLMInferenceServiceConfig preset the service names in `baseRefs`; the service adds the served
name and a LoRA adapter (a local path), which is a model of its own behind the same route.
A service naming a preset nobody applied says so in its status.
"""

from __future__ import annotations

import json
import time

import pytest

from tests import hf_models
from tests.platform_support import LocalKsrv

pytest.importorskip("transformers")
pytest.importorskip("peft")
openai = pytest.importorskip("openai")
pytestmark = pytest.mark.timeout(300)

NAME = "tiny-llm"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    base = hf_models.tiny_llama(root / "base")
    return base, hf_models.tiny_lora(base, root / "sql")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, models):
    base, adapter = models
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-state")).start()
    preset = {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceServiceConfig",
        "metadata": {"name": "tiny-model"},
        "spec": {"model": {"uri": base.as_uri()}, "replicas": 1},
    }
    service = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "LLMInferenceService",
        "metadata": {"name": NAME},
        "spec": {
            "baseRefs": [{"name": "tiny-model"}],
            "model": {
                "uri": base.as_uri(),
                "name": "tiny",
                "lora": {"adapters": [{"name": "sql", "uri": str(adapter)}]},
            },
            "router": {"scheduler": {}, "route": {}, "gateway": {}},
        },
    }
    orphan = {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": {"name": "orphan"},
        "spec": {"baseRefs": [{"name": "gpu-profile"}]},
    }
    try:
        platform.apply([preset, service, orphan])
        yield platform
    finally:
        platform.stop()


def wait_ready(platform: LocalKsrv, name: str = NAME, status: str = "True") -> dict:
    deadline = time.monotonic() + 120
    while True:
        found = json.loads(platform.cli("get", "llmisvc", name, "-o", "json"))
        conditions = {c["type"]: c for c in found.get("status", {}).get("conditions", [])}
        if conditions.get("Ready", {}).get("status") == status:
            return found
        assert time.monotonic() < deadline, json.dumps(found, indent=1)
        time.sleep(0.2)


def test_the_model_and_its_adapter_answer_chat_through_the_gateway(platform):
    service = wait_ready(platform)
    status = service["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["MainWorkloadReady"] == conditions["RouterReady"] == "True"
    assert status["addresses"][0]["url"] == status["url"]
    assert "router.scheduler" in json.dumps(status["conditions"])  # LocalLimitations says why
    llm = openai.OpenAI(
        base_url=f"{platform.gateway}/serving/default/{NAME}/openai/v1", api_key="unused",
        max_retries=0,
    )  # fmt: skip
    assert sorted(m.id for m in llm.models.list().data) == ["sql", "tiny"]
    for model in ("tiny", "sql"):
        answer = llm.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=4,
            temperature=0,
        )  # fmt: skip
        assert answer.model == model and answer.choices[0].message.role == "assistant"
    table = platform.cli("get", "llmisvc")
    assert NAME in table and status["url"] in table


def test_a_service_whose_preset_is_missing_says_which(platform):
    ready = {c["type"]: c for c in wait_ready(platform, "orphan", "False")["status"]["conditions"]}
    assert ready["Ready"]["reason"] == "InvalidSpec"
    assert "no LLMInferenceServiceConfig 'gpu-profile'" in ready["Ready"]["message"]
