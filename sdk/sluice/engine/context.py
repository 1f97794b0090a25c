"""Run contexts: which flow run and task run the current code belongs to (contextvars)."""

from __future__ import annotations

import contextvars
import itertools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import MissingContextError
from ..models import FlowRun, TaskRun
from ..reporting import Reporter

if TYPE_CHECKING:
    from ..flows import Flow
    from ..leases import LocalLease
    from ..tasks import Task
    from ..task_runners import TaskRunner
    from .futures import TaskFuture
    from .results import ResultStorage


@dataclass(slots=True, eq=False)
class FlowRunContext:
    flow: Flow[Any, Any]
    flow_run: FlowRun
    reporter: Reporter
    log_prints: bool
    result_storage: ResultStorage | None
    max_workers: int | None
    #: Default `persist_result` of the run's tasks (the flow's option).
    persist_result: bool | None = None
    #: This attempt retries a run: tasks whose result an earlier attempt persisted are Cached.
    resuming: bool = False
    #: The flow run's parameters as the function got them (what FLOW_PARAMETERS hashes).
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The run's lease in this process (None: tracked in memory only): checked before each task
    #: run starts, so an attempt that lost its lease does nothing more.
    lease: LocalLease | None = None
    #: n-th call of each task in this run, so task-run names ("extract-3") are stable.
    task_counters: dict[str, itertools.count] = field(default_factory=dict)
    futures: list[TaskFuture] = field(default_factory=list)
    #: The flow's `task_runner` option (None: `ThreadPoolTaskRunner(max_workers)`); the run
    #: starts its own copy at its first submit (`executor`) and shuts it down at its end.
    task_runner: TaskRunner | None = None
    _executor: TaskRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_task_run_name(self, task_name: str) -> str:
        counter = self.task_counters.get(task_name)
        if counter is None:
            counter = self.task_counters.setdefault(task_name, itertools.count())
        return f"{task_name}-{next(counter)}"

    @property
    def executor(self) -> TaskRunner:
        """This run's started task runner (started at the first submit)."""
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    from ..task_runners import ThreadPoolTaskRunner

                    configured = self.task_runner
                    runner = (ThreadPoolTaskRunner(self.max_workers) if configured is None
                              else configured.duplicate())
                    self._executor = runner.start(
                        f"sluice-{self.flow_run.name or self.flow_run.id[:8]}")
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()


@dataclass(slots=True, eq=False)
class TaskRunContext:
    task: Task[Any, Any]
    task_run: TaskRun
    flow_run_context: FlowRunContext
    log_prints: bool
    parameters: dict[str, Any]


flow_run_ctx: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "sluice_flow_run", default=None
)
task_run_ctx: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "sluice_task_run", default=None
)


def get_flow_run_context() -> FlowRunContext:
    ctx = flow_run_ctx.get()
    if ctx is None:
        raise MissingContextError(
            "no flow run is active here; call this from inside a function decorated with @flow"
        )
    return ctx


def get_run_context() -> FlowRunContext | TaskRunContext:
    """The innermost active run: the task run if inside one, else the flow run."""
    return task_run_ctx.get() or get_flow_run_context()
