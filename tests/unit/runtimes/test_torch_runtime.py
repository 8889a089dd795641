"""`TorchModel` in-process: thread setting, dtype of V1 floats, and load errors."""

from __future__ import annotations

import numpy as np
import pytest

from ksrv.errors import StorageError
from ksrv.runtimes.torch import TorchModel
from tests import runtime_models

torch = pytest.importorskip("torch")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_num_threads_comes_from_the_environment(tmp_path, monkeypatch, restore_threads):
    runtime_models.torchscript_pair(tmp_path)
    monkeypatch.setenv("TORCH_NUM_THREADS", "1")
    TorchModel("m", tmp_path).load()
    assert torch.get_num_threads() == 1


def test_v1_floats_take_the_dtype_of_the_modules_parameters(tmp_path):
    module = torch.nn.Linear(2, 1).double()
    with runtime_models.torchscript_allowed():
        torch.jit.save(torch.jit.script(module), str(tmp_path / "model.pt"))
    model = TorchModel("m", tmp_path)
    model.load()
    rows = [[0.1, 0.2], [0.3, 0.4]]
    with torch.no_grad():
        want = module(torch.tensor(rows, dtype=torch.float64)).numpy()
    assert model.predict({"instances": rows}) == {"predictions": want.tolist()}
    assert np.asarray(want).dtype == np.float64


def test_a_pickled_state_dict_is_a_storage_error_that_says_torchscript(tmp_path):
    torch.save({"weight": torch.zeros(2)}, str(tmp_path / "model.pt"))
    with pytest.raises(StorageError) as caught:
        TorchModel("m", tmp_path).load()
    message = str(caught.value)
    assert message.startswith(f"model.pt is not a valid TorchScript file (in {tmp_path}): ")
    assert message.endswith("(save the model with torch.jit.save)")
    assert message.count(str(tmp_path)) == 1
