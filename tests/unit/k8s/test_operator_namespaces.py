"""Which namespaces the operator serves, by kopf's patterns (ksrv.k8s.operator.in_scope)."""

from __future__ import annotations

import pytest

from ksrv.k8s.operator import in_scope


@pytest.mark.parametrize(
    ("namespace", "patterns", "expected"),
    [
        ("anything", (), True),
        ("ns1", ("ns1",), True),
        ("ns2", ("ns1",), False),
        ("team-a", ("team-*",), True),
        ("team-b", ("team-*", "!team-b"), False),
        ("other", ("!kube-system",), True),
        ("kube-system", ("!kube-system",), False),
    ],
)
def test_namespace_patterns_select_as_kopf_does(
    namespace: str, patterns: tuple[str, ...], expected: bool
) -> None:
    assert in_scope(namespace, patterns) is expected
