"""OpenAI's error envelope: any error -> `{"error": {"message", "type", "param", "code"}}`.

The status still comes from `protocol/status.py` (a bad parameter is `InvalidInput`, 400; an
unknown model `ModelNotFound`, 404); this module only adds what OpenAI's clients read besides
it: the offending parameter and a machine-readable code (`model_not_found`,
`context_length_exceeded`), with OpenAI's `type` names.
"""

from __future__ import annotations

from pydantic import ValidationError

from ksrv import errors
from ksrv.protocol import status
from ksrv.protocol.openai.common import ErrorBody, ErrorResponse


class OpenAIInvalidRequest(errors.InvalidInput):
    """A bad request (400) that names the parameter at fault and, optionally, OpenAI's code."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code


class ContextLengthExceeded(OpenAIInvalidRequest):
    """The prompt (plus the tokens asked for) does not fit the model's context (400)."""

    def __init__(self, message: str, param: str = "messages"):
        super().__init__(message, param, "context_length_exceeded")


def from_validation(exc: ValidationError) -> OpenAIInvalidRequest:
    """The first problem pydantic found, as OpenAI words it: `param` is the field's path."""
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if not _is_type_tag(part)]
    param = ".".join(location) or None
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if param and not message.startswith(f"{param}:"):
        message = f"{param}: {message}"
    code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
    return OpenAIInvalidRequest(f"Invalid request: {message}", param, code)


def _is_type_tag(part: object) -> bool:
    """pydantic names the union member it tried (`str`, `list[int]`): not part of the path."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))


def envelope(exc: BaseException) -> tuple[int, ErrorResponse]:
    """The HTTP status and OpenAI error body for an exception raised while serving."""
    code = status.http_status(exc)
    param: str | None = None
    error_code: str | None = None
    if isinstance(exc, OpenAIInvalidRequest):
        param, error_code = exc.param, exc.code
    elif isinstance(exc, errors.ModelNotFound):
        param, error_code = "model", "model_not_found"
    body = ErrorBody(
        message=status.public_message(exc), type=_type(code), param=param, code=error_code
    )
    return code, ErrorResponse(error=body)


def _type(code: int) -> str:
    if code == 429:
        return "rate_limit_error"
    if code >= 500:
        return "server_error"
    return "invalid_request_error"
