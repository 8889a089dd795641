"""Store: CRUD, versions and generations, the changes feed, its wakeup, durability."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ksrv import errors
from ksrv.control.store import Change, Store


def isvc(name: str = "sklearn-iris", namespace: str = "default", uri: str = "gs://a") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": "a"}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


@pytest.fixture
def store() -> Store:
    return Store(":memory:", clock=lambda: 1_700_000_000.0)


def test_create_assigns_uid_version_generation_timestamp_and_empty_status(store):
    stored = store.create(isvc())
    metadata = stored["metadata"]
    assert metadata["resourceVersion"] == "1"
    assert metadata["generation"] == 1
    assert metadata["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert len(metadata["uid"]) == 36
    assert stored["status"] == {}
    assert store.get("InferenceService", "default", "sklearn-iris") == stored


def test_create_ignores_store_owned_fields_the_caller_sent(store):
    doc = isvc()
    doc["metadata"].update(uid="mine", resourceVersion="99", generation=7)
    doc["status"] = {"url": "http://fake"}
    stored = store.create(doc)
    assert stored["metadata"]["uid"] != "mine"
    assert stored["metadata"]["resourceVersion"] == "1"
    assert stored["metadata"]["generation"] == 1
    assert stored["status"] == {}


def test_create_twice_is_a_conflict(store):
    store.create(isvc())
    with pytest.raises(errors.Conflict, match="already exists"):
        store.create(isvc())


def test_same_name_in_another_namespace_or_kind_is_another_resource(store):
    store.create(isvc())
    store.create(isvc(namespace="prod"))
    other = {"kind": "ClusterServingRuntime", "metadata": {"name": "sklearn-iris"}, "spec": {}}
    stored = store.create(other)
    assert stored["metadata"]["resourceVersion"] == "3"
    assert store.get("ClusterServingRuntime", "", "sklearn-iris")["kind"] == "ClusterServingRuntime"


def test_get_missing_raises_resource_not_found(store):
    with pytest.raises(errors.ResourceNotFound, match='InferenceService "nope" not found'):
        store.get("InferenceService", "default", "nope")


def test_list_filters_by_kind_and_namespace_and_sorts(store):
    store.create(isvc("b"))
    store.create(isvc("a"))
    store.create(isvc("c", namespace="prod"))
    store.create({"kind": "TrainedModel", "metadata": {"name": "tm", "namespace": "default"}})
    names = [
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in store.list("InferenceService")
    ]
    assert names == [("default", "a"), ("default", "b"), ("prod", "c")]
    assert [d["metadata"]["name"] for d in store.list("InferenceService", "prod")] == ["c"]
    assert store.list("InferenceService", "empty") == []


def test_apply_creates_then_reports_unchanged_without_a_new_version(store):
    created, changed = store.apply(isvc())
    assert changed
    again, changed = store.apply(isvc())
    assert not changed
    assert again == created
    assert store.latest_version == 1


def test_apply_with_a_new_spec_bumps_generation_and_keeps_status_and_uid(store):
    created, _ = store.apply(isvc())
    store.update_status("InferenceService", "default", "sklearn-iris", {"url": "http://x"})
    updated, changed = store.apply(isvc(uri="gs://b"))
    assert changed
    assert updated["metadata"]["generation"] == 2
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert updated["metadata"]["resourceVersion"] == "3"
    assert updated["status"] == {"url": "http://x"}


def test_apply_with_new_labels_only_keeps_generation(store):
    store.apply(isvc())
    doc = isvc()
    doc["metadata"]["labels"] = {"team": "b"}
    doc["metadata"]["annotations"] = {"note": "x"}
    updated, changed = store.apply(doc)
    assert changed
    assert updated["metadata"]["generation"] == 1
    assert updated["metadata"]["labels"] == {"team": "b"}
    assert updated["metadata"]["annotations"] == {"note": "x"}


def test_update_with_the_current_version_replaces_and_bumps(store):
    stored = store.create(isvc())
    stored["spec"]["predictor"]["minReplicas"] = 2
    updated = store.update(stored)
    assert updated["metadata"]["generation"] == 2
    assert updated["metadata"]["resourceVersion"] == "2"
    assert updated["spec"]["predictor"]["minReplicas"] == 2


def test_update_with_a_stale_version_is_a_conflict(store):
    stale = store.create(isvc())
    store.apply(isvc(uri="gs://b"))
    with pytest.raises(errors.Conflict, match="has been modified"):
        store.update(stale)
    with pytest.raises(errors.Conflict):
        store.update(isvc())  # no resourceVersion at all


def test_update_of_a_missing_resource_is_not_found(store):
    doc = isvc()
    doc["metadata"]["resourceVersion"] = "1"
    with pytest.raises(errors.ResourceNotFound):
        store.update(doc)


def test_update_keeps_status_whatever_the_caller_sends(store):
    stored = store.create(isvc())
    store.update_status("InferenceService", "default", "sklearn-iris", {"url": "http://x"})
    stored = store.get("InferenceService", "default", "sklearn-iris")
    stored["status"] = {"url": "http://forged"}
    stored["metadata"]["labels"] = {"team": "c"}
    assert store.update(stored)["status"] == {"url": "http://x"}


def test_update_status_bumps_version_not_generation(store):
    store.create(isvc())
    updated = store.update_status(
        "InferenceService", "default", "sklearn-iris", {"conditions": [{"type": "Ready"}]}
    )
    assert updated["metadata"]["generation"] == 1
    assert updated["metadata"]["resourceVersion"] == "2"
    assert store.get("InferenceService", "default", "sklearn-iris")["status"] == updated["status"]


def test_update_status_with_the_same_status_is_not_a_change(store):
    store.create(isvc())
    store.update_status("InferenceService", "default", "sklearn-iris", {"url": "u"})
    store.update_status("InferenceService", "default", "sklearn-iris", {"url": "u"})
    assert store.latest_version == 2


def test_update_status_of_a_missing_resource_is_not_found(store):
    with pytest.raises(errors.ResourceNotFound):
        store.update_status("InferenceService", "default", "nope", {})


def test_delete_returns_the_document_and_removes_it(store):
    stored = store.create(isvc())
    assert store.delete("InferenceService", "default", "sklearn-iris") == stored
    with pytest.raises(errors.ResourceNotFound):
        store.get("InferenceService", "default", "sklearn-iris")
    with pytest.raises(errors.ResourceNotFound):
        store.delete("InferenceService", "default", "sklearn-iris")


def test_a_document_without_kind_or_name_is_invalid_input(store):
    with pytest.raises(errors.InvalidInput):
        store.create({"metadata": {"name": "x"}})
    with pytest.raises(errors.InvalidInput):
        store.create({"kind": "InferenceService", "metadata": {}})


def test_changes_feed_lists_adds_modifications_and_deletes_in_order(store):
    store.create(isvc())
    store.apply(isvc(uri="gs://b"))
    store.update_status("InferenceService", "default", "sklearn-iris", {"url": "u"})
    store.delete("InferenceService", "default", "sklearn-iris")
    changes, latest = store.changes_since(0)
    assert latest == 4
    assert [(c.version, c.type) for c in changes] == [
        (1, "ADDED"),
        (2, "MODIFIED"),
        (3, "MODIFIED"),
        (4, "DELETED"),
    ]
    assert changes[-1] == Change(4, "DELETED", "InferenceService", "default", "sklearn-iris")
    assert store.changes_since(3) == ([changes[-1]], 4)
    assert store.changes_since(4) == ([], 4)


def test_a_failed_write_takes_no_version(store):
    store.create(isvc())
    with pytest.raises(errors.Conflict):
        store.create(isvc())
    assert store.latest_version == 1
    assert store.create(isvc("other"))["metadata"]["resourceVersion"] == "2"


def test_wait_for_change_wakes_up_on_a_write():
    async def scenario() -> tuple[bool, bool]:
        store = Store(":memory:")
        waiting = asyncio.ensure_future(store.wait_for_change(0, timeout_s=30))
        await asyncio.sleep(0)  # one loop turn: the waiter is registered and waits
        assert not waiting.done()
        store.create(isvc())
        woke = await waiting
        already = await store.wait_for_change(0, timeout_s=0)
        return woke, already

    assert asyncio.run(scenario()) == (True, True)


def test_wait_for_change_times_out_with_false_when_nothing_changes():
    async def scenario() -> bool:
        store = Store(":memory:")
        store.create(isvc())
        return await store.wait_for_change(1, timeout_s=0.05)

    assert asyncio.run(scenario()) is False


def test_wait_for_change_ignores_writes_that_change_nothing():
    async def scenario() -> tuple[bool, bool]:
        store = Store(":memory:")
        store.create(isvc())
        waiting = asyncio.ensure_future(store.wait_for_change(1, timeout_s=30))
        await asyncio.sleep(0)  # the waiter is registered
        store.apply(isvc())
        for _ in range(3):  # a wake-up (call_soon_threadsafe) would have run by now
            await asyncio.sleep(0)
        still_waiting = not waiting.done()
        store.create(isvc("other"))  # a real change wakes it
        return still_waiting, await waiting

    assert asyncio.run(scenario()) == (True, True)


def test_everything_survives_reopening_the_file_and_the_counter_continues(tmp_path: Path):
    path = tmp_path / "ksrv.db"
    first = Store(path)
    created = first.create(isvc())
    first.update_status("InferenceService", "default", "sklearn-iris", {"url": "u"})
    first.create(isvc("gone"))
    first.delete("InferenceService", "default", "gone")
    first.close()

    second = Store(path)
    assert second.latest_version == 4
    stored = second.get("InferenceService", "default", "sklearn-iris")
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]
    assert stored["status"] == {"url": "u"}
    assert [c.type for c in second.changes_since(0)[0]] == ["ADDED", "MODIFIED", "ADDED", "DELETED"]
    assert second.create(isvc("next"))["metadata"]["resourceVersion"] == "5"
    second.close()


def test_the_file_is_in_wal_mode(tmp_path: Path):
    Store(tmp_path / "ksrv.db").close()
    with closing(sqlite3.connect(tmp_path / "ksrv.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
