"""The per-worker heartbeat: one loop per worker process renews the leases of every run it holds
with one request per interval (`POST /pools/{pool}/workers/{worker}/heartbeat`), and is the
worker's presence beat too (busy or idle).

Each run keeps its own deadline (`AttemptLease`): the send time of the last beat whose answer
renewed it plus the lease's length, exactly as when each run beat on its own; a run whose beat
fails keeps its old deadline, and its flow process fences itself there (`fence`). Each answer is
handed to the run's supervisor: cancel -> cancel, stop -> stop the flow process at once (as on a
409 before). A 409 for the whole session (its lease expired: this process was frozen or cut off
longer than a lease) stops every run it held and starts a new session for the next claims.

While the worker holds no run its beats are presence only (the control plane writes the
worker's `last_seen` and no session: issue 20), so they come as rarely as the control plane's
answers say (`idle_beat_seconds`, 3 minutes), rarer than a lease: an idle session's stored
lease may run out, and a session that held nothing may start again (service/worker_leases.py).
A control plane that does not say so still needs the session renewed within its lease: idle
beats then come every `LEGACY_IDLE_INTERVALS_PER_BEAT` renewal intervals at most. Two rules
keep that safe: after its last run is released the session beats once more at the busy
interval, so its stored lease is dropped (held = {}) while it is still valid; and a claim
counts as the run's first sign of life (it starts the run's lease and marks the worker seen),
so the first beat after it comes one interval later.

A control plane older than the route answers 404: the worker then falls back to per-run
heartbeats and the presence route (`supported` False).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from sluice import exceptions as errors
from sluice.leases import lease_clock
from sluice.models import WorkerLeaseHeartbeat, new_id

from .attempt_lease import AttemptLease

log = logging.getLogger("sluice.worker")

#: Shortest wait between beats (a run close to its deadline after failed beats).
MIN_BEAT_WAIT_SECONDS = 0.05
#: A worker given a short presence interval (tests, demos: short run heartbeats shorten it)
#: beats idle every this many of them, if that is sooner than the control plane's idle period.
IDLE_BEAT_PRESENCE_INTERVALS = 6
#: With a control plane that names no idle period, idle beats come at most this many of its
#: renewal intervals apart, so the session's lease (three of them) never runs out meanwhile.
LEGACY_IDLE_INTERVALS_PER_BEAT = 2


@dataclass
class HeldRun:
    """A run the session holds: its lease, its deadline, and who acts on the answers."""

    lease: str
    deadline: AttemptLease
    supervisor: Any  # RunSupervisor: request_stop(reason)


class WorkerLeases:
    """The session of one worker process and the runs it holds (see the module docstring)."""

    def __init__(self, client: Any, *, pool: str, worker: str, max_interval: float,
                 idle_interval: float, presence: Any) -> None:
        self.client, self.pool, self.worker = client, pool, worker
        #: A fresh id per process start (and after the session expired): claims name it.
        self.session = new_id()
        #: None: not known yet; True: the control plane has the route; False: it answered 404.
        self.supported: bool | None = None
        self._max_interval = max_interval
        self.interval = max_interval
        #: The renewal interval the control plane asked for (its lease is three of them).
        self.server_interval: float | None = None
        #: How often the control plane lets an idle worker beat (None: not said, see above).
        self.server_idle_period: float | None = None
        self._idle_interval = idle_interval
        self._presence = presence  # () -> dict of host/version/slots
        self._held: dict[str, HeldRun] = {}
        self._lock = threading.Lock()
        self._last_beat: float | None = None
        #: Whether the control plane's copy of the session may still hold runs (the last
        #: successful beat named some): its next beat, even idle, comes at the busy interval.
        self._session_held_runs = False
        #: Set to beat sooner than planned (a new run to renew, shutdown).
        self.wake = threading.Event()
        self.beats = 0

    @property
    def active(self) -> bool:
        """Whether claims name the session (the control plane answered the route)."""
        return self.supported is True

    def hold(self, flow_run_id: str, lease: str, deadline: AttemptLease, supervisor: Any, *,
             session: str) -> None:
        """Renew `flow_run_id` from the next beat on (its claim, which named `session`, set its
        first deadline). A run claimed for a session that has expired since is stopped."""
        with self._lock:
            current = session == self.session
            if current:
                if not self._held and not self._session_held_runs:
                    # The claim started the run's lease and marked the worker seen: the
                    # first beat is due one interval from now, not at once.
                    self._last_beat = lease_clock()
                self._held[flow_run_id] = HeldRun(lease, deadline, supervisor)
        if not current:
            supervisor.request_stop("expired")
            return
        self.wake.set()

    def release(self, flow_run_id: str, lease: str) -> None:
        """Stop renewing the run: only once its processes are gone (a dropped run is never
        renewed again, and the monitor crashes it if it had not ended)."""
        with self._lock:
            held = self._held.get(flow_run_id)
            if held is not None and held.lease == lease:
                del self._held[flow_run_id]

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def beat_once(self) -> None:
        """One beat: renew every held run, hand each supervisor its outcome."""
        with self._lock:
            held = dict(self._held)
            session = self.session
        request = WorkerLeaseHeartbeat(
            session=session, leases=[{"flow_run_id": run_id, "lease": run.lease}
                                     for run_id, run in held.items()], **self._presence())
        sent = lease_clock()
        self._last_beat = sent
        try:
            answer = self.client.worker_lease_heartbeat(
                self.pool, self.worker, request, timeout=self._beat_timeout(held))
        except errors.NotFound as exc:
            if self.supported is not True:
                log.warning("the control plane has no per-worker heartbeat (%s); renewing each "
                            "run's lease on its own (upgrade the control plane)", exc)
                self.supported = False
            else:
                log.warning("worker heartbeat refused: %s", exc)
            return
        except errors.Conflict as exc:
            self._session_lost(session, held, exc)
            return
        except Exception as exc:  # 5xx, 429, the network: each run's deadline decides
            log.warning("worker heartbeat failed (%d run(s)): %s", len(held), exc)
            return
        self.supported = True
        self.beats += 1
        self._session_held_runs = bool(held)
        if answer.heartbeat_interval_seconds:
            self.server_interval = answer.heartbeat_interval_seconds
            self.interval = min(self._max_interval, answer.heartbeat_interval_seconds)
        self.server_idle_period = answer.idle_beat_seconds or None
        for run_id, run in held.items():
            outcome = answer.runs.get(run_id)
            if outcome is None:
                continue
            if outcome.renewed:
                run.deadline.renewed(answer, sent)
            if outcome.cancel_requested:
                run.supervisor.request_stop("cancel")
            if outcome.stop:
                run.supervisor.request_stop("stale")
                self.release(run_id, run.lease)

    def _session_lost(self, session: str, held: dict[str, HeldRun], exc: Exception) -> None:
        with self._lock:
            if self.session != session:
                return
            self.session = new_id()
            self._held.clear()
            self._session_held_runs = False  # the new session is not stored yet
        if held:
            log.warning("worker session expired (%s): stopping its %d run(s)", exc, len(held))
        for run in held.values():
            run.supervisor.request_stop("expired")

    def _beat_timeout(self, held: dict[str, HeldRun]) -> float:
        """An answer after the nearest deadline renews nothing that matters any more."""
        timeout = min(30.0, max(5.0, 2 * self.interval))
        deadlines = [run.deadline.deadline for run in held.values()
                     if run.deadline.deadline is not None]
        if deadlines:
            timeout = min(timeout, max(0.5, min(deadlines) - lease_clock()))
        return timeout

    def next_wait(self) -> float:
        """Seconds until the next beat: an interval when busy (sooner near a deadline, so a
        failed beat is retried twice before it) and once more after the last run went, else the
        idle (presence) period."""
        with self._lock:
            held = list(self._held.values())
        period = self.interval if held or self._session_held_runs else self.idle_period
        now = lease_clock()
        due = period if self._last_beat is None else self._last_beat + period - now
        for run in held:
            if run.deadline.deadline is not None:
                due = min(due, (run.deadline.deadline - now) / 2)
        return max(MIN_BEAT_WAIT_SECONDS, due)

    @property
    def idle_period(self) -> float:
        """Seconds between presence-only beats (module docstring)."""
        if self.server_idle_period:
            return min(self.server_idle_period,
                       IDLE_BEAT_PRESENCE_INTERVALS * self._idle_interval)
        return min(self._idle_interval,
                   LEGACY_IDLE_INTERVALS_PER_BEAT * (self.server_interval or self.interval))

    def serve(self, done: threading.Event, fallback: Any) -> None:
        """Beat until `done`; `fallback()` is the presence beat of an older control plane."""
        while not done.is_set():
            if self.supported is False:
                fallback()
            else:
                self.beat_once()
            while not done.is_set():
                self.wake.clear()
                wait = self._idle_interval if self.supported is False else self.next_wait()
                if wait <= MIN_BEAT_WAIT_SECONDS or not self.wake.wait(wait):
                    break  # due: beat
                # Woken (a new run, shutdown): wait again for the period that now applies.
