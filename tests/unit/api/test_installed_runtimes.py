"""default_runtimes.installed / unreplaced: the defaults are listed like applied runtimes, and
one applied under a default's name takes its place."""

from __future__ import annotations

from ksrv.api import default_runtimes

CREATED = "2026-01-01T00:00:00Z"


def test_every_default_is_listed_by_name_with_the_install_time():
    listed = default_runtimes.installed([], CREATED)
    names = [document["metadata"]["name"] for document in listed]
    assert names == sorted(f"ksrv-{name}" for name in default_runtimes.ksrv_formats())
    assert {document["metadata"]["creationTimestamp"] for document in listed} == {CREATED}
    assert {document["kind"] for document in listed} == {"ClusterServingRuntime"}


def test_an_applied_runtime_of_a_defaults_name_replaces_it_and_others_join():
    mine = {"kind": "ClusterServingRuntime", "metadata": {"name": "ksrv-sklearn"},
            "spec": {"disabled": True}}  # fmt: skip
    other = {"kind": "ClusterServingRuntime", "metadata": {"name": "a-runtime"}, "spec": {}}
    listed = default_runtimes.installed([mine, other], CREATED)
    assert listed[0] is other
    assert [d for d in listed if d["metadata"]["name"] == "ksrv-sklearn"] == [mine]


def test_selection_drops_the_defaults_an_applied_runtime_replaces():
    defaults = default_runtimes.default_runtimes()
    kept = default_runtimes.unreplaced(defaults, {"ksrv-sklearn"})
    assert [r.metadata.name for r in kept] == [
        r.metadata.name for r in defaults if r.metadata.name != "ksrv-sklearn"
    ]
