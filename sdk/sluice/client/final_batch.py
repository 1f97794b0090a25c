"""A flow run's final state, sent with its last batch of task runs and logs (issue 20).

The events route applies a batch's `state` after storing its records, with the same rules,
lease check and transition id as the state route: one request instead of a last batch and a
state change, and the records still land before the run ends. A control plane that does not
know the field refuses the batch (422, nothing stored); the reporter then sends as before.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from .. import exceptions as errors
from ..models import EventsAccepted, LogRecord, State, TaskRun
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
    from .reporter import _chunks

    with reporter._idle:  # one sender at a time: the background one finishes its batch first
        while reporter._sending:
            reporter._idle.wait(timeout=0.5)
        reporter._sending = True
    task_runs: list[TaskRun] = []
    logs: list[LogRecord] = []
    try:
        task_runs, logs = _take_run(reporter, flow_run_id)
        lease = reporter.leases.get(flow_run_id)
        chunks = list(_chunks(task_runs, logs, reporter.max_batch, lease)) or \
            [(_empty_body(lease), [], [])]
        extra = ',"state":' + state.model_dump_json() + \
            ',"transition_id":' + json.dumps(transition_id) + "}"
        for index, (body, sent_runs, sent_logs) in enumerate(chunks):
            last = index == len(chunks) - 1
            if last:
                body = body[:-1] + extra.encode()
            try:
                answer = _send(reporter, flow_run_id, body, deadline)
            except GaveUp:
                _requeue_from(reporter, chunks[index:])
                raise
            if last:
                return answer
        raise AssertionError("unreachable: there is always a last chunk")
    except StateFieldRefused:
        reporter._requeue(task_runs, logs)
        raise
    finally:
        with reporter._idle:
            reporter._sending = False
            reporter._idle.notify_all()


def _send(reporter: HttpReporter, flow_run_id: str, body: bytes,
          deadline: float) -> EventsAccepted:
    attempt = 0
    while True:
        attempt += 1
        try:
            return reporter.client.send_events(flow_run_id, body, attempts=1)
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


def _take_run(reporter: HttpReporter,
              flow_run_id: str) -> tuple[list[TaskRun], list[LogRecord]]:
    """Take the buffered records of one run (other runs' stay buffered, in order)."""
    task_runs = []
    for key in list(reporter._dirty):
        task_run = reporter._dirty.get(key)
        if task_run is not None and task_run.flow_run_id == flow_run_id:
            reporter._dirty.pop(key, None)
            task_runs.append(task_run)
    buffered = reporter._logs
    mine, others = [], []
    for _ in range(len(buffered)):
        record = buffered.popleft()
        (mine if record.flow_run_id == flow_run_id else others).append(record)
    buffered.extendleft(reversed(others))  # older than anything appended meanwhile
    return task_runs, mine


def _requeue_from(reporter: HttpReporter, chunks: list[Any]) -> None:
    for _, sent_runs, sent_logs in reversed(chunks):
        reporter._requeue(sent_runs, sent_logs)


def _empty_body(lease: str | None) -> bytes:
    return json.dumps({"task_runs": [], "logs": [], **({"lease": lease} if lease else {})},
                      separators=(",", ":")).encode()
