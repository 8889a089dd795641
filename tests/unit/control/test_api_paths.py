"""api_paths: what a user types, and a URL's segments, name which served type."""

from __future__ import annotations

import pytest

from ksrv.control import api_paths


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("isvc", "InferenceService"),
        ("inferenceservices.serving.kserve.io", "InferenceService"),
        ("rev", "Revision"),
        ("revision", "Revision"),
        ("Revisions", "Revision"),
        ("revisions.ksrv.dev", "Revision"),
        ("revisions.serving.kserve.io", None),
        ("isvc.ksrv.dev", None),
        ("pods", None),
    ],
)
def test_resolve_takes_kubectls_spellings_in_each_types_own_group(typed, kind):
    found = api_paths.resolve(typed)
    assert (found.kind if found else None) == kind


def test_revisions_are_read_only_under_ksrvs_group_and_never_applied():
    revision = api_paths.REVISION
    assert (revision.api_version, revision.is_read_only) == ("ksrv.dev/v1", True)
    assert revision.collection_path("ns") == "/apis/ksrv.dev/v1/namespaces/ns/revisions"
    assert revision.item_path("ns", "a-predictor-00001") == (
        "/apis/ksrv.dev/v1/namespaces/ns/revisions/a-predictor-00001"
    )
    assert api_paths.by_plural("ksrv.dev", "v1", "revisions") is revision
    assert api_paths.by_plural("serving.kserve.io", "v1", "revisions") is None
    assert api_paths.by_kind("Revision") is None  # what `ksrv apply` takes
    assert all(not t.is_read_only for t in api_paths.RESOURCE_TYPES)
