"""What every body goes through before the store: parse, default, validate (KServe's webhooks).

The management API and `ksrv apply --dry-run` call only these functions, so `ksrv.api`'s
resource models are reached from this one module.
"""

from __future__ import annotations

import importlib
from typing import Any

from ksrv import errors

# TODO(ksrv): import ksrv.api.resources directly and delete _interim_resources once it lands.
resources: Any
try:
    resources = importlib.import_module("ksrv.api.resources")
except ModuleNotFoundError:
    resources = importlib.import_module("ksrv.control._interim_resources")

Document = dict[str, Any]


def parse(text: str) -> list[Document]:
    """The documents in a YAML or JSON text (multi-document, empty ones skipped)."""
    documents: list[Document] = resources.parse_documents(text)
    return documents


def admit(document: Document) -> Document:
    """The document as it will be stored: defaults applied; `ResourceInvalid` when invalid."""
    admitted: Document = resources.load(document).to_dict()
    return admitted


def admit_update(old: Document, new: Document) -> None:
    """KServe's update rules between the stored document and its replacement."""
    resources.validate_update(resources.load(old), resources.load(new))


def field_errors(exc: errors.ResourceInvalid) -> list[tuple[str, str]]:
    """(path, message) pairs of a validation failure; empty when it names no field."""
    pairs = getattr(exc, "field_errors", None) or []
    return [(str(path), str(message)) for path, message in pairs]
