"""A `modelFormat: huggingface` InferenceService on a real `ksrv up`, answered via the gateway.

KServe's own sample (docs/samples/storage/hf/hf_isvc.yaml), its storageUri pointed at a tiny
BERT classifier built here: its `args` (`--model_name=llama2`, `--model_dir=/mnt/models`,
`--backend=huggingface`) reach the runtime as in KServe's container, so the model answers as
`llama2`. The same service naming KServe's `kserve-huggingfaceserver` runtime is served by
ksrv's runtime for the format.
"""

from __future__ import annotations

import copy

import pytest

from tests import hf_models
from tests.platform_support import LocalKsrv, example, with_storage

pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(300)

TEXTS = ["hello world", "the lazy dog"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-state")).start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return hf_models.tiny_bert(tmp_path_factory.mktemp("bert"), "BertForSequenceClassification")


def expected(bert_dir):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(bert_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(bert_dir).eval()
    with torch.no_grad():
        return (
            model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
        )


@pytest.mark.parametrize("runtime", [None, "kserve-huggingfaceserver"])
def test_kserves_hf_sample_predicts_through_the_gateway(platform, bert_dir, runtime):
    document = copy.deepcopy(example("kserve__docs__samples__storage__hf__hf_isvc.yaml")[0])
    document = with_storage(document, str(bert_dir))
    name = "hf-default" if runtime is None else "hf-kserve-runtime"
    document["metadata"]["name"] = name
    if runtime is not None:
        document["spec"]["predictor"]["model"]["runtime"] = runtime
    platform.apply([document])
    platform.wait_ready(name)
    response = platform.http.post(
        f"{platform.gateway}/serving/default/{name}/v1/models/llama2:predict",
        json={"instances": TEXTS},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(bert_dir)}
