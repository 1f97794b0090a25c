"""Reading stored records back into models, for every store adapter.

A stored record can stop validating as its model: written by another version of Sluice, by hand,
or before a bound existed (a float stored as JSON null because it was infinite ...). Such a
record must not stop everyone else's work, so:

* a list (what ticks and list routes read) skips it, logging its id (`unreadable_records`
  counts them per process, for tests and figures);
* reading it by id raises `UnreadableRecord`, a 409 whose message names the record and the
  first field that failed, instead of a 500;
* a write checks first that what it stores reads back (`written_record`), so the control plane
  never stores such a record itself.

Records that do read get one repair: a naive time (no zone; the control plane never writes one)
is read as UTC, as the ports promise, so comparing it with the control plane's clock cannot
fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pydantic

from sluice.exceptions import SluiceError, ValidationError
from sluice.models import Deployment, FlowRun, State

from ..timemath import UTC

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=pydantic.BaseModel)
R = TypeVar("R")

#: Records skipped by lists in this process (by kind): read by tests and the fuzzer's figures.
unreadable_records: dict[str, int] = {}


class UnreadableRecord(SluiceError):
    """A stored record no longer validates as its model (see the module docstring)."""

    status_code = 409
    code = "unreadable_record"


def _problem(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError) and exc.errors():
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "record"
        return f"{where}: {first.get('msg', 'invalid')}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def read_record(model: type[M], text: str | bytes, *, kind: str, ref: str) -> M:
    """`model` from its stored JSON, or `UnreadableRecord` naming the record `kind` `ref`."""
    try:
        return with_aware_times(model.model_validate_json(text))
    except (pydantic.ValidationError, ValueError) as exc:
        raise UnreadableRecord(
            f"the stored {kind} {ref} cannot be read ({_problem(exc)}); it was written by "
            "another version or damaged: restore or delete it",
            details={"kind": kind, "id": ref, "problem": _problem(exc)},
        ) from None


def written_record(model: type[M], text: str | bytes, *, kind: str, ref: str) -> M:
    """The record a write is about to store, as it will be read back; `ValidationError` (422)
    when it would not read back (an infinite float is stored as JSON null, for one)."""
    try:
        return model.model_validate_json(text)
    except (pydantic.ValidationError, ValueError) as exc:
        raise ValidationError(
            f"{kind} {ref} cannot be stored: it would not read back ({_problem(exc)})",
            details={"kind": kind, "id": ref, "problem": _problem(exc)},
        ) from None


def readable(rows: Iterable[R], parse: Callable[[R], M], *, kind: str,
             ref: Callable[[R], Any]) -> list[M]:
    """`parse` of each row, skipping (and logging) the rows that cannot be read."""
    parsed: list[M] = []
    for row in rows:
        try:
            parsed.append(with_aware_times(parse(row)))
        except (pydantic.ValidationError, ValueError, UnreadableRecord) as exc:
            unreadable_records[kind] = unreadable_records.get(kind, 0) + 1
            try:
                name = ref(row)
            except Exception:  # noqa: BLE001 - the id itself may be what is broken
                name = "?"
            logger.error("skipped the stored %s %s: it cannot be read (%s)", kind, name,
                         _problem(exc))
    return parsed


_RUN_TIMES = ("scheduled_at", "start_time", "end_time", "created", "updated", "heartbeat_at",
              "enqueued_at", "lease_expires_at")
_STATE_TIMES = ("timestamp", "scheduled_time")


def with_aware_times(record: M) -> M:
    """The record with its naive times read as UTC (runs, their state, deployments; a schedule's
    naive anchor means its own time zone and is left alone)."""
    if isinstance(record, FlowRun):
        update = _utc_fields(record, _RUN_TIMES)
        state = with_aware_times(record.state)
        if state is not record.state:
            update["state"] = state
        return record.model_copy(update=update) if update else record
    if isinstance(record, State):
        update = _utc_fields(record, _STATE_TIMES)
        return record.model_copy(update=update) if update else record
    if isinstance(record, Deployment):
        update = _utc_fields(record, ("created", "updated"))
        return record.model_copy(update=update) if update else record
    return record


def _utc_fields(record: pydantic.BaseModel, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: value.replace(tzinfo=UTC) for name in names
            if (value := getattr(record, name, None)) is not None and value.tzinfo is None}
