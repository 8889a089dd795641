"""`ksrv serve --model-format huggingface`: tiny transformers models over V1 and V2 REST.

KServe's flags come after `--`. A BERT classifier answers a class per text (V1 `instances` are
strings, V2 a BYTES input), a token classifier a class per token, and the tiny Llama one greedy
completion per instance, equal to what transformers generates from the same files.
"""

from __future__ import annotations

import httpx
import pytest

from tests import hf_models
from tests.conftest import serve

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return hf_models.tiny_bert(tmp_path_factory.mktemp("bert"), "BertForSequenceClassification")


@pytest.fixture(scope="module")
def bert_server(bert_dir):
    server = serve(["--model-format", "huggingface", "--model-dir", str(bert_dir),
                    "--model-name", "bert"], )  # fmt: skip
    yield server
    server.stop()


def expected_classes(bert_dir, texts):
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(bert_dir).eval()
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return logits.argmax(-1).tolist()


def test_v1_instances_are_texts_answered_with_a_class_each(bert_server, bert_dir):
    texts = ["hello world", "the lazy dog jumps"]
    response = httpx.post(f"{bert_server.url}/v1/models/bert:predict", json={"instances": texts})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected_classes(bert_dir, texts)}


def test_v2_takes_the_texts_as_a_bytes_input(bert_server, bert_dir):
    texts = ["hello world", "serving models"]
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    response = httpx.post(f"{bert_server.url}/v2/models/bert/infer", json=body)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["name"] == "output-0" and output["shape"] == [2]
    assert output["data"] == expected_classes(bert_dir, texts)


def test_non_text_instances_are_a_400(bert_server):
    response = httpx.post(f"{bert_server.url}/v1/models/bert:predict", json={"instances": [[1, 2]]})
    assert response.status_code == 400
    assert "strings" in response.json()["error"]


def test_token_classification_with_probabilities_from_the_flags(tmp_path):
    directory = hf_models.tiny_bert(tmp_path / "ner", "BertForTokenClassification")
    server = serve(["--model-format", "huggingface", "--model-dir", str(directory),
                    "--model-name", "ner", "--", "--return_probabilities"])  # fmt: skip
    try:
        response = httpx.post(f"{server.url}/v1/models/ner:predict", json={"instances": ["hello"]})
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    [tokens] = response.json()["predictions"]
    # [CLS] hello [SEP]: one {class: probability} per token, three classes each
    assert len(tokens) == 3
    assert all(sorted(token) == ["0", "1", "2"] for token in tokens)
    assert all(abs(sum(token.values()) - 1) < 1e-3 for token in tokens)


def test_a_generative_model_completes_each_instance_greedily(tmp_path):
    directory = hf_models.tiny_llama(tmp_path / "llama")
    server = serve(["--model-format", "huggingface", "--model-dir", str(directory),
                    "--model-name", "llama", "--", "--max_model_len", "128"])  # fmt: skip
    try:
        body = {"instances": ["the quick brown"], "parameters": {"max_new_tokens": 6}}
        response = httpx.post(f"{server.url}/v1/models/llama:predict", json=body, timeout=30)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    ids = tokenizer("the quick brown", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        output = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=3)
    want = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
    assert response.json() == {"predictions": [want]}


def test_an_unknown_runtime_flag_stops_the_server_with_its_name(tmp_path, bert_dir):
    import subprocess

    from tests.conftest import KSRV

    result = subprocess.run(
        [*KSRV, "serve", "--model-format", "huggingface", "--model-dir", str(bert_dir),
         "--http-port", "0", "--grpc-port", "0", "--", "--no_such_flag"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown argument(s): --no_such_flag" in result.stderr
