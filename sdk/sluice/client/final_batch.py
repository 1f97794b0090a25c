"""A flow run's final state, sent with its last batch of task runs and logs (issue 20).

The events route applies a batch's `state` after storing its records, with the same rules,
lease check and transition id as the state route: one request instead of a last batch and a
state change, and the records still land before the run ends. A control plane that does not
know the field refuses the batch (422, nothing stored); the reporter then sends as before.
One that refuses `finished_task_runs` gets the batch again with those records as ordinary task
runs (`HttpReporter.deliver`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import exceptions as errors
from ..models import EventsAccepted, State
from .batch_bodies import Chunk, Undelivered, chunks, empty_body, send_in_order
from .transport import backoff_delay

if TYPE_CHECKING:
    from .reporter import HttpReporter

log = logging.getLogger("sluice.reporter")

#: Errors that mean "try again later" rather than "this request is wrong".
_TRANSIENT = (errors.ServiceUnavailable, errors.Throttled)


class StateFieldRefused(Exception):
    """The control plane does not take a state with a batch: report the old way."""


class GaveUp(Exception):
    """The control plane stayed unreachable until the deadline (the records are buffered
    again; the state is not reported, as when the state route stays unreachable)."""


def send_with_final_state(reporter: HttpReporter, flow_run_id: str, state: State,
                          transition_id: str, deadline: float) -> Any:
    """Send the run's buffered records, the last request carrying `state` (already redacted).

    Holds the reporter's sender (no batch of the run may overtake the state). Returns the
    answer (`EventsAccepted`) of the request that carried the state. Raises `GaveUp` when the
    deadline passed during an outage (the records are buffered again), `StaleLease` (another
    attempt owns the run) and `StateFieldRefused` (an older control plane; the records are
    buffered again)."""
    with reporter._idle:  # one sender at a time: the background one finishes its batch first
        reporter.ending += 1
        reporter._wake.set()  # a background sender waiting for its next batch stops waiting
        try:
            while reporter._sending:
                reporter._idle.wait(timeout=0.5)
        finally:
            reporter.ending -= 1
        reporter._sending = True
    try:
        taken = reporter.buffer.take_run(flow_run_id,
                                         finished_in_batch=reporter.finished_in_batch)
        lease = reporter.leases.get(flow_run_id)
        tail = (',"state":' + state.model_dump_json() +
                ',"transition_id":' + json.dumps(transition_id) + "}").encode()

        def send(chunk: Chunk, last: bool) -> EventsAccepted:
            return _send(reporter, flow_run_id, chunk, lease, tail if last else b"", deadline)

        return send_in_order(_at_least_one(chunks(taken, reporter.max_batch, lease), lease),
                             send, reporter._couriers())
    except Undelivered as stopped:
        cause = stopped.__cause__
        if isinstance(cause, (GaveUp, StateFieldRefused)):
            _requeue(reporter, stopped.items)
        elif isinstance(cause, errors.StaleLease):
            for chunk in stopped.items:
                reporter.buffer.forget(chunk.snapshots)
        raise cause from None
    finally:
        with reporter._idle:
            reporter._sending = False
            reporter._idle.notify_all()


def _send(reporter: HttpReporter, flow_run_id: str, chunk: Chunk, lease: str | None,
          tail: bytes, deadline: float) -> EventsAccepted:
    attempt = 0
    while True:
        attempt += 1
        try:
            return reporter.deliver(flow_run_id, chunk, lease, tail)
        except _TRANSIENT as exc:
            if time.monotonic() >= deadline:
                log.error("could not report the end of flow run %s: %s", flow_run_id, exc)
                raise GaveUp(str(exc)) from exc
            time.sleep(min(backoff_delay(attempt, base=0.25, cap=5.0),
                           max(0.0, deadline - time.monotonic())))
        except errors.ValidationError as exc:
            if _about_the_state_field(exc):
                raise StateFieldRefused(str(exc)) from exc
            raise


def _about_the_state_field(exc: errors.ValidationError) -> bool:
    """A refusal of the batch's top-level `state`/`transition_id` (an older control plane)."""
    for detail in exc.details or []:
        loc = [part for part in (detail.get("loc") or []) if part != "body"] \
            if isinstance(detail, dict) else []
        if loc[:1] in (["state"], ["transition_id"]) and len(loc) <= 2:
            return True
    return False


def _at_least_one(pieces: Iterator[Chunk], lease: str | None) -> Iterator[Chunk]:
    """The chunks, or one without records: the state goes even when nothing else does."""
    sent = False
    for chunk in pieces:
        sent = True
        yield chunk
    if not sent:
        yield Chunk(empty_body(lease), [], [], [])


def _requeue(reporter: HttpReporter, pending: list[Chunk]) -> None:
    for chunk in reversed(pending):  # the logs keep their order
        reporter.buffer.requeue(chunk.snapshots, chunk.logs)
