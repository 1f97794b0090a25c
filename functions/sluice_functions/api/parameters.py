"""Path and query parameters shared by the routes, their bounds, and the OpenAPI description of
the error answers.

Bounds on path and query strings keep absurd values (a 10 kB "id") from ever reaching a store,
where they would hit backend key-size limits instead of a clear 422.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from sluice.exceptions import ValidationError
from sluice.models import MAX_PAGE_LIMIT, ErrorBody
from sluice.models.names import LEGACY_POOL_NAME_PATTERN, lookup_validator

from .request_checks import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

#: Longest id accepted in a path (server ids are 36-character UUIDs; client ids are at most 64).
MAX_ID_CHARS = 64
#: Longest flow or deployment name (as `sluice.models.DeploymentCreate` allows).
MAX_NAME_CHARS = 256
#: Longest pool name (`sluice.models.names.MAX_POOL_NAME_CHARS`).
MAX_POOL_NAME_CHARS = 40
#: Longest pagination cursor accepted back (adapters' cursors are far shorter).
MAX_CURSOR_CHARS = 2048
#: Page size when the request names none.
DEFAULT_PAGE_LIMIT = 50

FlowRunId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, description="Flow-run id.")]
DeploymentId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_CHARS, description="Deployment id.")
]
# Names in paths look records up: they take every name stored under earlier rules (so old
# records stay reachable), but never control or invisible characters (`sluice.models.names`).
FlowName = Annotated[str, Path(min_length=1, max_length=MAX_NAME_CHARS, description="Flow name."),
                     lookup_validator("flow")]
DeploymentName = Annotated[
    str, Path(min_length=1, max_length=MAX_NAME_CHARS, description="Deployment name."),
    lookup_validator("deployment"),
]
#: A pool in a path: any name pools had before the `-dlq` rule, so `pool ls` still shows a pool
#: created then (new pools are checked by `sluice.models.PoolCreate`).
PoolName = Annotated[str, Path(pattern=LEGACY_POOL_NAME_PATTERN, max_length=MAX_POOL_NAME_CHARS,
                               description="Pool name.")]
PageLimit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_LIMIT, description=f"Page size, 1..{MAX_PAGE_LIMIT}.")
]
PageCursor = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_CURSOR_CHARS,
          description="`next_cursor` of the previous page of the same query."),
]

_ERROR_DESCRIPTIONS = {
    400: "Malformed request (the body is not JSON, or could not be read).",
    404: "No such resource, or no such route.",
    409: "Conflict: a lost race, a stale lease, or a run that cannot be claimed.",
    413: "A payload over its named limit (body, parameters, state message, log line, batch).",
    415: "The body is not JSON.",
    422: "A field is invalid; `details` lists each one with its location.",
    429: "The backend throttled the request; retry after `Retry-After` seconds.",
    503: "The backend is unavailable; retry after `Retry-After` seconds.",
}
#: Every route can be refused for these reasons.
_COMMON_ERRORS = (400, 413, 415, 422, 429, 503)


def documented(success: int, *errors: int) -> dict[int, Any]:
    """The OpenAPI `responses` of a route: its success answer (schema from the return type) and
    the `ErrorBody` answers it can give."""
    responses: dict[int, Any] = {success: {"description": "Success."}}
    for status in sorted({*errors, *_COMMON_ERRORS}):
        responses[status] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorBody}},
        }
    return responses


def utc_query_time(value: datetime | None, name: str) -> datetime | None:
    """A query-string time as aware UTC: a time without a zone is read as UTC (the usual meaning
    of `?scheduled_after=2025-01-01`); times outside the storable range are refused (422)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
        raise ValidationError(
            f"query.{name}: must be between 1970 and 3000",
            details=[{"loc": ["query", name], "msg": "must be between 1970 and 3000",
                      "type": "timestamp_range"}],
        )
    return value.astimezone(UTC)
