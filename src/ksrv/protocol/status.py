"""Error kind -> HTTP status (and gRPC code name): the only place this mapping happens.

Anything that is not a `KsrvError` is a bug: 500 with the exception's type and message (as
KServe answers), logged with its traceback by the caller.
"""

from __future__ import annotations

from ksrv import errors

HTTP_STATUS: dict[str, int] = {
    errors.InvalidInput.kind: 400,
    errors.PayloadTooLarge.kind: 413,
    errors.ModelNotFound.kind: 404,
    errors.RouteNotFound.kind: 404,
    errors.ServiceNotFound.kind: 404,
    errors.Unauthenticated.kind: 401,
    errors.PermissionDenied.kind: 403,
    errors.MethodNotAllowed.kind: 405,
    errors.UnsupportedMediaType.kind: 415,
    errors.ModelNotReady.kind: 503,
    errors.ServerNotReady.kind: 503,
    errors.NoReadyReplica.kind: 503,
    errors.Unsupported.kind: 501,
    errors.Overloaded.kind: 429,
    errors.UpstreamFailed.kind: 502,
    errors.UpstreamTimeout.kind: 504,
    errors.StorageError.kind: 503,
    errors.ResourceInvalid.kind: 422,
    errors.ResourceNotFound.kind: 404,
    errors.Conflict.kind: 409,
    errors.InferenceError.kind: 500,
}

GRPC_CODE: dict[str, str] = {
    errors.InvalidInput.kind: "INVALID_ARGUMENT",
    errors.PayloadTooLarge.kind: "RESOURCE_EXHAUSTED",
    errors.ModelNotFound.kind: "NOT_FOUND",
    errors.RouteNotFound.kind: "UNIMPLEMENTED",
    errors.ServiceNotFound.kind: "NOT_FOUND",
    errors.Unauthenticated.kind: "UNAUTHENTICATED",
    errors.PermissionDenied.kind: "PERMISSION_DENIED",
    errors.MethodNotAllowed.kind: "UNIMPLEMENTED",
    errors.UnsupportedMediaType.kind: "INVALID_ARGUMENT",
    errors.ModelNotReady.kind: "UNAVAILABLE",
    errors.ServerNotReady.kind: "UNAVAILABLE",
    errors.NoReadyReplica.kind: "UNAVAILABLE",
    errors.Unsupported.kind: "UNIMPLEMENTED",
    errors.Overloaded.kind: "RESOURCE_EXHAUSTED",
    errors.UpstreamFailed.kind: "UNAVAILABLE",
    errors.UpstreamTimeout.kind: "DEADLINE_EXCEEDED",
    errors.StorageError.kind: "UNAVAILABLE",
    errors.ResourceInvalid.kind: "INVALID_ARGUMENT",
    errors.ResourceNotFound.kind: "NOT_FOUND",
    errors.Conflict.kind: "ABORTED",
    errors.InferenceError.kind: "INTERNAL",
}


def http_status(exc: BaseException) -> int:
    """The HTTP status for an exception raised while serving a request."""
    if isinstance(exc, errors.KsrvError):
        return HTTP_STATUS.get(exc.kind, 500)
    if isinstance(exc, NotImplementedError):
        return 501
    return 500


def grpc_code(exc: BaseException) -> str:
    """The gRPC status code name for an exception raised while serving a request."""
    if isinstance(exc, errors.KsrvError):
        return GRPC_CODE.get(exc.kind, "INTERNAL")
    if isinstance(exc, NotImplementedError):
        return "UNIMPLEMENTED"
    return "INTERNAL"


def public_message(exc: BaseException) -> str:
    """What the caller may read: our own messages verbatim, bugs as a generic line."""
    if isinstance(exc, errors.KsrvError):
        return exc.message
    if isinstance(exc, NotImplementedError):
        return str(exc) or "Not implemented"
    # As KServe does, name the exception so a custom model's author can find the bug.
    return f"{type(exc).__name__} : {exc}"
