"""The worker's view of one attempt's lease: its deadline, how often to renew it, and the pipe
that hands each renewal to the flow process (see `fence`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sluice.leases import lease_clock

from .processes import LeasePipe

T = TypeVar("T")


class AttemptLease:
    """Deadline and renewal period of the lease a worker holds for one run's attempt. Renewals
    (a claim, heartbeats) go through `renew`, one at a time."""

    def __init__(self, max_interval: float) -> None:
        #: When the lease runs out unless renewed (on `lease_clock()`); None: the control plane
        #: states no terms (an older one), and only its 409 stops the run.
        self.deadline: float | None = None
        self._max_interval = max_interval
        #: Renewal period: the worker's setting, never slower than the control plane asks.
        self.interval = max_interval
        self._pipe: LeasePipe | None = None
        self._lock = threading.Lock()  # one renewal at a time; the pipe changes under it

    def renew(self, call: Callable[[], T]) -> T:
        """`call()` (a claim or heartbeat) and the terms of its answer. The lease it renews is
        counted from when it was *sent*, before the control plane wrote it, so this side's
        deadline comes first however long the answer took."""
        with self._lock:
            sent = lease_clock()
            answer = call()
            self._take_terms(answer, sent)
            return answer

    def renewed(self, answer: Any, sent: float) -> None:
        """A renewal made elsewhere (the worker's per-worker heartbeat, `worker_leases`) that
        included this lease: the deadline moves to `sent` + the answer's lease length. A renewal
        sent before the one already taken never moves the deadline back."""
        with self._lock:
            seconds = getattr(answer, "lease_seconds", None)
            if seconds and self.deadline is not None and sent + seconds <= self.deadline:
                return
            self._take_terms(answer, sent)

    def _take_terms(self, answer: Any, sent: float) -> None:
        seconds = getattr(answer, "lease_seconds", None)
        if not seconds:
            return  # an older control plane, or an attempt that already ended
        self.deadline = sent + seconds
        interval = getattr(answer, "heartbeat_interval_seconds", None)
        if interval:
            self.interval = min(self._max_interval, interval)
        if self._pipe is not None:
            self._pipe.send(self.deadline)

    def attach(self, pipe: LeasePipe) -> None:
        """Hand renewals to the flow process through `pipe` from now on (the current deadline
        first)."""
        with self._lock:
            self._pipe = pipe
            if self.deadline is not None:
                pipe.send(self.deadline)

    def detach(self) -> None:
        with self._lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def expired(self) -> bool:
        return self.deadline is not None and lease_clock() >= self.deadline

    def until_next_beat(self) -> float:
        """The renewal period, shortened near the deadline: after a failed renewal the next one
        still comes twice before the lease runs out."""
        if self.deadline is None:
            return self.interval
        left = self.deadline - lease_clock()
        return max(0.05, min(self.interval, left / 2))

    @property
    def beat_timeout(self) -> float:
        """How long one renewal may take: an answer after the deadline renews nothing."""
        timeout = min(30.0, max(5.0, 2 * self.interval))
        if self.deadline is not None:
            timeout = min(timeout, max(0.5, self.deadline - lease_clock()))
        return timeout
