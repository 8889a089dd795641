"""Management API answers: documents as JSON or YAML, and failures as Kubernetes `Status`.

The HTTP code comes from `protocol.status`, the one table from error kind to status (the API
raises `errors.MethodNotAllowed`, `errors.RouteNotFound`, ... like any other layer); `reason`
is only Kubernetes' word for that code, so `kubectl`-style clients branch on it. A bug is
logged here and answered without its details.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import yaml

from ksrv import errors
from ksrv.http.server import Response
from ksrv.protocol import status, tokens

logger = logging.getLogger(__name__)

Document = dict[str, Any]

# Kubernetes' `Status.reason` for each code the management API answers.
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


def status_object(exc: BaseException, details: Document) -> Document:
    """The `Status` for a failure; `details` names the resource (kind, group, name)."""
    code = status.http_status(exc)
    if code >= 500:
        logger.error("management API failed", exc_info=exc)
    reason = REASONS.get(code, "InternalError")
    if isinstance(exc, errors.Conflict) and "already exists" in exc.message:
        reason = "AlreadyExists"  # Kubernetes' reason for a create that finds the object
    details = dict(details)
    if isinstance(exc, errors.ResourceInvalid):
        details["causes"] = [
            {"reason": "FieldValueInvalid", "field": path, "message": text}
            for path, text in exc.field_errors
        ]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": status.public_message(exc) if code < 500 else "internal error",
        "reason": reason,
        "details": details,
        "code": code,
    }


def encode(
    body: Document, code: int, wants_yaml: bool = False, headers: list[Any] | None = None
) -> Response:
    """`body` as YAML when the caller accepts it, else JSON."""
    extra = list(headers or [])
    if wants_yaml:
        data = yaml.safe_dump(body, sort_keys=False).encode()
        return Response(data, code, [(b"content-type", b"application/yaml"), *extra])
    data = json.dumps(body).encode()
    return Response(data, code, [(b"content-type", b"application/json"), *extra])


def failure(exc: BaseException, details: Document, wants_yaml: bool) -> Response:
    headers = [tokens.CHALLENGE] if isinstance(exc, errors.Unauthenticated) else []
    return encode(status_object(exc, details), status.http_status(exc), wants_yaml, headers)
