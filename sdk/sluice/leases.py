"""The lease of a flow run as the process executing it sees it: a deadline on this machine's
monotonic clock (`lease_clock`), renewed by heartbeats (the process's own, or its worker's
through a pipe).

The control plane declares an attempt dead only once its lease expired plus a margin
(`sluice_functions.orchestration.leases`); an attempt that could not renew stops itself before
that, so two attempts of a run never overlap. Here: `LocalLease` (the deadline the engine checks
before each task run starts, one clock read) and `LeaseKeeper` (a background thread that renews
the leases of runs this process created itself: a flow started as a script, its subflows).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .exceptions import RunAborted, SluiceError, StaleLease

log = logging.getLogger("sluice.leases")

#: Until the control plane has stated its terms, renew this often.
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 10.0

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock() -> float:
    """The clock lease deadlines are kept on: monotonic, and on Linux one that also counts time
    the machine spent suspended (CLOCK_BOOTTIME), so a machine that wakes up from a suspend
    longer than the lease finds its leases expired rather than still running. Every process of
    one machine reads the same clock, so a worker can hand a deadline to its flow process."""
    if _BOOTTIME is not None:
        return time.clock_gettime(_BOOTTIME)
    return time.monotonic()


#: Why a lease is lost when its run is being cancelled.
CANCELLED = "it was cancelled"


class LeaseLost(RunAborted):
    """The run's lease expired unrenewed, or the control plane gave the run to another attempt
    (or cancelled it): the attempt must stop before it does anything more."""

    def __init__(self, message: str, *, cancelled: bool = False) -> None:
        super().__init__(message)
        #: The run is being cancelled (its lease still holds: the attempt confirms Cancelled).
        self.cancelled = cancelled


def new_lease() -> str:
    """A lease its creator picks for a run it executes itself (`FlowRunCreate.lease`)."""
    return secrets.token_hex(16)


class LocalLease:
    """One run's lease in this process: `deadline` on `lease_clock()` (None: not known yet,
    the first renewal sets it). `refresh`, if given, pulls renewals that may be waiting (the
    worker's pipe) before a deadline is judged past."""

    __slots__ = ("flow_run_id", "deadline", "lost", "ended", "_refresh")

    def __init__(self, flow_run_id: str, deadline: float | None = None,
                 refresh: Callable[[], None] | None = None) -> None:
        self.flow_run_id = flow_run_id
        self.deadline = deadline
        #: Why the lease is gone for good (None while held).
        self.lost: str | None = None
        #: The run ended in this process (reported or not): its lease is no longer renewed.
        self.ended = False
        self._refresh = refresh

    def renew(self, deadline: float) -> None:
        if self.deadline is None or deadline > self.deadline:
            self.deadline = deadline

    def lose(self, reason: str) -> None:
        self.lost = self.lost or reason

    def expired(self) -> bool:
        if self.deadline is None or lease_clock() < self.deadline:
            return False
        if self._refresh is not None:
            self._refresh()
        return lease_clock() >= self.deadline

    def check(self) -> None:
        """Raise `LeaseLost` unless the run may go on (the engine calls this before each task
        run starts: one clock read while the lease is fresh)."""
        if self.lost is not None:
            raise LeaseLost(f"flow run {self.flow_run_id}: {self.lost}",
                            cancelled=self.lost == CANCELLED)
        deadline = self.deadline
        if deadline is not None and lease_clock() >= deadline and self.expired():
            self.lose("its lease expired without renewal (the control plane was unreachable "
                      "for longer than the lease); the run stops so that a new attempt cannot "
                      "overlap it")
            raise LeaseLost(f"flow run {self.flow_run_id}: {self.lost}")


class LeaseKeeper:
    """Renews, from one background thread, the leases of the runs this process created and
    executes itself. A run whose renewal is refused (another attempt holds it, or the monitor
    already declared it Crashed) or that is being cancelled has its `LocalLease` lost, and its
    next task run raises `LeaseLost`."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._held: dict[str, tuple[str, LocalLease]] = {}
        self._interval = DEFAULT_HEARTBEAT_INTERVAL_SECONDS
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, flow_run_id: str, lease: str) -> LocalLease:
        local = LocalLease(flow_run_id)
        with self._lock:
            self._held[flow_run_id] = (lease, local)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sluice-lease-keeper",
                                                daemon=True)
                self._thread.start()
        self._wake.set()  # the first renewal now: it tells the lease's terms
        return local

    def release(self, flow_run_id: str) -> None:
        with self._lock:
            self._held.pop(flow_run_id, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                held = list(self._held.items())
            for flow_run_id, (lease, local) in held:
                if local.lost is not None or local.ended:  # no longer ours to keep
                    self.release(flow_run_id)
                    continue
                try:
                    self._renew(flow_run_id, lease, local)
                except Exception:  # the keeper must outlive any one failure: the deadline decides
                    log.exception("renewing the lease of flow run %s failed", flow_run_id)

    def _renew(self, flow_run_id: str, lease: str, local: LocalLease) -> None:
        sent = lease_clock()
        timeout = max(1.0, self._interval)
        if local.deadline is not None:  # an answer after the deadline renews nothing
            timeout = min(timeout, max(0.5, local.deadline - sent))
        try:
            answer = self.client.heartbeat(flow_run_id, lease, attempts=1, timeout=timeout)
        except StaleLease as exc:
            local.lose(f"the control plane no longer gives it to this process ({exc})")
            self.release(flow_run_id)
            return
        except SluiceError as exc:  # unreachable: the deadline decides
            log.warning("renewing the lease of flow run %s failed: %s", flow_run_id, exc)
            return
        if answer.lease_seconds:
            local.renew(sent + answer.lease_seconds)
        if answer.heartbeat_interval_seconds:
            self._interval = min(DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
                                 answer.heartbeat_interval_seconds)
        if answer.cancel_requested:
            local.lose(CANCELLED)
