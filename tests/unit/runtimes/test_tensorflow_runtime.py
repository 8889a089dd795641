"""`TensorFlowModel` in-process: TF Serving's columnar and b64 forms, versions, signatures."""

from __future__ import annotations

import base64

import pytest

from ksrv.errors import InvalidInput, ModelNotFound, StorageError
from ksrv.runtimes.tensorflow import TensorFlowModel, saved_model_dir
from tests import runtime_models

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    model = TensorFlowModel("pair", runtime_models.tensorflow_pair(tmp_path_factory.mktemp("p")))
    model.load()
    return model


def test_columnar_inputs_by_name_answer_outputs_by_name(pair):
    body = pair.predict({"inputs": {"left": [[1.0, 2.0]], "right": [[3, -10]]}})
    assert body == {"outputs": {"sign": ["neg"], "total": [[4.0, -8.0]]}}


def test_an_instance_missing_an_input_is_invalid_input_naming_it(pair):
    with pytest.raises(InvalidInput, match=r"needs input.* right"):
        pair.predict({"instances": [{"left": [1.0, 2.0]}]})


def test_an_unknown_signature_is_invalid_input_listing_the_known_ones(pair):
    with pytest.raises(InvalidInput, match="serving_default"):
        pair.predict({"signature_name": "other", "instances": [{"left": [1.0, 2.0]}]})


def test_b64_values_feed_string_inputs(tmp_path):
    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"length": tf.strings.length(text)}

    module = Echo()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    model = TensorFlowModel("echo", tmp_path)
    model.load()
    encoded = base64.b64encode(b"\x00\xffbinary").decode()
    assert model.predict({"instances": [{"b64": encoded}, "abc"]}) == {"predictions": [8, 3]}


def test_the_highest_numbered_version_is_served(tmp_path):
    for version in ("2", "10"):
        runtime_models.tensorflow_linear(tmp_path, version)
    (tmp_path / "11").mkdir()  # a version still being written: no saved_model.pb yet
    assert saved_model_dir(tmp_path) == tmp_path / "10"
    assert TensorFlowModel.has_model_file(tmp_path)


def test_a_directory_without_a_saved_model_is_model_not_found(tmp_path):
    assert not TensorFlowModel.has_model_file(tmp_path)
    with pytest.raises(ModelNotFound, match=r"saved_model\.pb"):
        TensorFlowModel("m", tmp_path).load()


def test_a_missing_signature_is_a_storage_error(tmp_path):
    runtime_models.tensorflow_linear(tmp_path, version=None)
    with pytest.raises(StorageError, match="no signature 'predict'"):
        TensorFlowModel("m", tmp_path, signature_name="predict").load()


def test_an_unreadable_saved_model_is_a_storage_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"this is not a model")
    with pytest.raises(StorageError) as caught:
        TensorFlowModel("m", tmp_path).load()
    message = str(caught.value)
    assert message.startswith(f"{tmp_path} is not a valid TensorFlow SavedModel: ")
    assert message.count(str(tmp_path)) == 1 and "saved_model.pb" in message
