"""`AutomationDispatcher`: how freshly recorded events reach the automation engine, off the path
of the request, claim or transition that recorded them.

Adapters:

* `InlineDispatcher` runs the engine at once, in the caller (unit tests, fakes, scripts);
* `ThreadDispatcher` runs it on one background thread of the embedded server, in order, behind
  a bounded queue: `submit` never blocks (a full queue drops the batch and counts
  `AutomationEventsDropped`), an engine error is logged and counted (`AutomationErrors`) and
  the thread goes on; `close()` drains what is queued when the server stops;
* `NoDispatch` for the AWS API, scheduler and monitor functions: events reach the engine
  through EventBridge (a rule on the stack's bus invokes the automations function,
  `handlers/automations.py`), so nothing runs in the request.

Either way an action runs at most once per (automation, event): the engine claims a receipt
before acting, so a redelivered event (EventBridge delivers at least once) acts no second time.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sluice.models import SluiceEvent, utcnow

LOGGER = logging.getLogger(__name__)
#: Batches the embedded dispatcher holds before it drops new ones (a burst of thousands of
#: transitions while a webhook hangs for its 5 s timeout).
DEFAULT_QUEUE_BATCHES = 10_000

#: The engine a dispatcher runs: (events, ports, now) -> None; `automations.on_events` by
#: default (reactive automations, then embedded on-event deployments).
Engine = Callable[..., Any]
#: A queued batch: its events, the clock they were recorded with, the submitter's context.
_Batch = tuple[list[SluiceEvent], "datetime | None", contextvars.Context]


@runtime_checkable
class AutomationDispatcher(Protocol):
    """Hands recorded events to the automation engine. `submit` never raises and never waits
    for an action (a webhook may take seconds)."""

    def submit(self, events: Sequence[SluiceEvent], *, now: datetime | None = None) -> None:
        """Queue `events` (already stored and published) for the engine; `now` is the clock
        the engine acts with (None: the time it runs)."""
        ...

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far was handled; False when `timeout` (seconds)
        passed first. Tests call it instead of sleeping."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Stop taking batches, handle the queued ones (up to `timeout`) and release the
        thread, if any."""
        ...


def _default_engine(events: Sequence[SluiceEvent], *, ports: Any, now: datetime) -> Any:
    from . import on_events

    return on_events(events, ports=ports, now=now)


def _run_engine(engine: Engine, events: Sequence[SluiceEvent], ports: Any,
                now: datetime | None) -> None:
    """One batch through the engine; an error is the automation's own, not the caller's."""
    try:
        engine(events, ports=ports, now=now or utcnow())
    except Exception:  # noqa: BLE001 - one failing batch must not stop the next ones
        LOGGER.exception("automations failed on %d event(s) (%s ...)", len(events),
                         events[0].name)
        _count(ports, "AutomationErrors")


def _count(ports: Any, name: str, value: float = 1) -> None:
    try:
        ports.metrics.count(name, value)
    except Exception:  # noqa: BLE001 - a metric is never worth an error
        LOGGER.exception("could not count %s", name)


class NoDispatch:
    """Hands nothing on: where EventBridge delivers the events to the automations function."""

    def submit(self, events: Sequence[SluiceEvent], *, now: datetime | None = None) -> None:
        return None

    def drain(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        return None


class InlineDispatcher:
    """Runs the engine in the caller, before `submit` returns: deterministic, for unit tests
    and fakes. `ports` are the ports the actions use (run store, queue, automations ...)."""

    def __init__(self, ports: Any, *, engine: Engine | None = None) -> None:
        self.ports = ports
        self._engine = engine or _default_engine

    def submit(self, events: Sequence[SluiceEvent], *, now: datetime | None = None) -> None:
        if events:
            _run_engine(self._engine, list(events), self.ports, now)

    def drain(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        return None


class ThreadDispatcher:
    """One daemon thread running the engine over submitted batches in submission order.

    Each batch runs in a copy of the submitter's context (`contextvars`), so the nesting
    guards of automations acting on automations' events (engine, on_event) hold across the
    queue as they did in one call stack."""

    def __init__(self, ports: Any, *, engine: Engine | None = None,
                 max_batches: int = DEFAULT_QUEUE_BATCHES,
                 name: str = "sluice-automations") -> None:
        self.ports = ports
        self._engine = engine or _default_engine
        self._queue: queue.Queue[_Batch | None] = \
            queue.Queue(maxsize=max_batches)
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, events: Sequence[SluiceEvent], *, now: datetime | None = None) -> None:
        if not events:
            return
        if self._closed:
            LOGGER.warning("automations are stopped: %d event(s) not handed on", len(events))
            _count(self.ports, "AutomationEventsDropped", len(events))
            return
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait((list(events), now, contextvars.copy_context()))
        except queue.Full:
            self._done()
            LOGGER.error("the automations queue is full (%d batches): %d event(s) dropped; "
                         "an action is slow (webhook timeouts?)", self._queue.maxsize,
                         len(events))
            _count(self.ports, "AutomationEventsDropped", len(events))

    def drain(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        if self._closed:
            return
        # Drained before closing: the engine's own result events, submitted while it handles
        # the last batches, are still acted on.
        drained = self.drain(timeout)
        self._closed = True
        if not drained:  # the daemon thread dies with the process
            LOGGER.warning("automations still running after %s s; not waiting for them",
                           timeout)
            return
        self._queue.put_nowait(None)  # wakes the thread to stop
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            events, now, context = item
            try:
                context.run(_run_engine, self._engine, events, self.ports, now)
            finally:
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()
