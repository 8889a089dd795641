"""ModelRepository.load: a failed load is 503 whose message says why, once."""

from __future__ import annotations

import pytest

from ksrv.errors import ModelNotReady, StorageError
from ksrv.model.base import Model
from ksrv.model.repository import ModelRepository


class Refusing(Model):
    """Its load raises what it is given."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name)
        self.error = error

    def load(self) -> bool:
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ModelNotReady("m", "weights are still downloading"),
         "Model with name m is not ready. weights are still downloading"),
        (StorageError("model.joblib is not a valid joblib/pickle file"),
         "Model with name m is not ready. Loading failed: model.joblib is not a valid "
         "joblib/pickle file"),
    ],
)  # fmt: skip
def test_a_failed_load_says_not_ready_once_with_the_reason(error, message):
    repository = ModelRepository(loader=lambda name: Refusing(name, error))
    with pytest.raises(ModelNotReady) as caught:
        repository.load("m")
    assert str(caught.value) == message
