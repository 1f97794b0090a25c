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


class SchemaTooNew(ServiceUnavailable):
    """The stored data is at a layout version newer than this code understands (it was
    migrated by a newer Sluice): the code refuses to read or write it until it is upgraded."""

    code = "schema_too_new"


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


class HashError(SluiceError, ValueError):
    """A value cannot be hashed by value (for a cache key): a lock, a file handle, a generator,
    an object that cannot be pickled. The message names the value and how to leave it out."""


class ParameterValidationError(ValidationError):
    """A flow's parameters do not match its type hints; `details` lists each field's error."""


class CancelledRun(SluiceError):
    """Raised inside a run that is being cancelled, and by `.result()` of a run that ended
    Cancelled without an exception of its own (e.g. it returned `Cancelled(...)`)."""


class FailedRun(SluiceError):
    """`.result()` of a run that ended Failed without an exception of its own: it returned
    `Failed(message=...)`, or a state of a run that failed that way. The message is the state's."""


class TaskWaitsOnItself(SluiceError, RuntimeError):
    """A task run waited on its own future (directly or through a task it runs inline): it could
    never finish, so the wait fails at once instead of hanging."""


class RemoteTaskError(SluiceError):
    """A task body that ran in another process or on a Dask worker raised an exception that
    cannot be sent back (it does not pickle); the message has its type, text and traceback."""


__all__ = [
    "SluiceError", "ConfigurationError", "ValidationError", "BadRequest", "Unauthorized", "Forbidden",
    "NotFound", "SecretNotFound", "Conflict", "StaleLease", "PayloadTooLarge", "Throttled", "ServiceUnavailable",
    "MissingContextError", "RunAborted", "TaskTimeout", "UpstreamFailed", "CancelledRun",
    "FailedRun",
    "InvalidMapArguments", "ParameterValidationError", "HashError",
    "TaskWaitsOnItself", "RemoteTaskError",
]
