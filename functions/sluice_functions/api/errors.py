"""The one place where every exception becomes an HTTP answer.

Every error is JSON `{error, message, details}` (`sluice.models.ErrorBody`):

* `SluiceError` subclasses answer with their own `status_code` and `code` (4xx); `Throttled`
  and `ServiceUnavailable` (429/503) add a `Retry-After` header. A `SluiceError` that claims a
  5xx of its own is a server fault like any other (below).
* Request validation (Powertools) and pydantic errors answer 422 with each field's location in
  `details` (413 when the only problem is body values over their length limit, like the
  use cases' size limits); a body that is not JSON answers 400; a media type not read, 415.
* An unknown route answers 404.
* Anything raised while the request was still being read (before the route ran) is the request's
  fault and answers 400; anything else unexpected answers 500 with a generic message, and the
  exception is logged with the request id that the answer carries.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import pydantic
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)

from sluice.exceptions import PayloadTooLarge, ServiceUnavailable, SluiceError, Throttled

#: `app.context` key set once Powertools has parsed and validated the request (see
#: `mark_request_read`): exceptions before it are the request's fault, after it the server's.
REQUEST_READ = "sluice_request_read"
#: Error codes of the answers this module builds itself (the others come from `SluiceError`).
MALFORMED_JSON = "malformed_json"
VALIDATION_ERROR = "validation_error"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
ROUTE_NOT_FOUND = "route_not_found"
BAD_REQUEST = "bad_request"
INTERNAL_ERROR = "internal_error"
#: pydantic error types of a string or list longer than its `max_length`.
_OVER_LENGTH_TYPES = frozenset({"string_too_long", "too_long"})
#: pydantic error types of a number outside its bounds.
_BOUND_TYPES = frozenset({"less_than_equal", "less_than", "greater_than_equal", "greater_than"})


def register_error_handlers(app: APIGatewayHttpResolver, *, logger: logging.Logger | Any) -> None:
    """Answer unknown routes, and every exception the routes or Powertools raise, through
    `answer_for`."""

    @app.not_found
    def route_not_found(_: NotFoundError) -> Response:
        event = app.current_event
        return error_response(
            HTTPStatus.NOT_FOUND, ROUTE_NOT_FOUND,
            f"no route for {event.http_method} {event.path}",
            details={"method": event.http_method, "path": event.path},
        )

    @app.exception_handler(Exception)
    def any_exception(exc: Exception) -> Response:
        return answer_for(
            exc,
            request_read=bool(app.context.get(REQUEST_READ)),
            request_id=_request_id(app.current_event.raw_event),
            logger=logger,
        )


def mark_request_read(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
    """Global middleware: runs after Powertools validated the request, before the route."""
    app.append_context(**{REQUEST_READ: True})
    return next_middleware(app)


def answer_for(
    exc: Exception, *, request_read: bool, request_id: str | None, logger: logging.Logger | Any
) -> Response:
    """The HTTP answer to `exc` (see the module docstring for the mapping)."""
    if isinstance(exc, (Throttled, ServiceUnavailable)):
        logger.warning("request %s pushed back by a backend: %s", request_id, exc.message)
        return error_response(
            exc.status_code, exc.code, exc.message, exc.details, _retry_after(exc)
        )
    if isinstance(exc, SluiceError) and exc.status_code < 500:
        logger.info("request %s refused (%s): %s", request_id, exc.code, exc.message)
        return error_response(exc.status_code, exc.code, exc.message, exc.details)
    if isinstance(exc, RequestValidationError):
        return _validation_answer(exc.errors())
    if isinstance(exc, pydantic.ValidationError):
        return _validation_answer(exc.errors(include_url=False))
    if isinstance(exc, RequestUnsupportedContentType):
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON (Content-Type: application/json)",
            details=_field_errors(exc.errors()),
        )
    if isinstance(exc, ResponseValidationError):
        logger.error("request %s: response failed validation: %s", request_id, exc.errors())
        return _internal_error(request_id)
    if not request_read:
        # Routing and request parsing raised before any route ran: an undecodable base64 or
        # UTF-8 body, a multipart body without a boundary ... The request is at fault.
        logger.info("request %s could not be read: %r", request_id, exc)
        return error_response(
            HTTPStatus.BAD_REQUEST, BAD_REQUEST,
            f"the request could not be read ({type(exc).__name__})",
            details={"reason": str(exc)[:500]},
        )
    logger.exception("request %s failed unexpectedly", request_id)
    return _internal_error(request_id)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An `ErrorBody` JSON answer."""
    body = json.dumps(
        {"error": code, "message": message, "details": details},
        default=str, separators=(",", ":"),
    )
    return Response(
        status_code=int(status), content_type=content_types.APPLICATION_JSON, body=body,
        headers=dict(headers or {}),
    )


def startup_failure_event_response() -> dict[str, Any]:
    """The payload-2.0 answer of a Lambda whose app could not be built (bad configuration):
    the same 500 `ErrorBody` as any other server fault, without Powertools (there is no app)."""
    response = _internal_error(None)
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": response.body,
        "isBase64Encoded": False,
    }


def _validation_answer(errors: Iterable[Mapping[str, Any]]) -> Response:
    details = _field_errors(errors)
    if any(error["type"] == "json_invalid" for error in details):
        reason = next(error["msg"] for error in details if error["type"] == "json_invalid")
        return error_response(
            HTTPStatus.BAD_REQUEST, MALFORMED_JSON, f"the request body is not valid JSON: {reason}",
            details=details,
        )
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"]) or "request"
    if details and all(_is_body_over_length(error) for error in details):
        # A value over its named length limit (a state message, a log line ...) is a payload
        # size problem, answered like the byte-size limits the use cases check.
        return error_response(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, PayloadTooLarge.code, f"{where}: {first['msg']}",
            details=details,
        )
    return error_response(
        HTTPStatus.UNPROCESSABLE_ENTITY, VALIDATION_ERROR, f"{where}: {first['msg']}",
        details=details,
    )


def _is_body_over_length(error: Mapping[str, Any]) -> bool:
    return error["type"] in _OVER_LENGTH_TYPES and error["loc"][:1] == ["body"]


def _field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Location, message and type of each error; never the input (it may be large or secret)."""
    fields = []
    for error in errors:
        message = str(error.get("msg", ""))
        context = error.get("ctx")
        if error.get("type") == "json_invalid" and isinstance(context, Mapping):
            message = str(context.get("error") or message)
        field: dict[str, Any] = {
            "loc": [part if isinstance(part, (str, int)) else str(part)
                    for part in error.get("loc", ())],
            "msg": message,
            "type": str(error.get("type", "")),
        }
        if field["type"] in _OVER_LENGTH_TYPES and isinstance(context, Mapping):
            field["limit"] = context.get("max_length")
        elif field["type"] in _BOUND_TYPES and isinstance(context, Mapping):
            # A number over its bound (`sluice.models.bounds`): the bound, for clients to show.
            field["limit"] = next((context[k] for k in ("le", "lt", "ge", "gt") if k in context),
                                  None)
        fields.append(field)
    return fields


def _retry_after(exc: Throttled | ServiceUnavailable) -> dict[str, str]:
    """Whole seconds, at least 1 (RFC 9110 section 10.2.3 allows no fractions)."""
    seconds = exc.retry_after if math.isfinite(exc.retry_after) else 1.0
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _internal_error(request_id: str | None) -> Response:
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR,
        "the control plane failed to handle this request; it has been logged",
        details={"request_id": request_id},
    )


def _request_id(raw_event: Mapping[str, Any]) -> str | None:
    context = raw_event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    return request_id if isinstance(request_id, str) else None
