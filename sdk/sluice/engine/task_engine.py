"""Runs task calls: states, retries, timeouts, caching, hooks — on the flow's hot path.

Kept lean on purpose: no I/O and no validation per call unless an option asks for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import TaskTimeout, UpstreamFailed
from ..models import State, StateType, TaskRun, new_id, new_state, utcnow
from ..models._fast import construct
from .caching import cache_key_for, persist, read_cached, read_earlier_attempt
from .context import FlowRunContext, TaskRunContext, flow_run_ctx, task_run_ctx
from .futures import state_result
from .inputs import resolve
from .outcomes import is_outcome, outcome_of
from ..annotations import with_context_tags
from .hooks import call_maybe_async, run_hooks
from .timeouts import await_with_timeout, call_with_timeout

if TYPE_CHECKING:
    from ..tasks import Task


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def call_task(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    flow_ctx = flow_run_ctx.get()
    return_state = kwargs.pop("return_state", False)
    wait_for = kwargs.pop("wait_for", None)
    if flow_ctx is None:
        # Outside a flow: still a tracked run, in a lightweight flow run of its own.
        from .standalone import call_outside_flow

        return call_outside_flow(task, args, kwargs, return_state, wait_for)
    runner = TaskRunner(task, flow_ctx, args, kwargs, wait_for)
    if task.is_async:
        if _in_running_loop():
            return _await_task(runner, return_state)
        state = asyncio.run(runner.run_async())
    else:
        state = runner.run_sync()
    return state if return_state else state_result(state)


async def _await_task(runner: TaskRunner, return_state: bool) -> Any:
    state = await runner.run_async()
    return state if return_state else state_result(state)


def _resolve(value: Any, upstream: list[TaskRun], flow_ctx: FlowRunContext | None = None
             ) -> Any:
    """Replace futures and states (inside lists, tuples, sets, dicts, dataclasses and pydantic
    models too) by their results; `quote(x)` passes x untouched, `allow_failure(x)` passes a
    failed upstream's exception. See engine/inputs.py."""
    return resolve(value, upstream, flow_ctx)


def take_run_name(task: Task[Any, Any], flow_ctx: FlowRunContext, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> str:
    """The name of `task`'s next run in this flow run, its counter taken now: `name-N`, or the
    `task_run_name` rendered over the call's arguments (defaults included), with a counter
    suffix when that name was used before in this run, so names stay unique per run. Results
    persisted for a retry are found by these names: each call must take the same one on
    every attempt."""
    template = task.options.task_run_name
    if template is None:
        return flow_ctx.next_task_run_name(task.name)
    from .run_names import render_run_name

    bound = task.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    name = render_run_name("task_run_name", template, bound.arguments)
    n = int(flow_ctx.next_task_run_name(name).rsplit("-", 1)[1])
    return name if n == 0 else f"{name}-{n}"


class TaskRunner:
    """One task call: its record, its attempts, its final state."""

    __slots__ = ("task", "options", "flow_ctx", "args", "kwargs", "wait_for", "task_run",
                 "log_prints", "parent_task_run_id", "_parameters", "body")

    def __init__(self, task: Task[Any, Any], flow_ctx: FlowRunContext, args: tuple[Any, ...],
                 kwargs: dict[str, Any], wait_for: Iterable[Any] | None,
                 name: str | None = None) -> None:
        """`name`: the run's name, taken already (`take_run_name`; a map takes all of its
        names before its first runs start)."""
        self.task = task
        self.options = task.options
        self.flow_ctx = flow_ctx
        self.args = args
        self.kwargs = kwargs
        self.wait_for = wait_for
        self._parameters: dict[str, Any] | None = None
        #: What runs the body instead of `task.fn` (a remote task runner's, see task_runners).
        self.body: Any = None
        parent = task_run_ctx.get()
        self.parent_task_run_id = parent.task_run.id if parent is not None else None
        log_prints = self.options.log_prints
        self.log_prints = flow_ctx.log_prints if log_prints is None else log_prints
        # The name is taken now, in the caller's thread, so it is stable across reruns.
        self.task_run = construct(TaskRun, {
            "id": new_id(), "flow_run_id": flow_ctx.flow_run.id, "task_name": task.name,
            "name": name if name is not None else take_run_name(task, flow_ctx, args, kwargs),
            "task_key": task.task_key,
            "state": new_state(StateType.PENDING), "start_time": None, "end_time": None,
            "run_count": 0, "tags": with_context_tags(self.options.tags), "cache_key": None,
            "parent_task_run_id": self.parent_task_run_id, "upstream_task_run_ids": [],
            "result_key": None, "version": 0,
        })
        flow_ctx.reporter.report_task_run(self.task_run)

    # -- state bookkeeping -------------------------------------------------------------------
    def _set(self, state: State) -> State:
        run = self.task_run
        state.__pydantic_private__["_of_run"] = True  # (not a state the user made)
        # The run's fields are written straight into its __dict__: pydantic's __setattr__
        # costs ~1 us per write and these values are the engine's own (built by `construct`).
        fields = run.__dict__
        fields["state"] = state
        fields["version"] += 1
        self.flow_ctx.reporter.report_task_run(run)
        return state

    @property
    def parameters(self) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied (bound lazily: only caching
        and hooks use it)."""
        if self._parameters is None:
            bound = self.task.signature.bind_partial(*self.args, **self.kwargs)
            bound.apply_defaults()
            self._parameters = dict(bound.arguments)
        return self._parameters

    def _context(self) -> TaskRunContext:
        return TaskRunContext(self.task, self.task_run, self.flow_ctx, self.log_prints,
                              self._parameters or {})

    def _begin(self) -> State | None:
        """Resolve inputs and the cache; a state returned here is final (nothing to run)."""
        upstream: list[TaskRun] = []
        try:
            if self.wait_for is not None:
                for dependency in self.wait_for:
                    resolve(dependency, upstream, self.flow_ctx)
            if self.args:
                self.args = resolve(self.args, upstream, self.flow_ctx)
            if self.kwargs:
                self.kwargs = resolve(self.kwargs, upstream, self.flow_ctx)
        except UpstreamFailed as exc:
            return self._finish_failed(exc, name="Failed")
        finally:
            if upstream:
                self.task_run.upstream_task_run_ids = list(dict.fromkeys(t.id for t in upstream))
        options = self.options
        if options.cache_key_fn is not None or options.cache_policy != "none":
            key = cache_key_for(self)
            if key is not None:
                self.task_run.cache_key = key
                hit = read_cached(self, key)
                if hit is not None:
                    return self._finish(hit)
        if self.flow_ctx.resuming and self.persists:
            done = read_earlier_attempt(self)
            if done is not None:
                return self._finish(done)
        return None

    @property
    def persists(self) -> bool:
        own = self.options.persist_result
        return bool(self.flow_ctx.persist_result if own is None else own)

    def _start_attempt(self) -> None:
        lease = self.flow_ctx.lease
        if lease is not None:
            lease.check()  # an attempt past its lease starts nothing more (issue 12)
        fields = self.task_run.__dict__  # see _set
        fields["run_count"] += 1
        if fields["start_time"] is None:
            fields["start_time"] = utcnow()
        running = self._set(new_state(StateType.RUNNING,
                                      "Retrying" if fields["run_count"] > 1 else "Running"))
        if self.options.on_running:
            run_hooks(self.options.on_running, self.task, self.task_run, running, self._logger)

    def _on_success(self, value: Any) -> State:
        if is_outcome(value):  # a returned state (or futures/states) decides how the run ends
            state = outcome_of(value, f"task run {self.task_run.name!r}")
            if not state.is_completed():
                return self._finish(state)
            value = state._result
            if self.task_run.cache_key is not None or self.persists:
                persist(self, value)
            return self._finish(state)
        if self.task_run.cache_key is not None or self.persists:
            persist(self, value)
        state = new_state(StateType.COMPLETED)
        state._result = value
        return self._finish(state)

    def _on_error(self, exc: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or None when the run is over."""
        timed_out = isinstance(exc, TaskTimeout)
        message = str(exc) if timed_out else f"{type(exc).__name__}: {exc}"
        failed = new_state(StateType.FAILED, "TimedOut" if timed_out else "Failed", message,
                           details={"exception_type": type(exc).__name__})
        failed._result = exc
        run = self.task_run
        if run.run_count <= self.options.retries and self._should_retry(failed):
            delay = self._retry_delay(run.run_count)
            self._logger().warning("Task run %r failed (%s); retry %d of %d in %.3g s",
                                   run.name, message, run.run_count, self.options.retries, delay)
            self._set(new_state(StateType.SCHEDULED, "AwaitingRetry", message,
                                scheduled_time=utcnow()))
            return delay
        self._log_failure(exc)
        self._finish(failed)
        return None

    def _should_retry(self, failed: State) -> bool:
        condition = self.options.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(call_maybe_async(condition, self.task, self.task_run, failed))
        except Exception as exc:
            self._logger().warning("retry_condition_fn raised %r; not retrying", exc)
            return False

    def _retry_delay(self, retry: int) -> float:
        delay = self.options.delay_for(retry)
        jitter = self.options.retry_jitter_factor
        if jitter:
            delay *= random.uniform(max(0.0, 1 - jitter), 1 + jitter)
        return max(0.0, delay)

    def _finish_failed(self, exc: BaseException, name: str) -> State:
        state = new_state(StateType.FAILED, name, str(exc),
                          details={"exception_type": type(exc).__name__})
        state._result = exc
        return self._finish(state)

    def _crash(self, exc: BaseException) -> None:
        state = new_state(StateType.CRASHED, message=f"{type(exc).__name__}: {exc}")
        state._result = exc
        self._finish(state)

    def _finish(self, state: State) -> State:
        self.task_run.__dict__["end_time"] = utcnow()  # see _set
        self._set(state)
        hooks = self.options.on_completion if state.is_completed() else self.options.on_failure
        if hooks:
            run_hooks(hooks, self.task, self.task_run, state, self._logger)
        return state

    def _logger(self) -> Any:
        from ..run_logging import run_logger_for

        return run_logger_for(self._context())

    def _log_failure(self, exc: BaseException) -> None:
        self._logger().error("Task run %r failed: %s: %s", self.task_run.name,
                             type(exc).__name__, exc, exc_info=exc)

    # -- the attempt loops ---------------------------------------------------------------------
    def run_sync(self) -> State:
        final = self._begin()
        if final is not None:
            return final
        token = task_run_ctx.set(self._context())
        try:
            while True:
                self._start_attempt()
                try:
                    if self.options.timeout_seconds is None:
                        value = (self.body or self.task.fn)(*self.args, **self.kwargs)
                    else:
                        value = call_with_timeout(
                            lambda: (self.body or self.task.fn)(*self.args, **self.kwargs),
                            self.options.timeout_seconds, f"task run {self.task_run.name!r}")
                except Exception as exc:
                    delay = self._on_error(exc)
                    if delay is None:
                        return self.task_run.state
                    if delay:
                        time.sleep(delay)
                    continue
                except BaseException as exc:
                    self._crash(exc)
                    raise
                return self._on_success(value)
        finally:
            task_run_ctx.reset(token)

    async def run_async(self) -> State:
        final = self._begin()
        if final is not None:
            return final
        token = task_run_ctx.set(self._context())
        try:
            while True:
                self._start_attempt()
                try:
                    coro = (self.body or self.task.fn)(*self.args, **self.kwargs)
                    timeout = self.options.timeout_seconds
                    if timeout is None:
                        value = await coro
                    else:  # a TimeoutError of the task's own passes through as itself
                        value = await await_with_timeout(coro, timeout,
                                                         f"task run {self.task_run.name!r}")
                except Exception as exc:
                    delay = self._on_error(exc)
                    if delay is None:
                        return self.task_run.state
                    if delay:
                        await asyncio.sleep(delay)
                    continue
                except BaseException as exc:
                    self._crash(exc)
                    raise
                return self._on_success(value)
        finally:
            task_run_ctx.reset(token)

    def run_in_thread(self) -> State:
        """Entry point in the flow's thread pool (a future's outcome is its final state)."""
        if self.task.is_async:
            return asyncio.run(self.run_async())
        return self.run_sync()
