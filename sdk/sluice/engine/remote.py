"""Task bodies that run in another process or on a Dask worker; their run stays here.

Only the task's *body* goes remote. Its run is orchestrated in the flow's process as with the
thread pool: states, retries and their delays, timeouts, caching, result persistence and hooks,
and reporting to the control plane (one reporter, batched, holding the run's lease). The remote
side gets the ids of the flow run and task run, so `get_run_logger()` and `print` (with
`log_prints`) work there; its log lines, and the runs of tasks the body calls, travel back with
the outcome and are reported here. Arguments, return values and exceptions are pickled.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..exceptions import RemoteTaskError
from ..models import FlowRun, LogRecord, StateType, TaskRun, new_state

if TYPE_CHECKING:
    from .task_engine import TaskRunner

#: What a remote call returns: (ok, value or exception, log records, runs of nested tasks).
Outcome = tuple[bool, Any, list[LogRecord], list[TaskRun]]


@dataclass(slots=True)
class TaskRef:
    """A task defined at a module's top level, sent by name (plain pickle cannot send `task.fn`:
    the module attribute of that name is the Task, not the function)."""

    module: str
    qualname: str

    def resolve(self) -> Callable[..., Any]:
        target: Any = import_module(self.module)
        for part in self.qualname.split("."):
            target = getattr(target, part)
        return target.fn


def portable(fn: Callable[..., Any]) -> Callable[..., Any] | TaskRef:
    """`fn` by reference to its Task when that is how it can be found, else `fn` itself."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module and "<locals>" not in qualname:
        try:
            owner: Any = import_module(module)
            for part in qualname.split("."):
                owner = getattr(owner, part)
        except (ImportError, AttributeError):
            return fn
        if getattr(owner, "fn", None) is fn:
            return TaskRef(module, qualname)
    return fn


@dataclass(slots=True)
class RemoteCall:
    """Everything a remote task body needs (picklable)."""

    fn: Callable[..., Any] | TaskRef
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    is_async: bool
    flow_run: FlowRun
    task_run: TaskRun
    log_prints: bool
    logging_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)


_RemoteFlowRunContext: Any = None


class _CollectingReporter:
    """The remote side's reporter: keeps log lines and nested task runs for the trip back."""

    def __init__(self) -> None:
        self.logs: list[LogRecord] = []
        self.task_runs: dict[str, TaskRun] = {}

    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        return flow_run

    def set_flow_run_state(self, flow_run: FlowRun, state: Any, transition_id: str) -> Any:
        return state

    def report_task_run(self, task_run: TaskRun) -> None:
        self.task_runs[task_run.id] = task_run

    def report_log(self, record: LogRecord) -> None:
        self.logs.append(record)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def lease_of(self, flow_run_id: str) -> None:
        return None


def _remote_context_class() -> type:
    from .context import FlowRunContext

    class RemoteFlowRunContext(FlowRunContext):
        """Names the runs of tasks a remote body calls under its own run's name
        ("fan-3.square-0"), so they never collide with the flow's runs."""

        __slots__ = ("prefix",)

        def next_task_run_name(self, task_name: str) -> str:
            return f"{self.prefix}.{FlowRunContext.next_task_run_name(self, task_name)}"

    return RemoteFlowRunContext


def run_remote(call: RemoteCall) -> Outcome:
    """Run a task body in this (remote) process under its run's identity; never raises for the
    body's own exceptions (they come back in the outcome)."""
    from ..run_logging import capture_prints, configure_run_logging
    from .context import TaskRunContext, flow_run_ctx, task_run_ctx

    global _RemoteFlowRunContext
    if _RemoteFlowRunContext is None:
        _RemoteFlowRunContext = _remote_context_class()

    configure_run_logging(call.logging_level)
    if call.log_prints:
        capture_prints()
    reporter = _CollectingReporter()
    flow_ctx = _RemoteFlowRunContext(flow=None, flow_run=call.flow_run, reporter=reporter,  # type: ignore[arg-type]
                                     log_prints=call.log_prints, result_storage=None,
                                     max_workers=None)
    flow_ctx.prefix = call.task_run.name
    task_ctx = TaskRunContext(None, call.task_run, flow_ctx, call.log_prints, {})  # type: ignore[arg-type]
    flow_token, task_token = flow_run_ctx.set(flow_ctx), task_run_ctx.set(task_ctx)
    try:
        fn = call.fn.resolve() if isinstance(call.fn, TaskRef) else call.fn
        value = fn(*call.args, **call.kwargs)
        if call.is_async:
            value = asyncio.run(value)
        ok = True
    except Exception as exc:
        ok, value = False, _sendable(exc)
    finally:
        task_run_ctx.reset(task_token)
        flow_run_ctx.reset(flow_token)
        flow_ctx.shutdown()  # tasks the body submitted end here, before their runs go back
    return ok, value, reporter.logs, list(reporter.task_runs.values())


def _sendable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return RemoteTaskError(f"{type(exc).__name__}: {exc} (the exception could not be sent "
                               f"back from the remote process)\n{text}")
    return exc


def remote_body(runner: TaskRunner, send: Callable[[RemoteCall], Outcome],
                by_reference: bool) -> Callable[..., Any]:
    """The callable the task engine calls instead of `task.fn` (same arguments, same value or
    exception) for a run whose body goes remote through `send`."""
    from ..settings import get_settings

    task = runner.task
    flow_ctx = runner.flow_ctx
    fn = portable(task.fn) if by_reference else task.fn
    level = str(get_settings().logging_level)

    def body(*args: Any, **kwargs: Any) -> Any:
        running = new_state(StateType.RUNNING)
        call = RemoteCall(
            fn, args, kwargs, task.is_async,
            flow_ctx.flow_run.model_copy(update={"state": running, "parameters": {}}),
            runner.task_run.model_copy(update={"state": running}),
            runner.log_prints, level)
        ok, value, logs, task_runs = send(call)
        reporter = flow_ctx.reporter
        for task_run in task_runs:
            reporter.report_task_run(task_run)
        for record in logs:
            reporter.report_log(record)
        if ok:
            return value
        raise value

    if not task.is_async:
        return body

    async def async_body(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(body, *args, **kwargs)

    return async_body


def explain_transport_error(exc: BaseException, runner: TaskRunner, where: str) -> Exception:
    """A pickling or worker failure, said in terms of what the user can change."""
    logging.getLogger("sluice").debug("remote call failed", exc_info=exc)
    return RemoteTaskError(
        f"task run {runner.task_run.name!r} could not run on {where}: {type(exc).__name__}: "
        f"{exc}. Its function, arguments and return value must be picklable and importable "
        "there (define the task at module top level, pass plain data), and the flow script "
        "must guard its call with `if __name__ == \"__main__\":`"
    )
