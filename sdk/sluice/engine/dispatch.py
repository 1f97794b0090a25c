"""Submitting task runs: `Task.submit` and `Task.map` hand runs to the flow run's task runner.

A map prepares its runs (records reported Pending, jobs, futures) and queues them
`MAP_SUBMIT_CHUNK` at a time (`TaskRunner.submit_many`): the pool's threads start on a batch,
not on each run, and the first runs start while the rest are still being prepared.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from ..annotations import allow_failure, quote
from ..exceptions import InvalidMapArguments, SluiceError
from .context import FlowRunContext, flow_run_ctx
from .futures import TaskFuture, TaskFutureList
from .jobs import TaskJob
from .task_engine import TaskRunner, take_run_name

if TYPE_CHECKING:
    from ..tasks import Task


#: Runs a map queues at once while it prepares the rest. Preparing 10,000 runs takes 0.2-0.3 s;
#: queued all at once at the end, they all ran after it, and their records reached a control
#: plane in one burst that the flow then waited on at its end (7-8 us a task of a 10,000-task
#: map reporting to the embedded server; 1-3 us queued 256 at a time). Small enough that the
#: pool starts within milliseconds, large enough that waking it is rare.
MAP_SUBMIT_CHUNK = 256


def _require_flow(task: Task[Any, Any], method: str) -> FlowRunContext:
    flow_ctx = flow_run_ctx.get()
    if flow_ctx is None:
        raise SluiceError(
            f"{task.name}.{method}() needs a running flow: call it inside a function decorated "
            f"with @flow, or call {task.name}(...) directly for a plain call"
        )
    return flow_ctx


def submit_task(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                wait_for: Iterable[Any] | None) -> Any:
    """One submitted run (see `Task.submit`): its future, or with `return_state=True` its
    final state."""
    return_state = kwargs.pop("return_state", False)
    flow_ctx = _require_flow(task, "submit")
    task_runner = flow_ctx.executor
    future = _prepare_job(task, flow_ctx, task_runner, args, kwargs, wait_for)
    task_runner.submit(future._future)
    if return_state:  # Prefect: wait, and give the final state instead of the future
        future._observed = True
        return future.final_state()
    return future


def _prepare_job(task: Task[Any, Any], flow_ctx: FlowRunContext, task_runner: Any,
                 args: tuple[Any, ...], kwargs: dict[str, Any],
                 wait_for: Iterable[Any] | None, name: str | None = None) -> TaskFuture[Any]:
    """A submitted run's record (reported Pending), its job and its future; not queued yet."""
    runner = TaskRunner(task, flow_ctx, args, kwargs, wait_for, name)
    runner.body = task_runner.body_for(runner)  # None: task.fn, here (thread pool)
    job = TaskJob(partial(contextvars.copy_context().run, runner.run_in_thread),
                  runner.task_run.name)
    future: TaskFuture[Any] = TaskFuture(job, runner.task_run)
    flow_ctx.futures.append(future)
    return future


def _is_mapped(value: Any) -> bool:
    from ..tasks import unmapped

    if isinstance(value, (unmapped, str, bytes, bytearray, Mapping)):
        return False
    return isinstance(value, Iterable)


def map_task(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             wait_for: Iterable[Any] | None) -> Any:
    """One submitted run per element (see `Task.map`). A future passed as an argument is not
    iterable: it goes whole to every run, which waits for it and records it as upstream (as in
    Prefect 3). `allow_failure(...)`/`quote(...)` around an iterable wrap each element."""
    from ..tasks import unmapped

    return_state = kwargs.pop("return_state", False)
    flow_ctx = _require_flow(task, "map")
    arg_lists = [_mapped_elements(a) for a in args]
    kwarg_lists = {k: lst for k, v in kwargs.items() if (lst := _mapped_elements(v)) is not None}
    lengths = {f"argument {i + 1}": len(v) for i, v in enumerate(arg_lists) if v is not None}
    lengths.update({f"{k}=": len(v) for k, v in kwarg_lists.items()})
    if not lengths:
        raise InvalidMapArguments(
            f"{task.name}.map() got no iterable to map over; pass a list, e.g. "
            f"{task.name}.map([1, 2, 3]), or call {task.name}.submit() for one run (a future is "
            f"passed whole: to map over its value, pass future.result())"
        )
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise InvalidMapArguments(
            f"{task.name}.map() needs iterables of equal length, but {shown}; make them equal, "
            f"or wrap an argument passed whole to every run in unmapped(...)"
        )
    wait_for = list(wait_for) if wait_for is not None else None
    static = [a.value if isinstance(a, unmapped) else a for a in args]
    static_kw = {k: v.value if isinstance(v, unmapped) else v for k, v in kwargs.items()}
    futures: TaskFutureList = TaskFutureList()
    count = next(iter(lengths.values()))
    task_runner = flow_ctx.executor if count else None  # an empty map starts no runner
    calls = [(tuple(lst[i] if lst is not None else static[j] for j, lst in enumerate(arg_lists)),
              {k: kwarg_lists[k][i] if k in kwarg_lists else v for k, v in static_kw.items()})
             for i in range(count)]
    # Every name first, in order: a run of the first batch that calls the same task must not
    # take a name in the middle of the map's (a retry finds persisted results by name).
    names: list[str] = []
    try:
        for call_args, call_kwargs in calls:
            names.append(take_run_name(task, flow_ctx, call_args, call_kwargs))
    except Exception as exc:  # a bad `task_run_name`: the runs named before it still run
        naming_error: Exception | None = exc
    else:
        naming_error = None
    queued = 0
    try:
        for (call_args, call_kwargs), name in zip(calls, names):
            futures.append(_prepare_job(task, flow_ctx, task_runner, call_args, call_kwargs,
                                        wait_for, name))
            if len(futures) - queued >= MAP_SUBMIT_CHUNK:
                batch, queued = futures[queued:], len(futures)
                task_runner.submit_many([future._future for future in batch])
    finally:
        # What was prepared before an error still runs, as it did when each run was queued at
        # once.
        if len(futures) > queued:
            task_runner.submit_many([future._future for future in futures[queued:]])
    if naming_error is not None:
        raise naming_error
    if return_state:
        for future in futures:
            future._observed = True
        return [future.final_state() for future in futures]
    return futures


def _mapped_elements(value: Any) -> list[Any] | None:
    """The elements one argument of `map` gives each run, or None when it is passed whole."""
    if isinstance(value, (allow_failure, quote)):
        inner = _mapped_elements(value.value)
        return None if inner is None else [type(value)(v) for v in inner]
    return list(value) if _is_mapped(value) else None
