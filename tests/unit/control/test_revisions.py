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
