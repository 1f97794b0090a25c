"""The HTTP reporter: flow-run transitions synchronously, task runs and logs in background
batches that survive short control-plane outages.

Task runs are handed over as snapshots of their fields (a dict copy, no serialization on the
flow's thread; see `report_buffer`) and the sender thread serializes the latest one of each
when it sends (`batch_bodies`). The server keeps the highest `version` of each task run, so a
resend is harmless and an older record never overwrites a newer one. A task run whose first
record sent is already final goes in `finished_task_runs` (the server may pack those). Logs are
sent once each, resent with the same id after a failure, and deduplicated by the server.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator

# Imported with the reporter, never later: importing it during interpreter shutdown fails
# ("can't register atexit after shutdown"), and the reporter's last flush runs at exit.
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from .. import exceptions as errors
from .. import redaction
from ..models import (
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
from .batch_bodies import (
    FINISHED_FIELD,
    STREAMING_IN_FLIGHT,
    Chunk,
    Undelivered,
    chunks,
    refuses_field,
    send_streaming,
)
from .report_buffer import ReportBuffer, Taken
from .transport import backoff_delay

log = logging.getLogger("sluice.reporter")

#: Errors that mean "try again later" rather than "this request is wrong".
_TRANSIENT = (errors.ServiceUnavailable, errors.Throttled)
#: How long the sender waits for the next batch to fill while its last requests are out
#: (`HttpReporter._batch_fills`): a flow reporting faster than one batch a round trip keeps
#: the control plane busy instead of waiting for each answer before sending the next.
_REFILL_SECONDS = 0.1


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
        #: Records waiting for the sender thread.
        self.buffer = ReportBuffer()
        self._local_only: set[str] = set()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._sending = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._outage_since: float | None = None
        #: Whether the last take left Pending task runs buffered (see `_take`).
        self._held = False
        #: Pending task runs sent in the current flush interval, and when it began (`_take`).
        self._pending_sent = 0
        self._pending_window = 0.0
        #: Flushes waiting for the buffer to empty (the sender then holds nothing back).
        self._flushing = 0
        #: Final states ride with the run's last batch (off once a control plane refuses it).
        self.final_state_in_batch = True
        #: First-time final task runs go as `finished_task_runs` (off once a control plane
        #: refuses the field).
        self.finished_in_batch = True
        #: Runs waiting to send their final batch: the sender stops taking more meanwhile.
        self.ending = 0
        self._courier: ThreadPoolExecutor | None = None

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
        waiting = self.buffer.add_task_run(task_run)
        if self._thread is None:
            self._start()
        # is_set() is one attribute read; set() takes the Event's lock (~2 us) on every report
        # made while the sender has not yet picked up a full batch.
        if waiting >= self.max_batch and not self._wake.is_set():
            self._wake.set()

    def report_log(self, record: LogRecord) -> None:
        if redaction.active():
            record.message = redaction.redact(record.message)
        logs = self.buffer.logs
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
            self._flushing += 1  # the sender holds nothing back meanwhile (see `_take`)
            try:
                while self._pending(flow_run_id):
                    self._wake.set()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return
                    self._idle.wait(timeout=min(0.5, remaining) if remaining else 0.5)
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout=timeout)
        self._closed = True
        self._wake.set()
        if self._courier is not None:
            self._courier.shutdown(wait=False)

    # -- the sender thread -----------------------------------------------------------------------
    def _pending(self, flow_run_id: str | None) -> bool:
        if self._sending:
            return True
        if flow_run_id is None:
            return not self.buffer.is_empty()
        return self.buffer.holds_run(flow_run_id)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="sluice-reporter", daemon=True)
                thread.start()
                self._thread = thread
                atexit.register(self.close)

    def _run(self) -> None:
        while not self._closed:
            # Pending records held back go once old enough: look again within half an
            # interval, so they are not buffered longer than any record could be.
            self._wake.wait(self.flush_interval / 2 if self._held else self.flush_interval)
            self._wake.clear()
            delay = self._send_pending()
            if delay:
                time.sleep(delay)

    def _take(self) -> dict[str, Taken]:
        # A task run still at its first record (Pending, version 0) for less than half a flush
        # interval stays buffered: one that starts meanwhile is sent once, in its later state
        # (a map's runs otherwise went twice, Pending then final, doubling the serialization
        # here and the control plane's work). It is never dropped: it goes once it is older,
        # and a run's final batch takes everything.
        # First records also go at most one batch's worth per flush interval, oldest first.
        # They say only "queued"; a big map queues thousands at once, and sending them all
        # cost the flow (and the control plane: an open record is an item of its own, and
        # its final record then is too) as much as the runs themselves, more the slower the
        # map went. 1,000 a second still shows a queue of any size within seconds.
        # A flush (or the reporter's close) waiting for the buffer takes everything.
        now = time.monotonic()
        if now - self._pending_window >= self.flush_interval:
            self._pending_window, self._pending_sent = now, 0
        everything = self._flushing or self._closed
        batches, self._held, taken_fresh = self.buffer.take(
            held_since=None if everything else
            utcnow() - timedelta(seconds=self.flush_interval / 2),
            finished_in_batch=self.finished_in_batch, skip_runs=self._local_only,
            fresh_limit=None if everything else max(0, self.max_batch - self._pending_sent))
        self._pending_sent += taken_fresh
        return batches

    def _send_pending(self) -> float:
        """Send everything buffered; returns how long to back off after a failure."""
        with self._idle:
            if self._sending or self.ending:
                return 0.0  # a run's end sends (it holds the sender): never two at once
            self._sending = True
        try:
            return self._note_outcome(self._send_taken())
        finally:
            with self._idle:
                self._sending = False
                self._idle.notify_all()

    def _send_taken(self) -> BaseException | None:
        """Send what `_take` gives, then each next batch as it fills (up to
        `STREAMING_IN_FLIGHT` requests out meanwhile); the first transient failure (its records
        and all not sent yet are buffered again), or None."""

        failed = threading.Event()

        def send(piece: tuple[str, str | None, Chunk]) -> None:
            flow_run_id, lease, chunk = piece
            try:
                self._deliver_or_drop(flow_run_id, chunk, lease)
            except BaseException:
                failed.set()  # no next batch: what is taken already goes back
                self._wake.set()
                raise

        try:
            send_streaming(self._pieces(failed), send, self._couriers())
        except Undelivered as stopped:
            for _, _, chunk in reversed(stopped.items):  # the logs keep their order
                self.buffer.requeue(chunk.snapshots, chunk.logs)
            if not isinstance(stopped.__cause__, _TRANSIENT):
                raise stopped.__cause__ from None  # a bug, not an outage: as loud as before
            return stopped.__cause__
        return None

    def _couriers(self) -> ThreadPoolExecutor:
        """The threads that carry the sender's requests, the background one's and a run's
        last batches (made once, kept)."""
        if self._courier is None:
            self._courier = ThreadPoolExecutor(max_workers=STREAMING_IN_FLIGHT,
                                               thread_name_prefix="sluice-batch")
        return self._courier

    def _pieces(self, failed: threading.Event) -> Iterator[tuple[str, str | None, Chunk]]:
        """(flow run, lease, batch) for all that waits; then, while the flow fills batches
        faster than they go, each next one as it fills (requests are out meanwhile)."""
        while True:
            for flow_run_id, taken in self._take().items():
                lease = self.leases.get(flow_run_id)
                for chunk in chunks(taken, self.max_batch, lease):
                    yield flow_run_id, lease, chunk
            if not self._batch_fills(failed):
                return

    def _batch_fills(self, failed: threading.Event) -> bool:
        """Whether a full batch waits, now or within `_REFILL_SECONDS` (the size trigger of
        `report_task_run` wakes this); False at once when the reporter stops, a run ends, a
        send failed or a flush asks for what there is."""

        def go_on() -> bool:
            return not (self._closed or self.ending or failed.is_set())

        self._wake.clear()
        if self.buffer.waiting() < self.max_batch and go_on():
            self._wake.wait(_REFILL_SECONDS)
        return go_on() and self.buffer.waiting() >= self.max_batch

    def _deliver_or_drop(self, flow_run_id: str, chunk: Chunk, lease: str | None) -> None:
        """Deliver one batch; a refused one is dropped (and said so). Raises only the
        transient errors (the caller buffers the batch again)."""
        try:
            self.deliver(flow_run_id, chunk, lease)
        except _TRANSIENT:
            raise
        except errors.StaleLease as exc:
            self.buffer.forget(chunk.snapshots)
            log.warning("flow run %s: this attempt lost the run (%s); %d task runs and %d log "
                        "lines of it are dropped", flow_run_id, exc, len(chunk.snapshots),
                        len(chunk.logs))
        except errors.SluiceError as exc:
            log.error("the control plane refused %d task runs and %d log lines of flow run "
                      "%s: %s", len(chunk.snapshots), len(chunk.logs), flow_run_id, exc)

    def deliver(self, flow_run_id: str, chunk: Chunk, lease: str | None,
                tail: bytes = b"") -> Any:
        """Send one batch, with `tail` (more top-level fields, then the closing brace) in place
        of the body's closing brace if given; the control plane's answer. A control plane that
        does not know `finished_task_runs` gets the batch again with those records as ordinary
        task runs, and none in that field from then on."""
        try:
            answer = self.client.send_events(flow_run_id, _with_tail(chunk.body, tail),
                                             attempts=1)
        except errors.ValidationError as exc:
            if not (chunk.finished and refuses_field(exc, FINISHED_FIELD)):
                raise
            if self.finished_in_batch:
                log.info("the control plane at %s takes no %s (upgrade it)",
                         self.client.connection.api_url, FINISHED_FIELD)
            self.finished_in_batch = False
            plain = chunk.without_finished_field(lease)
            answer = self.client.send_events(flow_run_id, _with_tail(plain.body, tail),
                                             attempts=1)
        self.buffer.delivered(chunk.snapshots)
        return answer

    def _note_outcome(self, failure: BaseException | None) -> float:
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

def _with_tail(body: bytes, tail: bytes) -> bytes:
    return body[:-1] + tail if tail else body


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
