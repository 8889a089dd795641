"""The pure parts of the model-cache reconciler: KServe's status for each node state, the
failure message taken from the download's output, the back-off, and a predictor's plan
rewritten to read a complete copy in place; and the admission rules that read the store
(one LocalModelCache per URI, no deleting a cache in use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksrv.api.local_model_cache import CacheRef, storage_key
from ksrv.control import admission
from ksrv.control.model_caches import Backoff, NodeView, cache_status, failure_message
from ksrv.control.model_copies import ModelCopies
from ksrv.control.plan import ComponentPlan, CustomContainer, ModelServer, ServicePlan
from ksrv.control.store import Store
from ksrv.errors import Conflict, ResourceInvalid

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("state", "ready", "reason", "available_failed"),
    [
        ("NodeDownloadPending", "False", "DownloadPending", (0, 0)),
        ("NodeDownloading", "False", "Downloading", (0, 0)),
        ("NodeDownloaded", "True", "Downloaded", (1, 0)),
        ("NodeDownloadError", "False", "DownloadFailed", (0, 1)),
    ],
)
def test_status_is_kserves_shape_for_each_node_state(state, ready, reason, available_failed):
    available, failed = available_failed
    users = [{"name": "b", "namespace": "x"}, {"name": "a", "namespace": "x"}]
    status = cache_status(3, "host-1", NodeView(state, "why"), users, {}, NOW)
    assert status["observedGeneration"] == 3
    assert status["nodeStatus"] == {"host-1": state}
    assert status["copies"] == {"available": available, "total": 1, "failed": failed}
    assert status["inferenceServices"] == [users[1], users[0]]
    [condition] = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Ready", ready, reason)
    assert condition["message"] == "why"
    assert condition["lastTransitionTime"] == "2023-11-14T22:13:20Z"


def test_a_status_that_did_not_change_keeps_its_transition_time():
    view = NodeView("NodeDownloaded", "cached")
    first = cache_status(1, "h", view, [], {}, NOW)
    assert cache_status(1, "h", view, [], first, NOW + 60) == first


@pytest.mark.parametrize(
    ("tail", "code", "expected"),
    [
        ("INFO starting\nksrv storage download: http://h/m: HTTP 404\n", 1, "http://h/m: HTTP 404"),
        ("Traceback ...\nMemoryError\n", 1, "the download exited with code 1: MemoryError"),
        ("", -9, "the download was killed"),
        ("", None, "the download exited with code None"),
    ],
)
def test_the_failure_message_is_the_downloads_own_error_line(tail, code, expected):
    assert failure_message(tail, code) == expected


@pytest.mark.parametrize(("failures", "delay_s"), [(1, 5.0), (2, 10.0), (3, 20.0), (8, 300.0)])
def test_the_back_off_doubles_up_to_its_cap(failures, delay_s):
    assert Backoff(first_s=5.0, max_s=300.0).delay_s(failures) == delay_s


def plan(uri: str, namespace: str = "default") -> ServicePlan:
    server = ModelServer("sklearn", uri, "ksrv-sklearn", True, "sklearn", True)
    predictor = ComponentPlan("predictor", workload=server)
    return ServicePlan(namespace, "iris", {"predictor": predictor})


REF = CacheRef("LocalModelCache", "", "iris", "s3://b/models", ("workers",))


def storage_uri(found: ServicePlan) -> str:
    workload = found.components["predictor"].workload
    assert isinstance(workload, ModelServer)
    return workload.storage_uri


def test_a_predictor_reads_a_complete_copy_in_place(tmp_path: Path):
    copies = ModelCopies(tmp_path)
    (tmp_path / storage_key("s3://b/models") / "iris").mkdir(parents=True)
    assert storage_uri(copies.with_copies(plan("s3://b/models"), {}, [REF])) == str(
        tmp_path / storage_key("s3://b/models")
    )
    found = copies.with_copies(plan("s3://b/models/iris"), {}, [REF])
    assert storage_uri(found) == str(tmp_path / storage_key("s3://b/models") / "iris")
    assert (
        found.components["predictor"].fingerprint
        != plan("s3://b/models/iris").components["predictor"].fingerprint
    )


@pytest.mark.parametrize(
    ("uri", "annotations", "is_complete"),
    [
        ("s3://b/models", {}, False),  # still downloading: the replica downloads as before
        ("s3://b/models/absent", {}, True),  # the copy does not hold that part
        ("s3://b/models/../x", {}, True),
        ("s3://b/models", {"serving.kserve.io/disable-localmodel": "true"}, True),
        ("s3://b/other", {}, True),
    ],
)
def test_a_predictor_keeps_its_uri_without_a_usable_copy(tmp_path, uri, annotations, is_complete):
    if is_complete:
        (tmp_path / storage_key("s3://b/models")).mkdir()
        (tmp_path / "x").mkdir()
    original = plan(uri)
    assert ModelCopies(tmp_path).with_copies(original, annotations, [REF]) == original


def test_only_a_model_server_predictor_is_rewritten(tmp_path):
    (tmp_path / storage_key("s3://b/models")).mkdir()
    container = CustomContainer(("python", "model.py"), (), None, None)
    custom = ServicePlan("default", "c", {"predictor": ComponentPlan("predictor", container)})
    assert ModelCopies(tmp_path).with_copies(custom, {}, [REF]) == custom


def test_what_is_not_honoured_locally_is_a_local_limitations_condition():
    notes = ("spec.serviceAccountName: not used",)
    status = cache_status(1, "h", NodeView("NodeDownloaded", "ok"), [], {}, NOW, notes)
    limits = status["conditions"][1]
    assert (limits["type"], limits["status"], limits["reason"]) == (
        "LocalLimitations", "True", "NotHonouredLocally"
    )  # fmt: skip
    assert limits["message"] == notes[0] and limits["severity"] == "Info"


def cache_document(name: str, uri: str, namespace: str = "") -> dict:
    kind = "LocalModelNamespaceCache" if namespace else "LocalModelCache"
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "spec": {"sourceModelUri": uri, "modelSize": "1Gi", "nodeGroups": ["workers"]},
    }


def isvc_document(name: str, uri: str, namespace: str = "default") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


@pytest.fixture
def store():
    opened = Store(":memory:")
    try:
        yield opened
    finally:
        opened.close()


def test_a_second_local_model_cache_of_one_uri_is_refused_as_kserve_refuses_it(store):
    store.create(cache_document("iris", "s3://b/iris"))
    with pytest.raises(ResourceInvalid, match="LocalModelCache iris has the same StorageURI"):
        admission.admit_among(cache_document("iris-2", "s3://b/iris"), store)
    admission.admit_among(cache_document("iris", "s3://b/iris"), store)  # itself, re-applied
    admission.admit_among(cache_document("bert", "hf://org/bert"), store)
    admission.admit_among(cache_document("iris-team", "s3://b/iris", "team"), store)


def test_a_cache_in_use_cannot_be_deleted(store):
    store.create(cache_document("iris", "s3://b/iris"))
    store.create(cache_document("iris-team", "s3://b/iris", "team"))
    store.create(isvc_document("in-team", "s3://b/iris/v1", "team"))
    # The namespace's own cache serves `in-team`, so the cluster cache is free to go...
    admission.admit_delete("LocalModelCache", "", "iris", store)
    with pytest.raises(Conflict, match="LocalModelNamespaceCache team/iris-team is being used "
                       "by InferenceService team/in-team"):  # fmt: skip
        admission.admit_delete("LocalModelNamespaceCache", "team", "iris-team", store)
    # ... until a service elsewhere uses it.
    store.create(isvc_document("elsewhere", "s3://b/iris"))
    with pytest.raises(Conflict, match="LocalModelCache iris is being used by InferenceService "
                       "default/elsewhere"):  # fmt: skip
        admission.admit_delete("LocalModelCache", "", "iris", store)
    admission.admit_delete("InferenceService", "default", "elsewhere", store)
