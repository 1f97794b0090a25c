"""The Reporter port: where the engine sends flow-run transitions, task runs and logs.

Flow-run transitions are orchestrated (the control plane may refuse them), so they are
synchronous; task runs and logs are fire-and-forget and may be batched by the adapter.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Protocol, runtime_checkable

from .exceptions import RunAborted
from .leases import LocalLease
from .models import FlowRun, LogRecord, State, TaskRun


@runtime_checkable
class Reporter(Protocol):
    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        """Register a new flow run (already carrying its first state); return it as stored."""

    def set_flow_run_state(self, flow_run: FlowRun, state: State, transition_id: str) -> State:
        """Propose a transition; return the state the run is now in. Raise `RunAborted` when the
        control plane refuses it in a way the run must stop for (cancelled, lease lost)."""

    def report_task_run(self, task_run: TaskRun) -> None:
        """Record the task run's latest state. Must not block for long: called on the hot path."""

    def report_log(self, record: LogRecord) -> None:
        """Record a log line of a run."""

    def flush(self, timeout: float | None = None) -> None:
        """Deliver everything buffered (best effort within `timeout`)."""

    def lease_of(self, flow_run_id: str) -> LocalLease | None:
        """The run's lease in this process, if the control plane leased it to this process."""


class InMemoryReporter:
    """Keeps everything in this process: for tests, benchmarks and runs with no control plane."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.flow_runs: dict[str, FlowRun] = {}
        self.task_runs: dict[str, TaskRun] = {}
        self.logs: list[LogRecord] = []
        self._history: dict[str, list[State]] = defaultdict(list)
        #: Flow-run ids whose next transition should be refused (tests of the abort path).
        self.abort_next: set[str] = set()

    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        with self._lock:
            self.flow_runs[flow_run.id] = flow_run
            self._history[flow_run.id].append(flow_run.state)
        return flow_run

    def set_flow_run_state(self, flow_run: FlowRun, state: State, transition_id: str) -> State:
        with self._lock:
            if flow_run.id in self.abort_next:
                self.abort_next.discard(flow_run.id)
                raise RunAborted(f"flow run {flow_run.id} was cancelled")
            self.flow_runs[flow_run.id] = flow_run
            self._history[flow_run.id].append(state)
        return state

    def report_task_run(self, task_run: TaskRun) -> None:
        # No lock: dict/list operations are atomic under the GIL and this is the hot path.
        self.task_runs[task_run.id] = task_run
        self._history[task_run.id].append(task_run.state)

    def report_log(self, record: LogRecord) -> None:
        self.logs.append(record)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def lease_of(self, flow_run_id: str) -> LocalLease | None:
        return None  # nothing else can run these runs: no lease to lose

    # Queries for tests and the demo.
    def states_of(self, run_id: str) -> list[State]:
        return list(self._history.get(run_id, ()))

    def state_names_of(self, run_id: str) -> list[str]:
        return [s.name for s in self.states_of(run_id)]

    def task_runs_of(self, flow_run_id: str) -> list[TaskRun]:
        return [t for t in list(self.task_runs.values()) if t.flow_run_id == flow_run_id]

    def logs_of(self, flow_run_id: str) -> list[LogRecord]:
        return [r for r in list(self.logs) if r.flow_run_id == flow_run_id]

    def last_flow_run(self) -> FlowRun | None:
        top = [r for r in self.flow_runs.values() if r.parent_flow_run_id is None]
        return top[-1] if top else None
