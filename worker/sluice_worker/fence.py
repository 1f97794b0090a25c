"""The flow process fences itself: it stops its whole process group when its lease runs out.

The worker renews the attempt's lease with the control plane and writes each renewal's deadline
(`sluice.leases.lease_clock`, shared by every process of the machine) on a pipe the flow process
inherited. A thread here reads it and kills the process group (and every process marked with the
lease, see `processes`) when

* the pipe closes: the worker is gone (killed, crashed), so nobody renews the lease, or
* the deadline passes without a renewal: the worker is stopped or cut off from the control
  plane, which will declare the attempt dead once the lease expired plus a margin.

The engine also checks the deadline before each task run starts (`LocalLease.check`), reading
renewals still waiting in the pipe first, so a process that was itself stopped and continued
does not mistake its own pause for an expired lease. As a backstop when this thread cannot run
(the GIL held by native code), the kernel kills the process when its worker dies
(`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time

from sluice.leases import LocalLease, lease_clock

from .processes import ENV_LEASE_FD, ENV_WORKER_PID, RECORD, marked_processes

#: How often the watch wakes with no deadline known (the first renewal sets one).
IDLE_WAKE_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


class Fence:
    """Watches the lease pipe of this flow process (see the module docstring)."""

    def __init__(self, fd: int, flow_run_id: str, lease: str) -> None:
        self.fd = fd
        self.marker = lease
        self.lease = LocalLease(flow_run_id, refresh=self.drain)
        self._lock = threading.Lock()
        self._closed = False
        #: Only the process that started the fence reads its pipe (a forked child of the flow
        #: inherits this object, and must not take its parent's renewals).
        self._owner = os.getpid()
        os.set_blocking(fd, False)

    @classmethod
    def from_environment(cls, flow_run_id: str, lease: str) -> Fence | None:
        fd = os.environ.get(ENV_LEASE_FD)
        if not fd:
            return None  # started by hand, not by a worker: nothing renews a lease here
        return cls(int(fd), flow_run_id, lease)

    def start(self) -> None:
        die_with_parent()
        self.drain()
        threading.Thread(target=self._watch, name="sluice-fence", daemon=True).start()

    def drain(self) -> None:
        """Read every renewal waiting in the pipe (never blocks)."""
        if os.getpid() != self._owner:
            return
        latest = None
        with self._lock:
            while not self._closed:
                try:
                    # Whole records only: the worker writes them atomically, one at a time.
                    chunk = os.read(self.fd, RECORD.size * 512)
                except BlockingIOError:
                    break
                except OSError:
                    chunk = b""
                if not chunk:
                    self._closed = True
                    break
                usable = len(chunk) - len(chunk) % RECORD.size
                if usable:
                    latest = max(value for (value,) in RECORD.iter_unpack(chunk[:usable]))
        if latest is not None:
            self.lease.renew(latest)

    def _watch(self) -> None:
        poller = select.poll()  # not select(): the fd may be numbered past FD_SETSIZE
        poller.register(self.fd, select.POLLIN | select.POLLHUP)
        while True:
            deadline = self.lease.deadline
            wait = IDLE_WAKE_SECONDS if deadline is None else \
                max(0.0, min(IDLE_WAKE_SECONDS, deadline - lease_clock()))
            with contextlib.suppress(OSError):
                poller.poll(wait * 1000)
            self.drain()
            if self._closed:
                self.stop("its worker is gone (the lease pipe closed), so nobody renews the "
                          "run's lease")
            if self.lease.expired():
                self.stop("its lease expired without renewal (the worker is stopped or cut "
                          "off from the control plane)")

    def stop(self, reason: str) -> None:
        """Kill every process of this attempt, this one last."""
        self.lease.lose(reason)
        with contextlib.suppress(OSError):
            os.write(2, f"sluice: the flow process stops itself: {reason}\n".encode())
        for pid in marked_processes(self.marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(137)  # not in our own group after all: still never outlive the lease


def die_with_parent() -> None:
    """Linux: the kernel SIGKILLs this process when its worker dies (a backstop for a fence
    thread that cannot run). A process whose worker already died exits now."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    expected = os.environ.get(ENV_WORKER_PID)
    if expected and os.getppid() != int(expected):
        os._exit(137)
