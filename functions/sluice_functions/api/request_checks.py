"""What the API checks on a request before any use case runs: the body's size and JSON shape,
the timestamps inside validated bodies, and who is calling.

The size limit is checked on the raw body before it is parsed, so an oversized request costs no
parsing; JSON is read strictly (no NaN/Infinity, bounded nesting) so that nothing a client sends
can make later serialization fail with a 5xx.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import NoneType
from typing import Any, get_args

from pydantic import BaseModel

from sluice.exceptions import PayloadTooLarge, ValidationError
from sluice.models import MAX_EVENTS_BATCH_BYTES

#: Largest request body the API reads (UTF-8 bytes). The largest legitimate body is an events
#: batch (`MAX_EVENTS_BATCH_BYTES` as compact JSON); twice that leaves room for pretty-printed or
#: escaped JSON while staying far below Lambda's 6 MB synchronous payload limit
#: (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
MAX_REQUEST_BODY_BYTES = 2 * MAX_EVENTS_BATCH_BYTES
#: Deepest nesting of arrays/objects accepted in a body. Python's json module recurses per level
#: and so does every later serializer; a bound well below the interpreter's recursion limit
#: keeps deep documents a 400 instead of a RecursionError anywhere downstream.
MAX_JSON_DEPTH = 64
#: Stored timestamps must stay this side of the calendar's edges so that retention (TTL) and
#: delay arithmetic on them cannot overflow.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(3000, 1, 1, tzinfo=UTC)
#: The caller of a request that carries no IAM identity: the embedded server on loopback.
LOCAL_CALLER = "local"

#: A JSON escape of a UTF-16 surrogate: paired ones decode to one character, a lone one to a
#: string that no UTF-8 store can write.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json_body(text: str) -> Any:
    """The JSON deserializer of the API's resolver: size limit first, then strict parsing.

    Raises `PayloadTooLarge` for a body over `MAX_REQUEST_BODY_BYTES`, and `json.JSONDecodeError`
    (which Powertools reports as a `json_invalid` validation error, mapped to 400) for anything
    that is not plain JSON within `MAX_JSON_DEPTH`.
    """
    check_body_size(text)
    return parse_sized_json_body(text)


def parse_sized_json_body(text: str) -> Any:
    """`parse_json_body` for a body whose size `check_body_size` already passed."""
    try:
        value = json.loads(text, parse_constant=_refuse_non_json_constant)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from None
    _check_depth(value, text)
    if SURROGATE_ESCAPE.search(text):
        _check_encodable(value, text)
    return value


def check_body_size(text: str) -> None:
    """Raise `PayloadTooLarge` for a body over `MAX_REQUEST_BODY_BYTES` (before any parsing)."""
    size = _utf8_size(text)
    if size > MAX_REQUEST_BODY_BYTES:
        raise PayloadTooLarge(
            f"the request body has {size} bytes; the limit is {MAX_REQUEST_BODY_BYTES}",
            details={"field": "body", "size": size, "limit": MAX_REQUEST_BODY_BYTES},
        )


def _check_encodable(value: Any, text: str) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise json.JSONDecodeError("a string holds a lone UTF-16 surrogate", text, 0) from None


def body_size(event: Any) -> int:
    """Bytes of the request's body as the client sent it (decoded from base64 if need be)."""
    return _utf8_size(event.decoded_body or "")


def _utf8_size(text: str) -> int:
    if text.isascii():  # O(1) in CPython: the common case costs no copy
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates smuggled in by a gateway
        raise json.JSONDecodeError("the body is not valid UTF-8 text", text, 0) from None


def _refuse_non_json_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and neither do DynamoDB numbers.
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _check_depth(value: Any, text: str) -> None:
    # Level by level, keeping only containers: json.loads makes exact dicts and lists, so an
    # identity test of the type replaces isinstance (an events batch's walk: ~1 us per record).
    obj, arr = dict, list
    level = [value] if type(value) is obj or type(value) is arr else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise json.JSONDecodeError(
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels", text, 0
            )
        deeper = []
        for node in level:
            for child in node.values() if type(node) is obj else node:
                kind = type(child)
                if kind is obj or kind is arr:
                    deeper.append(child)
        level = deeper


def check_timestamps(model: BaseModel, *, loc: tuple[str | int, ...] = ("body",)) -> None:
    """Raise `ValidationError` naming every timestamp in `model` that has no time zone or lies
    outside `EARLIEST_TIMESTAMP`..`LATEST_TIMESTAMP`.

    The wire models accept naive datetimes; the ports require aware UTC ones, and comparing the
    two raises TypeError deep in a use case. An ambiguous time is the client's mistake: say so.
    """
    if _timestamps_valid(model):
        return  # the common case, checked without building a location per value
    errors: list[dict[str, Any]] = []
    _collect_timestamp_errors(model, loc, errors)
    if errors:
        where = ".".join(str(part) for part in errors[0]["loc"])
        raise ValidationError(f"{where}: {errors[0]['msg']}", details=errors)


def _timestamps_valid(value: Any) -> bool:
    if isinstance(value, BaseModel):
        return _model_timestamps_check(type(value))(value)
    if isinstance(value, datetime):
        return _datetime_valid(value)
    if isinstance(value, (list, tuple)):
        for item in value:
            if not _timestamps_valid(item):
                return False
    return True


@functools.cache
def _model_timestamps_check(model_class: type[BaseModel]) -> Callable[[BaseModel], bool]:
    """Whether a model's timestamps are all valid, as a function made once per model class.

    The hot case is every record of an events batch: its datetime fields are tested inline, in
    the common case without a call; only nested models and lists recurse."""
    direct, nested = [], []
    for name in _timestamp_fields(model_class):
        annotation = model_class.model_fields[name].annotation
        is_datetime = annotation is datetime or set(get_args(annotation)) == {datetime, NoneType}
        (direct if is_datetime else nested).append(name)
    direct_names, nested_names = tuple(direct), tuple(nested)
    low, high = EARLIEST_TIMESTAMP.year, LATEST_TIMESTAMP.year - 1

    def check(model: BaseModel) -> bool:
        values = model.__dict__
        for name in direct_names:
            moment = values[name]
            if moment is None or (low < moment.year < high and moment.utcoffset() is not None):
                continue
            if not _datetime_valid(moment):
                return False
        for name in nested_names:
            child = values[name]
            if child is not None and not _timestamps_valid(child):
                return False
        return True

    return check


def _datetime_valid(value: datetime) -> bool:
    if value.utcoffset() is None:
        return False
    # A year well inside the range needs no aware comparison (each one calls utcoffset() on
    # both sides: most of this check's cost); only years at the edges are compared exactly.
    if EARLIEST_TIMESTAMP.year < value.year < LATEST_TIMESTAMP.year - 1:
        return True
    return EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP


def _collect_timestamp_errors(
    value: Any, loc: tuple[str | int, ...], errors: list[dict[str, Any]]
) -> None:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            errors.append({"loc": list(loc), "msg": "needs a time zone (for example a Z suffix)",
                           "type": "timezone_aware"})
        elif not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
            errors.append({"loc": list(loc), "msg": "must be between 1970 and 3000",
                           "type": "timestamp_range"})
    elif isinstance(value, BaseModel):
        for name in _timestamp_fields(type(value)):
            _collect_timestamp_errors(getattr(value, name), (*loc, name), errors)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _collect_timestamp_errors(item, (*loc, index), errors)


@functools.cache
def _timestamp_fields(model_class: type[BaseModel]) -> tuple[str, ...]:
    """Fields of a model whose type can hold a datetime (directly, in a list, or in a nested
    model): only these are walked, so checking a 100-record batch stays cheap."""
    return tuple(
        name
        for name, field in model_class.model_fields.items()
        if _may_hold_datetime(field.annotation, seen={model_class})
    )


def _may_hold_datetime(annotation: Any, *, seen: set[type]) -> bool:
    if annotation is datetime:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        return any(
            _may_hold_datetime(field.annotation, seen=seen | {annotation})
            for field in annotation.model_fields.values()
        )
    return any(_may_hold_datetime(arg, seen=seen) for arg in get_args(annotation))


def caller_identity(raw_event: Mapping[str, Any]) -> str:
    """Who made the request: the IAM principal API Gateway authenticated (`userArn` of the IAM
    authorizer), or `LOCAL_CALLER` for a request without one (the embedded server)."""
    context = raw_event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    iam = authorizer.get("iam") if isinstance(authorizer, Mapping) else None
    user_arn = iam.get("userArn") if isinstance(iam, Mapping) else None
    return user_arn if isinstance(user_arn, str) and user_arn else LOCAL_CALLER
