"""What every body goes through before the store: parse, default, validate (KServe's webhooks).

The management API and `ksrv apply --dry-run` call only these functions, so `ksrv.api`'s
resource models are reached from this one module.
"""

from __future__ import annotations

from typing import Any

from ksrv import errors
from ksrv.api import resources

Document = dict[str, Any]


def parse(text: str) -> list[Document]:
    """The documents in a YAML or JSON text (multi-document, empty ones skipped)."""
    return resources.parse_documents(text)


def admit(document: Document) -> Document:
    """The document as it will be stored: defaults applied; `ResourceInvalid` when invalid
    (a field the CRD does not define included, as kubectl's strict validation refuses it)."""
    return resources.load(document, is_strict=True).to_dict()


def admit_update(old: Document, new: Document) -> None:
    """KServe's update rules between the stored document and its replacement.

    A stored document that no longer loads (stored under older rules) has nothing to compare
    against: the replacement alone was already validated by `admit`.
    """
    try:
        before = resources.load(old)
    except errors.ResourceInvalid:
        return
    resources.validate_update(before, resources.load(new))


def field_errors(exc: errors.ResourceInvalid) -> list[tuple[str, str]]:
    """(path, message) pairs of a validation failure; empty when it names no field."""
    return list(exc.field_errors)
