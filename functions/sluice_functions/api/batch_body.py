"""The events routes' body, validated straight from the request's JSON text (issue 20).

Powertools turns a JSON body into Python objects (`parse_json_body`: `json.loads` and a walk
checking its depth) and then validates those; for an events batch of hundreds of records the
parse and the walk cost about as much as the validation itself, and the records of a flow's
last batches are what a flow waits for at its end. So the API's deserializer first offers the
text of an events-batch request to pydantic-core, which validates it in one pass
(`validate_json`), and the routes' body type (`EventsBatchBody`, documented exactly as
`EventsBatch`) lets that result through.

That fast path only takes a body whose outcome cannot differ from the usual path's: it
validates with unknown fields refused (the usual path ignores them, but checks their JSON),
every timestamp required to carry a time zone and to lie within the API's range (the checks
`check_timestamps` makes after the usual path, done here by pydantic-core in the same pass),
and gives way for free-form state `details` (their depth and numbers are the usual path's
checks) and for escaped UTF-16 surrogates. Any body it does not take, or that fails its
validation, goes the usual way, so every refusal is the same answer (400, 413, 422 ...) as
before, and an accepted batch holds the same records.

A body with each task-run record alone on a line (the SDK's reporter frames its batches so;
line breaks between tokens are JSON whitespace) is validated record by record instead
(`_framed`), and each record's own text goes to the store with it (`ReceivedJson`): the
embedded server's SQLite store keeps that text as the record's document instead of
serializing the model again, a quarter of its time per record.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, Field, PrivateAttr, WrapValidator
from pydantic_core import SchemaValidator

from sluice.models import EventsBatch, TaskRun

from ..ports import ReceivedJson

from .request_checks import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    SURROGATE_ESCAPE,
    check_body_size,
    check_timestamps,
    parse_json_body,
    parse_sized_json_body,
)

#: Whether this pydantic takes `extra=` at validation (recent releases); with an older one every
#: body takes the usual path.
_EXTRA_OVERRIDE = "extra" in inspect.signature(EventsBatch.model_validate_json).parameters
#: Paths of the routes whose body is an `EventsBatchBody` (a run's own and a pool's route).
_EVENTS_BATCH_PATH = re.compile(r"(?:/pools/[^/]+)?/flow-runs/[^/]+/events")


class CheckedEventsBatch(EventsBatch):
    """An events batch the fast path validated whole, its timestamps included (aware, within
    `EARLIEST_TIMESTAMP`..`LATEST_TIMESTAMP`): no second walk over its records checks them."""

    #: Each task-run record's text, when the body carried one a line (`_framed`).
    _received: ReceivedJson | None = PrivateAttr(default=None)


def received_json(batch: EventsBatch) -> ReceivedJson | None:
    """The JSON text of the batch's task-run records as the request carried them, each
    validated on its own (a framed body, see `_framed`); None otherwise."""
    return batch._received if isinstance(batch, CheckedEventsBatch) else None


def check_batch_timestamps(batch: EventsBatch) -> None:
    """`check_timestamps` for a batch the fast path did not check already."""
    if not isinstance(batch, CheckedEventsBatch):
        check_timestamps(batch)


@functools.cache
def _checking_validator() -> SchemaValidator | None:
    """A validator of `CheckedEventsBatch` that also refuses unknown fields and naive or
    out-of-range timestamps at every level, building the same models; None with a
    pydantic-core that cannot build one (then the fast path validates as `EventsBatch`)."""
    return _tightened(CheckedEventsBatch, _NAIVE_NESTED_TIME)


@functools.cache
def _framed_validators() -> tuple[SchemaValidator, SchemaValidator] | None:
    """The tightened validators of a framed body's skeleton and of one task-run record."""
    skeleton = _tightened(_FramedSkeleton, _NAIVE_STATE_TIME)
    record = _tightened(TaskRun, _NAIVE_RECORD_TIME)
    return (skeleton, record) if skeleton is not None and record is not None else None


def _tightened(model: type[BaseModel], naive_probe: str) -> SchemaValidator | None:
    """`model`'s validator, refusing unknown fields and naive or out-of-range timestamps."""
    schema = copy.deepcopy(model.__pydantic_core_schema__)
    _tighten(schema)
    try:
        # Not the nested models' own validators (pydantic-core reuses those by default):
        # they would skip the tightened nested schemas.
        validator = SchemaValidator(schema, None, _use_prebuilt=False)  # type: ignore[call-arg]
    except TypeError:
        return None
    try:  # a pydantic-core that took the option but reused them anyway must not be trusted
        validator.validate_json(naive_probe)
    except ValueError:
        return validator
    return None


#: A task run whose only fault is a timestamp without a time zone in its state.
_NAIVE_RECORD_TIME = ('{"id":"t","flow_run_id":"f","task_name":"t","name":"t-0",'
                      '"state":{"type":"RUNNING","timestamp":"2026-01-01T00:00:00"}}')
#: A batch whose only fault is a nested timestamp without a time zone.
_NAIVE_NESTED_TIME = '{"task_runs":[' + _NAIVE_RECORD_TIME + ']}'
#: A batch skeleton whose only fault is its state's timestamp without a time zone.
_NAIVE_STATE_TIME = ('{"transition_id":"t",'
                     '"state":{"type":"RUNNING","timestamp":"2026-01-01T00:00:00"}}')


def _tighten(node: Any) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "datetime":
            node.update(tz_constraint="aware", ge=EARLIEST_TIMESTAMP, lt=LATEST_TIMESTAMP)
        elif kind == "model-fields":
            node["extra_behavior"] = "forbid"
        for child in node.values():
            _tighten(child)
    elif isinstance(node, list):
        for child in node:
            _tighten(child)


class Prevalidated:
    """A batch the deserializer already validated from the request's text."""

    __slots__ = ("batch",)

    def __init__(self, batch: EventsBatch) -> None:
        self.batch = batch


def _pass_prevalidated(value: Any, handler: Callable[[Any], EventsBatch]) -> EventsBatch:
    if type(value) is Prevalidated:
        return value.batch
    return handler(value)


#: The body of the events routes: validated and documented as an `EventsBatch`; one that the
#: deserializer validated already (`read_json_body`) is taken as it is.
EventsBatchBody = Annotated[EventsBatch, WrapValidator(_pass_prevalidated), Body()]


def json_body_reader(current_event: Callable[[], Any], *,
                     keep_record_text: bool = False) -> Callable[[str], Any]:
    """The resolver's JSON deserializer: `parse_json_body`, except for an events batch that
    the fast path takes. `current_event` gives the request being served (its method and path
    say which route the body is for). `keep_record_text`: the store keeps the records' texts
    (`ReceivedJson`), so framed bodies are validated record by record to keep them (that
    costs ~1 us a record more than the one pass, for nothing when the store does not)."""

    def read_json_body(text: str) -> Any:
        event = current_event()
        if event.http_method != "POST" or not _EVENTS_BATCH_PATH.fullmatch(event.path):
            return parse_json_body(text)
        check_body_size(text)  # an oversized body costs no parsing, on either path
        batch = prevalidated(text, framed=keep_record_text)
        return batch if batch is not None else parse_sized_json_body(text)

    return read_json_body


def prevalidated(text: str, *, framed: bool = True) -> Prevalidated | None:
    """The batch in `text` if the fast path takes it, else None (the usual path decides).
    `framed`: a body with one task-run record a line keeps the records' texts (`_framed`)."""
    if "\\u" in text and SURROGATE_ESCAPE.search(text):
        return None  # a lone surrogate is refused by the usual path's own check
    if not _EXTRA_OVERRIDE:
        return None
    batch = _framed(text) if framed and "\n" in text else None
    if batch is None:
        checking = _checking_validator()
        try:
            # Unknown fields refused: with only known fields and no details, nothing in the
            # body nests deeper than a few levels or holds a number the usual path would refuse.
            batch = checking.validate_json(text) if checking is not None else \
                EventsBatch.model_validate_json(text, extra="forbid")
        except Exception:  # noqa: BLE001 - whatever it is, the usual path answers it as before
            return None
    if batch.state is not None and batch.state.details is not None:
        return None
    for records in (batch.task_runs, batch.finished_task_runs):
        for task_run in records:
            if task_run.state.details is not None:
                return None
    return Prevalidated(batch)


class _FramedSkeleton(EventsBatch):
    """A framed body with each task-run record replaced by its placeholder (`_framed`)."""

    task_runs: list[str] = Field(default_factory=list)  # type: ignore[assignment]
    finished_task_runs: list[str] = Field(default_factory=list)  # type: ignore[assignment]


def _framed(text: str) -> CheckedEventsBatch | None:
    """The batch of a framed body, its task-run records validated one by one and their texts
    kept (`received_json`), or None when the body is not framed so (the one-pass path then).

    A framed body is ordinary JSON with each task-run record alone on a line: the lines in
    between (`{"task_runs":[`, `,`, `],"finished_task_runs":[`, the rest) hold the other
    fields. The SDK's reporter sends its batches so (`sluice.client.batch_bodies`). A raw line
    break can only be whitespace between two tokens in JSON, so with each record's line
    replaced by a placeholder string the skeleton is valid exactly when the body is, and
    validating the skeleton and each record on its own gives what validating the body gives,
    provided each placeholder is an element of the skeleton's task-run lists exactly once. The
    placeholders are random for each request, so the body cannot name one elsewhere (a
    duplicated key that drops a list, a record where a timestamp goes: the usual way then).
    The store can then keep each record's own text instead of serializing its model again."""
    validators = _framed_validators()
    lines = text.split("\n")
    records = lines[1::2]
    if validators is None or not records or len(lines) % 2 == 0 or \
            not records[0].startswith("{"):
        return None
    skeleton_validator, record_validator = validators
    token = secrets.token_hex(8)
    placeholders = [f"{token}-{i}" for i in range(len(records))]
    lines[1::2] = (f'"{placeholder}"' for placeholder in placeholders)
    try:
        skeleton = skeleton_validator.validate_json("\n".join(lines))
        order = {placeholder: i for i, placeholder in enumerate(placeholders)}
        listed = skeleton.task_runs + skeleton.finished_task_runs
        if len(listed) != len(records) or {*listed} != order.keys():
            return None
        models = list(map(record_validator.validate_json, records))
    except ValueError:
        return None
    fields = {name: getattr(skeleton, name) for name in EventsBatch.model_fields}
    fields["task_runs"] = [models[order[p]] for p in skeleton.task_runs]
    fields["finished_task_runs"] = [models[order[p]] for p in skeleton.finished_task_runs]
    batch = CheckedEventsBatch.model_construct(skeleton.model_fields_set, **fields)
    batch._received = ReceivedJson(zip(models, records))
    return batch
