"""The one exception hierarchy of Sluice. The API maps these to HTTP in one place."""

from __future__ import annotations

from typing import Any


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose."""

    #: HTTP status the API answers with; the error code is the class name in snake case.
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(SluiceError, ValueError):
    """A decorator option, setting or profile is invalid; the message names it and the fix."""

    status_code = 400
    code = "invalid_configuration"


class ValidationError(SluiceError, ValueError):
    """A request body or flow parameters are invalid."""

    status_code = 422
    code = "validation_error"


class BadRequest(SluiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(SluiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(SluiceError):
    """Valid credentials, beyond their rights: a worker's outside its pool's routes, a flow
    process's outside its run, a trigger without a grant (IAM's 403 on AWS)."""

    status_code = 403
    code = "forbidden"


class NotFound(SluiceError, LookupError):
    status_code = 404
    code = "not_found"


class SecretNotFound(NotFound):
    """`sluice.secret(name)` found no secret of that name in the secret store."""

    code = "secret_not_found"


class Conflict(SluiceError):
    """The write lost a race or names something that already exists."""

    status_code = 409
    code = "conflict"


class StaleLease(Conflict):
    """The caller no longer holds the run's lease (another attempt owns it)."""

    code = "stale_lease"


class PayloadTooLarge(SluiceError):
    status_code = 413
    code = "payload_too_large"


class Throttled(SluiceError):
    status_code = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: float = 1.0, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class ServiceUnavailable(SluiceError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class MissingContextError(SluiceError, RuntimeError):
    """A run-scoped helper (get_run_logger, ...) was called outside a flow or task run."""


class RunAborted(SluiceError):
    """The control plane refused a transition the run needs (cancelled, lease lost): stop."""


class TaskTimeout(SluiceError, TimeoutError):
    """A task or flow ran longer than its `timeout_seconds`."""


class UpstreamFailed(SluiceError):
    """A task's upstream (a `wait_for` or input future) did not complete."""


class InvalidMapArguments(SluiceError, ValueError):
    """`Task.map` got nothing to map over, or iterables of different lengths."""


class ParameterValidationError(ValidationError):
    """A flow's parameters do not match its type hints; `details` lists each field's error."""


class CancelledRun(SluiceError):
    """Raised inside a run that is being cancelled."""


__all__ = [
    "SluiceError", "ConfigurationError", "ValidationError", "BadRequest", "Unauthorized", "Forbidden",
    "NotFound", "SecretNotFound", "Conflict", "StaleLease", "PayloadTooLarge", "Throttled", "ServiceUnavailable",
    "MissingContextError", "RunAborted", "TaskTimeout", "UpstreamFailed", "CancelledRun",
    "InvalidMapArguments", "ParameterValidationError",
]
