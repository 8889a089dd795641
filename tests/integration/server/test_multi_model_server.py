"""A multi-model server's repository in process: real sklearn models named by a models.json,
loaded on demand under a budget (no sockets: the data plane is called directly)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ksrv.errors import ModelNotFound, ModelNotReady
from ksrv.server.dataplane import DataPlane
from ksrv.server.multi_model import TrainedModelRepository, multi_model_repository
from tests import models

ROWS = {"instances": [[6.8, 2.8, 4.8, 1.4]]}


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


def write(path: Path, entries: dict[str, tuple[Path, str]]) -> None:
    document = [
        {"modelName": name, "modelSpec": {"storageUri": str(uri), "framework": "sklearn",
                                          "memory": memory}}
        for name, (uri, memory) in entries.items()
    ]  # fmt: skip
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(path)


def server(tmp_path: Path, entries: dict[str, tuple[Path, str]], budget: int | None):
    config = tmp_path / "models.json"
    write(config, entries)
    repository = multi_model_repository(config, budget)
    return config, repository, DataPlane(repository)


async def predict(dataplane: DataPlane, name: str) -> object:
    return await dataplane.infer(name, ROWS, {})


def test_concurrent_first_requests_wait_for_one_load(tmp_path, iris):
    _, repository, dataplane = server(tmp_path, {"a": (iris, "1Mi")}, None)

    async def scenario() -> list[object]:
        return await asyncio.gather(*(predict(dataplane, "a") for _ in range(8)))

    assert asyncio.run(scenario()) == [{"predictions": [1]}] * 8
    assert repository.models.loads == 1


def test_the_least_recently_used_model_is_unloaded_to_make_room(tmp_path, iris):
    entries = {name: (iris, "1Mi") for name in "abc"}
    _, repository, dataplane = server(tmp_path, entries, 2 * 2**20)

    async def scenario() -> list[str]:
        await predict(dataplane, "a")
        await predict(dataplane, "b")
        await predict(dataplane, "a")  # b is now the least recently used
        await predict(dataplane, "c")
        return repository.models.budget.names()

    assert asyncio.run(scenario()) == ["a", "c"]
    states = {entry["name"]: entry["state"] for entry in asyncio.run(dataplane.repository_index())}
    assert states == {"a": "Ready", "b": "Unavailable", "c": "Ready"}
    assert repository.models.loads == 3


def test_a_model_in_use_finishes_before_it_is_stopped(tmp_path, iris):
    _, repository, _ = server(tmp_path, {"a": (iris, "1Mi"), "b": (iris, "1Mi")}, 2**20)

    async def scenario() -> tuple[bool, bool]:
        held = await repository.models.acquire("a")
        released = await repository.models.acquire("b")  # unloads a, which is in use
        repository.models.release(released)
        still_ready = held.model.ready
        repository.models.release(held)
        return still_ready, held.model.ready

    assert asyncio.run(scenario()) == (True, False)


def test_a_model_larger_than_the_budget_is_refused_with_memory_resource_available(tmp_path, iris):
    _, repository, dataplane = server(tmp_path, {"huge": (iris, "1Gi")}, 2**20)
    with pytest.raises(ModelNotReady, match="MemoryResourceAvailable: False"):
        asyncio.run(predict(dataplane, "huge"))
    assert repository.models.loads == 1 and repository.models.budget.names() == []


def test_a_model_added_to_models_json_is_served_and_a_removed_one_is_not_found(tmp_path, iris):
    config, repository, dataplane = server(tmp_path, {}, None)
    write(config, {"late": (iris, "1Mi")})
    assert asyncio.run(predict(dataplane, "late")) == {"predictions": [1]}
    write(config, {})
    repository.models.refresh()
    with pytest.raises(ModelNotFound):
        asyncio.run(predict(dataplane, "late"))
    assert isinstance(repository, TrainedModelRepository)


def test_a_new_storage_uri_rolls_while_the_old_version_serves(tmp_path, iris, tmp_path_factory):
    newer = models.sklearn_iris(tmp_path_factory.mktemp("iris-v2"))
    config, repository, dataplane = server(tmp_path, {"a": (iris, "1Mi")}, None)
    trained = repository.models

    async def scenario() -> list[str]:
        await predict(dataplane, "a")
        held = await trained.acquire("a")
        write(config, {"a": (newer, "1Mi")})
        trained.refresh()
        seen = []
        while trained._loaded["a"].entry.storage_uri != str(newer):
            await predict(dataplane, "a")  # answered by the old version meanwhile
            seen.append(trained._loaded["a"].entry.storage_uri)
            await asyncio.sleep(0.01)
        assert held.model.ready  # still in use: stopped only when released
        trained.release(held)
        assert not held.model.ready
        await predict(dataplane, "a")
        return seen

    assert set(asyncio.run(scenario())) <= {str(iris)}


def test_the_repository_extensions_unload_frees_memory_and_the_model_loads_again(tmp_path, iris):
    _, repository, dataplane = server(tmp_path, {"a": (iris, "1Mi")}, None)

    async def scenario() -> list[str]:
        await predict(dataplane, "a")
        await dataplane.unload("a")
        states = [entry["state"] for entry in await dataplane.repository_index()]
        await predict(dataplane, "a")
        return states

    assert asyncio.run(scenario()) == ["Unavailable"]
    assert repository.models.loads == 2 and repository.models.budget.names() == ["a"]
