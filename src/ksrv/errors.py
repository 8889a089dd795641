"""The one error hierarchy of ksrv.

Domain code raises these; `ksrv.protocol.status` alone turns a `kind` into an HTTP or gRPC
status. Names follow KServe's (`InvalidInput`, `ModelNotFound`, ...) so a ported custom model
that raises them keeps its status codes. Nothing here imports ksrv or a web framework.

    KsrvError
    ├── InvalidInput             the caller sent something malformed         (400)
    │   └── PayloadTooLarge      the body exceeds the configured limit       (413)
    ├── ModelNotFound            no model by that name or version            (404)
    ├── RouteNotFound            no endpoint at that path and method         (404)
    ├── ServiceNotFound          no InferenceService for the gateway's host  (404)
    ├── Unauthenticated          no valid bearer token where one is required (401)
    ├── PermissionDenied         the token does not grant this (namespace)   (403)
    ├── MethodNotAllowed         the path exists, the method does not        (405)
    ├── UnsupportedMediaType     a body in a content type the path refuses   (415)
    ├── ModelNotReady            loading, failed to load, or unloaded        (503)
    ├── ServerNotReady           starting up or draining                     (503)
    ├── NoReadyReplica           the gateway held a request; no replica came (503)
    ├── Unsupported              a protocol feature ksrv does not implement  (501)
    ├── Overloaded               a queue or buffer is full                   (429)
    ├── UpstreamFailed           a predictor/step is unreachable or failed   (502)
    ├── UpstreamTimeout          a predictor/step exceeded its deadline      (504)
    ├── StorageError             a model download or unpack failed           (503)
    ├── ResourceInvalid          an `api` resource fails parse or validation (422)
    ├── ResourceNotFound         no stored resource of that kind and name    (404)
    ├── Conflict                 exists already, or a stale resourceVersion  (409)
    └── InferenceError           the model raised while predicting           (500)
"""

from __future__ import annotations


class KsrvError(Exception):
    """Base of every error ksrv raises on purpose; `kind` selects the status."""

    kind = "internal"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__

    def __str__(self) -> str:
        return self.message


class InvalidInput(KsrvError):
    """The request is malformed: bad JSON, shape, datatype or data."""

    kind = "invalid_input"


class PayloadTooLarge(InvalidInput):
    """The request body is larger than the server accepts."""

    kind = "payload_too_large"


class ModelNotFound(KsrvError):
    """No model is registered under the requested name (or version)."""

    kind = "model_not_found"

    def __init__(self, model_name: str = "", message: str = "") -> None:
        self.model_name = model_name
        super().__init__(message or f"Model with name {model_name} does not exist.")


class RouteNotFound(KsrvError):
    """No endpoint answers this method and path."""

    kind = "route_not_found"


class ServiceNotFound(KsrvError):
    """No InferenceService answers to the request's host or `/serving/NS/NAME` path."""

    kind = "service_not_found"


class Unauthenticated(KsrvError):
    """The request carries no bearer token, or one that is unknown or revoked."""

    kind = "unauthenticated"


class PermissionDenied(KsrvError):
    """The bearer token is valid but does not grant this (another namespace, another role)."""

    kind = "permission_denied"


class MethodNotAllowed(KsrvError):
    """The endpoint exists but does not take this method."""

    kind = "method_not_allowed"


class UnsupportedMediaType(KsrvError):
    """The body's content type is not one this endpoint takes."""

    kind = "unsupported_media_type"


class ModelNotReady(KsrvError):
    """The model exists but cannot serve yet (loading, failed load, unloaded)."""

    kind = "model_not_ready"

    def __init__(self, model_name: str = "", detail: str = "") -> None:
        self.model_name = model_name
        message = f"Model with name {model_name} is not ready."
        super().__init__(f"{message} {detail}".strip())


class ServerNotReady(KsrvError):
    """The server is starting up or draining."""

    kind = "server_not_ready"


class NoReadyReplica(KsrvError):
    """The gateway held a request for a routed service, but no replica became ready in time."""

    kind = "no_ready_replica"


class Unsupported(KsrvError):
    """A protocol feature or datatype ksrv does not implement."""

    kind = "unsupported"


class Overloaded(KsrvError):
    """A queue or buffer is full; the caller may retry later."""

    kind = "overloaded"


class UpstreamFailed(KsrvError):
    """A predictor, replica or graph step was unreachable or answered with an error."""

    kind = "upstream_failed"

    def __init__(self, message: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class UpstreamTimeout(KsrvError):
    """A predictor, replica or graph step did not answer before its deadline."""

    kind = "upstream_timeout"


class StorageError(KsrvError):
    """A model could not be downloaded or unpacked."""

    kind = "storage_error"


class ResourceInvalid(KsrvError):
    """A resource (ServingRuntime, InferenceService, ...) is malformed or cannot be satisfied.

    `reason` is KServe's condition reason when there is one (`NoSupportingRuntime`,
    `RuntimeNotRecognized`, `RuntimeDisabled`), so the reconciler can write it to a status.
    `field_errors` lists `(path, message)` pairs such as
    `("spec.predictor.minReplicas", "must be >= 0")`, so a client can point at each bad field.
    """

    kind = "resource_invalid"

    def __init__(
        self,
        message: str = "",
        reason: str = "",
        field_errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.field_errors: list[tuple[str, str]] = list(field_errors or [])


class ResourceNotFound(KsrvError):
    """No stored resource has this kind, namespace and name."""

    kind = "resource_not_found"


class Conflict(KsrvError):
    """A create found the resource already there, or an update carried a stale resourceVersion."""

    kind = "conflict"


class InferenceError(KsrvError):
    """The model raised while predicting (KServe's `InferenceError`)."""

    kind = "inference_failed"

    def __init__(self, reason: str = "", status: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# KServe spells the not-found error for repository calls this way.
ModelMissingError = ModelNotFound
