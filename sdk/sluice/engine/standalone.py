"""Tasks called outside any flow (Prefect 3): tracked runs in a lightweight flow run.

The control plane keeps task runs under a flow run (the store's keys, `sluice flow-run logs`,
retention), so a task called at top level gets a flow run of its own, created for the call:
its flow name is the task's name, its parameters are the task's arguments, and its final state
is the task run's. Inside it the task runs exactly as inside any flow: retries, retry delays,
timeouts, caching, hooks, run logger, reporting. `.fn` stays the plain function.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..models import State, new_state
from .context import flow_run_ctx
from .flow_engine import FlowRunner
from .futures import state_result

if TYPE_CHECKING:
    from ..flows import Flow
    from ..tasks import Task


class _TaskFlowRunner(FlowRunner):
    """A flow run whose outcome is its one task run's (not a failure of its own)."""

    def _settle_futures(self, value: Any) -> State:
        if not isinstance(value, State):  # pragma: no cover - the body always returns a State
            return super()._settle_futures(value)
        state = new_state(value.type, message=value.message)
        state._result = value._result
        return state


def _flow_for(task: Task[Any, Any], holder: list[State], wait_for: Any) -> Flow[Any, Any]:
    from ..flows import Flow, FlowOptions
    from .task_engine import TaskRunner

    if task.is_async:
        async def body(*args: Any, **kwargs: Any) -> State:
            runner = TaskRunner(task, flow_run_ctx.get(), args, kwargs, wait_for)  # type: ignore[arg-type]
            holder.append(await runner.run_async())
            return holder[-1]
    else:
        def body(*args: Any, **kwargs: Any) -> State:  # type: ignore[misc]
            runner = TaskRunner(task, flow_run_ctx.get(), args, kwargs, wait_for)  # type: ignore[arg-type]
            holder.append(runner.run_sync())
            return holder[-1]

    body.__signature__ = task.signature  # type: ignore[attr-defined]
    body.__doc__ = task.description
    from ..models.names import name_problem

    # A task named after a function that no flow name allows (`<lambda>`): a generic name.
    name = task.name if name_problem(task.name, "flow") is None else "task"
    options = FlowOptions.build("@task", name=name, validate_parameters=False,
                                tags=task.options.tags, log_prints=task.options.log_prints,
                                result_storage=task.options.result_storage,
                                persist_result=task.options.persist_result)
    body.__name__ = body.__qualname__ = name
    return Flow(body, options)


def call_outside_flow(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      return_state: bool, wait_for: Any) -> Any:
    """Run `task(*args, **kwargs)` as a tracked run with no flow around it."""
    holder: list[State] = []
    runner = _TaskFlowRunner(_flow_for(task, holder, wait_for), args, kwargs)
    if task.is_async:
        coro = _run_async(runner, holder, return_state)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        return coro  # awaited by the caller, like any coroutine function
    return _outcome(runner.run_sync(), holder, return_state)


async def _run_async(runner: _TaskFlowRunner, holder: list[State], return_state: bool) -> Any:
    return _outcome(await runner.run_async(), holder, return_state)


def _outcome(flow_state: State, holder: list[State], return_state: bool) -> Any:
    state = holder[-1] if holder else flow_state  # no task state: the flow run was refused
    return state if return_state else state_result(state)
