"""revisions: revision records per component, numbered, reused only for the same rendering."""

from __future__ import annotations

import pytest

from ksrv.control.revisions import RevisionRecords, fingerprint, number
from ksrv.control.store import Store


@pytest.fixture
def records(tmp_path):
    store = Store(tmp_path / "ksrv.db")
    yield RevisionRecords(store)
    store.close()


def names(found: list[dict]) -> list[str]:
    return [record["metadata"]["name"] for record in found]


def test_the_same_rendering_keeps_its_revision_and_a_new_one_gets_the_next_number(records):
    first = records.latest("ns", "iris", "predictor", "a", running=[])
    assert first["metadata"]["name"] == "iris-predictor-00001"
    assert records.latest("ns", "iris", "predictor", "a", running=[]) == first
    second = records.latest("ns", "iris", "predictor", "b", running=[])
    assert second["metadata"]["name"] == "iris-predictor-00002"
    assert names(records.of_component("ns", "iris", "predictor")) == [
        "iris-predictor-00001",
        "iris-predictor-00002",
    ]


def test_a_name_the_platform_still_runs_is_never_reused(records):
    # Deleted and re-created: the records are gone but revision 00002 still drains.
    created = records.latest("ns", "iris", "predictor", "a", running=["iris-predictor-00002"])
    assert created["metadata"]["name"] == "iris-predictor-00003"


def test_components_and_services_number_on_their_own(records):
    records.latest("ns", "iris", "predictor", "a", running=[])
    transformer = records.latest("ns", "iris", "transformer", "a", running=[])
    other = records.latest("ns", "wine", "predictor", "a", running=[])
    assert transformer["metadata"]["name"] == "iris-transformer-00001"
    assert other["metadata"]["name"] == "wine-predictor-00001"
    assert records.of_service("ns", "iris") == {
        ("ns", "iris-predictor-00001"),
        ("ns", "iris-transformer-00001"),
    }


def test_records_not_wanted_are_forgotten(records):
    records.latest("ns", "iris", "predictor", "a", running=[])
    records.latest("ns", "iris", "predictor", "b", running=[])
    records.forget_except({("ns", "iris-predictor-00002")})
    assert names(records.of_component("ns", "iris", "predictor")) == ["iris-predictor-00002"]


def test_identity_and_numbers():
    assert fingerprint("p", "r") == fingerprint("p", "r") != fingerprint("p", "s")
    assert number("iris-predictor-00012") == 12 and number("custom") == 0


def test_each_collector_stops_only_the_revisions_it_owns():
    import asyncio
    from pathlib import Path

    from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
    from ksrv.control.revisions import ROUTER, UNROUTED_GRACE_S, Collector, is_router

    class Platform:
        def __init__(self) -> None:
            self.removed: list[tuple[str, str]] = []
            self.revisions = {
                ("ns", name): RevisionState(RevisionSpec("ns", "x", component, name, ("c",)),
                                            [ReplicaState(0, 1, 1, None, "Ready", 0, None, None,
                                                          Path("/dev/null"), None, "h")])
                for name, component in (("iris-predictor-00001", "predictor"),
                                        ("chain-router-00001", ROUTER))
            }  # fmt: skip

        def observe(self):
            return self.revisions

        async def remove(self, namespace: str, revision: str) -> None:
            self.removed.append((namespace, revision))

    async def scenario(owns) -> list[tuple[str, str]]:
        platform = Platform()
        clock = iter([0.0, UNROUTED_GRACE_S])
        collector = Collector(platform, lambda: None, lambda: next(clock), owns=owns)  # type: ignore[arg-type]
        collector.collect(set())
        collector.collect(set())
        await asyncio.sleep(0)
        return platform.removed

    assert asyncio.run(scenario(lambda spec: not is_router(spec))) == [
        ("ns", "iris-predictor-00001")
    ]
    assert asyncio.run(scenario(is_router)) == [("ns", "chain-router-00001")]
