"""The HTTP reporter: flow-run transitions synchronously, task runs and logs in background
batches that survive short control-plane outages.

Task runs are reported by reference: the engine marks a task run dirty (one dict store, no
serialization on the hot path) and the sender thread serializes the latest version when it
sends. The server keeps the highest `version` of each task run, so a resend is harmless and an
older record never overwrites a newer one. Logs are sent once each, resent with the same id
after a failure, and deduplicated by the server.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from .. import exceptions as errors
from .. import redaction
from ..models import (
    MAX_EVENTS_BATCH_BYTES,
    MAX_EVENTS_PER_BATCH,
    FlowRun,
    FlowRunCreate,
    LogRecord,
    State,
    StateType,
    TaskRun,
    TransitionStatus,
    utcnow,
)
from ..leases import LeaseKeeper, LocalLease, new_lease
from .api import SluiceClient
from .transport import backoff_delay

log = logging.getLogger("sluice.reporter")

#: Errors that mean "try again later" rather than "this request is wrong".
_TRANSIENT = (errors.ServiceUnavailable, errors.Throttled)
#: How soon the sender looks again at task runs it held back (see `HttpReporter._take`).
_HELD_RECHECK_SECONDS = 0.05
#: A batch stays this far under the API's limit: the envelope and escaping take some room.
_BATCH_BYTES = int(MAX_EVENTS_BATCH_BYTES * 0.9)


class HttpReporter:
    """Reports to a control plane through a `SluiceClient`."""

    def __init__(self, client: SluiceClient, *, flush_interval: float = 0.5,
                 max_batch: int = MAX_EVENTS_PER_BATCH, max_buffered: int = 100_000,
                 transition_timeout: float = 120.0) -> None:
        self.client = client
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self.transition_timeout = transition_timeout
        #: Leases of runs this process executes for a worker (sent with each transition).
        self.leases: dict[str, str] = {}
        #: Runs the control plane already knows (a worker's run): not created again.
        self.adopted: set[str] = set()
        #: The leases of runs as this process sees them (deadlines the engine checks).
        self.local_leases: dict[str, LocalLease] = {}
        #: Renews the leases of runs this process created (a script run, subflows).
        self.keeper: LeaseKeeper | None = None
        self._dirty: dict[str, TaskRun] = {}
        self._logs: collections.deque[LogRecord] = collections.deque()
        self._local_only: set[str] = set()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._sending = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._outage_since: float | None = None
        #: Whether the last take left young Pending task runs buffered (see `_take`).
        self._held = False
        #: Final states ride with the run's last batch (off once a control plane refuses it).
        self.final_state_in_batch = True

    # -- the Reporter port -----------------------------------------------------------------------
    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        if flow_run.id in self.adopted:
            return flow_run
        # This process runs the flow run it creates: it holds the run's lease (picked here, so
        # a resent create holds the same one) and renews it until the run ends.
        lease = new_lease() if flow_run.state.type is StateType.PENDING else None
        request = FlowRunCreate(lease=lease,
            id=flow_run.id, flow_name=flow_run.flow_name, name=flow_run.name,
            parameters=redaction.redact_value(flow_run.parameters), tags=flow_run.tags,
            state=redaction.redact_state(flow_run.state),
            parent_flow_run_id=flow_run.parent_flow_run_id,
            parent_task_run_id=flow_run.parent_task_run_id,
        )
        try:
            self.client.create_flow_run(request)
        except errors.Conflict:
            pass  # created by an earlier attempt whose answer was lost
        except errors.ValidationError as exc:
            if lease is None or "lease" not in f"{exc} {exc.details}":
                raise
            # A control plane from before leases: the run is reported, but not monitored.
            log.warning("the control plane at %s does not lease script runs (upgrade it): "
                        "flow run %r is not monitored", self.client.connection.api_url,
                        flow_run.name)
            self.client.create_flow_run(request.model_copy(update={"lease": None}))
            return flow_run
        except _TRANSIENT as exc:
            self._local_only.add(flow_run.id)
            log.warning("control plane at %s is unreachable (%s); flow run %r is tracked "
                        "locally only", self.client.connection.api_url, exc, flow_run.name)
            return flow_run
        if lease is not None:
            self.leases[flow_run.id] = lease
            if self.keeper is None:
                self.keeper = LeaseKeeper(self.client)
            self.local_leases[flow_run.id] = self.keeper.hold(flow_run.id, lease)
        return flow_run

    def lease_of(self, flow_run_id: str) -> LocalLease | None:
        return self.local_leases.get(flow_run_id)

    def set_flow_run_state(self, flow_run: FlowRun, state: State, transition_id: str) -> State:
        if flow_run.id in self._local_only:
            return state
        deadline = time.monotonic() + self.transition_timeout
        shown = redaction.redact_state(state)  # secrets stay in this process
        if state.is_terminal and self.final_state_in_batch:
            # The last batch carries the final state: one request, records first (issue 20).
            answer = self._end_with_last_batch(flow_run, state, shown, transition_id, deadline)
            if answer is not None:
                return answer
        if state.is_terminal:
            # Task runs and logs land before the run ends, so watchers see them complete.
            self.flush(timeout=max(0.0, deadline - time.monotonic()), flow_run_id=flow_run.id)
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self.client.set_flow_run_state(
                    flow_run.id, shown, transition_id, lease=self.leases.get(flow_run.id))
                break
            except errors.Conflict as exc:  # a stale lease: another attempt owns the run
                raise errors.RunAborted(f"the control plane refused {state.name}: {exc}") from exc
            except _TRANSIENT as exc:
                if time.monotonic() >= deadline:
                    log.error("could not report %s for flow run %r: %s", state.name,
                              flow_run.name, exc)
                    return state
                time.sleep(min(backoff_delay(attempt, base=0.25, cap=5.0),
                               max(0.0, deadline - time.monotonic())))
        return self._accepted(state, answer)

    def _accepted(self, state: State, answer: Any) -> State:
        if answer.status is TransitionStatus.ACCEPT:
            return answer.state
        raise errors.RunAborted(
            f"the control plane refused {state.name} ({answer.status.value}): "
            f"{answer.reason or answer.state.name}")

    def _end_with_last_batch(self, flow_run: FlowRun, state: State, shown: State,
                             transition_id: str, deadline: float) -> State | None:
        """The final state sent with the run's last records; None: send it the old way."""
        from .final_batch import GaveUp, StateFieldRefused, send_with_final_state

        try:
            accepted = send_with_final_state(self, flow_run.id, shown, transition_id, deadline)
        except GaveUp:
            return state  # unreachable until the deadline: as a failed report (logged)
        except StateFieldRefused:
            log.info("the control plane at %s takes no state with a batch (upgrade it)",
                     self.client.connection.api_url)
            self.final_state_in_batch = False
            return None
        except errors.StaleLease as exc:  # another attempt owns the run
            raise errors.RunAborted(f"the control plane refused {state.name}: {exc}") from exc
        if getattr(accepted, "transition", None) is None:  # a control plane ignoring the field
            self.final_state_in_batch = False
            return None
        return self._accepted(state, accepted.transition)

    def report_task_run(self, task_run: TaskRun) -> None:
        dirty = self._dirty
        dirty[task_run.id] = task_run
        if self._thread is None:
            self._start()
        # is_set() is one attribute read; set() takes the Event's lock (~2 us) on every report
        # made while the sender has not yet picked up a full batch.
        if len(dirty) >= self.max_batch and not self._wake.is_set():
            self._wake.set()

    def report_log(self, record: LogRecord) -> None:
        if redaction.active():
            record.message = redaction.redact(record.message)
        logs = self._logs
        logs.append(record)
        if self._thread is None:
            self._start()
        if len(logs) > self.max_buffered:
            logs.popleft()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                log.warning("the control plane is unreachable and %d log lines are buffered; "
                            "dropped %d of the oldest", self.max_buffered, self._dropped)
        elif len(logs) >= self.max_batch and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float | None = None, flow_run_id: str | None = None) -> None:
        """Wait until everything buffered (of one run, if given) is delivered or `timeout`."""
        if self._thread is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending(flow_run_id):
                self._wake.set()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._idle.wait(timeout=min(0.5, remaining) if remaining else 0.5)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout=timeout)
        self._closed = True
        self._wake.set()

    # -- the sender thread -----------------------------------------------------------------------
    def _pending(self, flow_run_id: str | None) -> bool:
        if self._sending:
            return True
        if flow_run_id is None:
            return bool(self._dirty or self._logs)
        return any(t.flow_run_id == flow_run_id for t in list(self._dirty.values())) or any(
            r.flow_run_id == flow_run_id for r in list(self._logs))

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="sluice-reporter", daemon=True)
                thread.start()
                self._thread = thread
                atexit.register(self.close)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            delay = self._send_pending()
            if delay:
                time.sleep(delay)

    def _take(self) -> dict[str, tuple[list[TaskRun], list[LogRecord]]]:
        batches: dict[str, tuple[list[TaskRun], list[LogRecord]]] = {}
        # A task run still at its first record (Pending, version 0) for less than half a flush
        # interval stays buffered: records go by reference, so one that starts meanwhile is
        # sent once, in its later state (a map's runs otherwise went twice, Pending then final,
        # doubling the serialization here and the control plane's work). It is never dropped:
        # it goes once it is older, and a run's final batch takes everything. Half an interval
        # plus a recheck keeps it buffered no longer than any record could be before.
        held_since = utcnow() - timedelta(seconds=self.flush_interval / 2)
        pending = StateType.PENDING
        self._held = False
        dirty = self._dirty
        for key in list(dirty):
            task_run = dirty.get(key)
            if task_run is None:
                continue
            if task_run.version == 0 and task_run.state.type is pending and \
                    task_run.state.timestamp > held_since:
                self._held = True
                continue
            task_run = dirty.pop(key, None)
            if task_run is not None and task_run.flow_run_id not in self._local_only:
                batches.setdefault(task_run.flow_run_id, ([], []))[0].append(task_run)
        logs = self._logs
        for _ in range(len(logs)):
            record = logs.popleft()
            if record.flow_run_id not in self._local_only:
                batches.setdefault(record.flow_run_id, ([], []))[1].append(record)
        return batches

    def _send_pending(self) -> float:
        """Send everything buffered; returns how long to back off after a failure."""
        with self._idle:
            self._sending = True
        try:
            batches = self._take()
            failed_at = None
            for flow_run_id, (task_runs, logs) in batches.items():
                if failed_at is not None:
                    self._requeue(task_runs, logs)
                    continue
                lease = self.leases.get(flow_run_id)
                for body, sent_runs, sent_logs in _chunks(task_runs, logs, self.max_batch,
                                                          lease):
                    if failed_at is not None:
                        self._requeue(sent_runs, sent_logs)
                        continue
                    try:
                        self.client.send_events(flow_run_id, body, attempts=1)
                    except _TRANSIENT as exc:
                        failed_at = exc
                        self._requeue(sent_runs, sent_logs)
                    except errors.StaleLease as exc:
                        log.warning("flow run %s: this attempt lost the run (%s); %d task runs "
                                    "and %d log lines of it are dropped", flow_run_id, exc,
                                    len(sent_runs), len(sent_logs))
                    except errors.SluiceError as exc:
                        log.error("the control plane refused %d task runs and %d log lines of "
                                  "flow run %s: %s", len(sent_runs), len(sent_logs),
                                  flow_run_id, exc)
            # Records held back: look again soon (the size trigger stays set while they wait).
            return self._note_outcome(failed_at) or (_HELD_RECHECK_SECONDS if self._held else 0.0)
        finally:
            with self._idle:
                self._sending = False
                self._idle.notify_all()

    def _note_outcome(self, failure: Exception | None) -> float:
        if failure is None:
            if self._outage_since is not None:
                log.warning("control plane reachable again after %.1f s; buffered reports sent",
                            time.monotonic() - self._outage_since)
            self._outage_since = None
            return 0.0
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("control plane unreachable (%s); buffering task runs and logs", failure)
        elapsed = time.monotonic() - self._outage_since
        return min(5.0, 0.25 + elapsed / 4)

    def _requeue(self, task_runs: list[TaskRun], logs: list[LogRecord]) -> None:
        for task_run in task_runs:
            self._dirty.setdefault(task_run.id, task_run)
        self._logs.extendleft(reversed(logs))


def _chunks(task_runs: list[TaskRun], logs: list[LogRecord], max_count: int,
            lease: str | None = None) -> Any:
    """Request bodies within the API's count and size limits (raw JSON, built once), each
    naming the attempt's lease when there is one (a stale attempt's batch gets 409)."""
    tail = "]" + (f',"lease":{json.dumps(lease)}' if lease else "") + "}"
    items = [("task_runs", t, redaction.redact_task_run(t).model_dump_json())
             for t in task_runs] + \
            [("logs", r, r.model_dump_json()) for r in logs]
    start = 0
    while start < len(items):
        size, end = 30, start
        while end < len(items) and end - start < max_count and \
                (end == start or size + len(items[end][2]) + 1 <= _BATCH_BYTES):
            size += len(items[end][2]) + 1
            end += 1
        chunk = items[start:end]
        runs = [obj for kind, obj, _ in chunk if kind == "task_runs"]
        lines = [obj for kind, obj, _ in chunk if kind == "logs"]
        body = ('{"task_runs":[' + ",".join(j for k, _, j in chunk if k == "task_runs") +
                '],"logs":[' + ",".join(j for k, _, j in chunk if k == "logs") + tail)
        yield body.encode(), runs, lines
        start = end


_shared: dict[tuple[str, str | None], HttpReporter] = {}
_shared_lock = threading.Lock()


def shared_http_reporter(connection: Any) -> HttpReporter:
    """One reporter (one sender thread) per control plane per process."""
    key = (connection.api_url, connection.profile)
    with _shared_lock:
        reporter = _shared.get(key)
        if reporter is None:
            reporter = _shared[key] = HttpReporter(SluiceClient(connection))
        return reporter
