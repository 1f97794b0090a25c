"""Runs flow calls: the flow-run record, parameters, attempts, timeouts, subflows, hooks."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from ..exceptions import ParameterValidationError, RunAborted, TaskTimeout, UpstreamFailed
from ..leases import LeaseLost
from ..models import FlowRun, State, StateType, new_id, new_state, utcnow
from .context import FlowRunContext, flow_run_ctx, task_run_ctx
from .futures import TaskFuture, state_result
from .inputs import resolve_flow_inputs
from .outcomes import is_outcome, outcome_of
from ..annotations import with_context_tags
from ..names import run_name
from ..redaction import register_secrets_in
from .parameters import bind, stored_form, validate
from .reporters import reporter_for_new_run
from .subflow_results import persist_subflow_result, reuse_subflow_result, subflow_result_key
from .hooks import run_hooks
from .timeouts import await_with_timeout, call_with_timeout

if TYPE_CHECKING:
    from ..flows import Flow
    from ..reporting import Reporter


def call_flow(flow: Flow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return_state = kwargs.pop("return_state", False)
    wait_for = kwargs.pop("wait_for", None)
    # Futures and states passed to a (sub)flow, and its `wait_for`, are waited for here.
    args, kwargs, blocked = resolve_flow_inputs(args, kwargs, wait_for)
    runner = FlowRunner(flow, args, kwargs)
    runner.blocked = blocked
    if flow.is_async:
        return _await_flow(runner, return_state)
    state = runner.run_sync()
    return state if return_state else state_result(state)


async def _await_flow(runner: FlowRunner, return_state: bool) -> Any:
    state = await runner.run_async()
    return state if return_state else state_result(state)


def run_flow(flow: Flow[Any, Any], parameters: dict[str, Any] | None = None, *,
             reporter: Reporter | None = None, flow_run: FlowRun | None = None) -> State:
    """Run a flow with keyword parameters and return its final state (the value is
    `state.result()`). Workers pass the run the control plane created (`flow_run`), which is
    adopted instead of creating a new one; tests pass their reporter."""
    runner = FlowRunner(flow, (), dict(parameters or {}), reporter=reporter, adopt=flow_run)
    if flow.is_async:
        return asyncio.run(runner.run_async())
    return runner.run_sync()


class FlowRunner:
    #: An upstream (a `wait_for` or an input future/state) did not complete: the run ends
    #: Failed naming it, without running.
    blocked: UpstreamFailed | None = None

    def __init__(self, flow: Flow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                 reporter: Reporter | None = None, adopt: FlowRun | None = None) -> None:
        self.flow = flow
        self.options = flow.options
        self.parent = flow_run_ctx.get()
        parent_task = task_run_ctx.get()
        self.reporter = reporter or (self.parent.reporter if self.parent else
                                     reporter_for_new_run())
        self.bound = bind(flow, args, kwargs)  # a TypeError here is the caller's, as usual
        name_spec = flow.options.flow_run_name
        if name_spec is None or (adopt is not None and adopt.name):
            name = run_name()  # (a worker's run keeps the name the control plane gave it)
        else:  # a name that cannot be rendered is the caller's error too (ConfigurationError)
            from .run_names import render_run_name

            name = render_run_name("flow_run_name", name_spec, self.bound.arguments)
        log_prints = flow.options.log_prints  # None: as the enclosing task or flow run
        enclosing = parent_task or self.parent
        self.log_prints = bool(enclosing.log_prints if log_prints is None and enclosing
                               else log_prints)
        self.flow_run = FlowRun(
            id=adopt.id if adopt else new_id(),
            flow_name=flow.name,
            name=name,
            state=new_state(StateType.PENDING),
            parameters={},
            tags=with_context_tags(flow.options.tags),
            retries=flow.options.retries,
            retry_delay_seconds=flow.options.retry_delay_seconds,
            parent_flow_run_id=self.parent.flow_run.id if self.parent else None,
            parent_task_run_id=parent_task.task_run.id if parent_task else None,
            created=utcnow(),
        )
        if adopt is not None:
            # A worker's run: keep the control plane's identity; this process makes attempts.
            self.flow_run.name = adopt.name or self.flow_run.name
            self.flow_run.deployment_id = adopt.deployment_id
            self.flow_run.pool = adopt.pool
            self.flow_run.tags = list(adopt.tags) or self.flow_run.tags
            self.flow_run.run_count = max(0, adopt.run_count - 1)
            self.flow_run.state = adopt.state
        self.context: FlowRunContext | None = None
        #: Attempts made by this process (in-process retries count these, not run_count,
        #: which also counts attempts of earlier processes of a worker's run).
        self._attempts = 0
        #: A persisting subflow's result key in its parent run (reused when the parent retries).
        self.subflow_key = subflow_result_key(self)

    # -- transitions ---------------------------------------------------------------------------
    def _set(self, state: State) -> State:
        run = self.flow_run
        if state.type is StateType.RUNNING and run.start_time is None:
            run.start_time = state.timestamp
        if state.is_terminal:
            run.end_time = state.timestamp
        accepted = self.reporter.set_flow_run_state(run, state, os.urandom(8).hex())
        if accepted is not state:  # the control plane may have answered with its own state
            accepted._result = state._result
        accepted.__pydantic_private__["_of_run"] = True  # (not a state the user made)
        run.state = accepted
        return accepted

    def _logger(self) -> Any:
        from ..run_logging import run_logger_for

        return run_logger_for(self.context)

    def _begin(self) -> State | None:
        if self.subflow_key is not None:
            reused = reuse_subflow_result(self, self.subflow_key)
            if reused is not None:
                return reused
        from ..run_logging import capture_prints, configure_run_logging

        from ..settings import get_settings

        configure_run_logging(get_settings().logging_level)
        if self.log_prints:
            capture_prints()
        invalid: ParameterValidationError | None = None
        if self.options.validate_parameters:
            try:
                validate(self.flow, self.bound)
            except ParameterValidationError as exc:
                invalid = exc
        # SecretStr parameters: masked wherever this run's logs and states go from now on.
        register_secrets_in(self.bound.arguments)
        self.flow_run.parameters = stored_form(self.flow, self.bound.arguments)
        self.reporter.create_flow_run(self.flow_run)
        self.context = FlowRunContext(
            flow=self.flow, flow_run=self.flow_run, reporter=self.reporter,
            log_prints=self.log_prints,
            result_storage=self.options.result_storage or
            (self.parent.result_storage if self.parent else None),
            max_workers=self.options.max_workers,
            task_runner=self.options.task_runner,
            persist_result=self.options.persist_result,
            lease=self.reporter.lease_of(self.flow_run.id),
            parameters=self.bound.arguments,
        )
        self._logger().info("Beginning flow run %r for flow %r", self.flow_run.name,
                            self.flow.name)
        if self.blocked is not None:
            state = new_state(StateType.FAILED, message=str(self.blocked),
                              details={"exception_type": "UpstreamFailed"})
            state._result = self.blocked
            return self._finish(state)
        if invalid is not None:
            state = new_state(StateType.FAILED, message=invalid.message,
                              details={"errors": invalid.details})
            state._result = invalid
            return self._finish(state)
        return None

    def _start_attempt(self) -> None:
        self.flow_run.run_count += 1
        self._attempts += 1
        assert self.context is not None
        # Each attempt names its task runs from 0 again, so an attempt finds what an earlier
        # one persisted under the same names.
        self.context.task_counters.clear()
        self.context.futures.clear()
        self.context.resuming = self.flow_run.run_count > 1
        name = "Retrying" if self.flow_run.run_count > 1 else "Running"
        running = self._set(new_state(StateType.RUNNING, name))
        if self.options.on_running:
            self._run_hooks(self.options.on_running, running)

    def _settle_futures(self, value: Any) -> State:
        """Wait for submitted task runs; the flow fails if a failed one went unobserved."""
        assert self.context is not None
        outcome = None
        if is_outcome(value):  # a returned state, future(s) or states decide the outcome
            outcome = outcome_of(value, f"flow run {self.flow_run.name!r}")
        else:
            value = _resolve_returned(value)
        failed = []
        for future in self.context.futures:
            state = future._future.result() if future._future.done() else _wait_state(future)
            if not state.is_completed() and not future._observed:
                failed.append((future, state))
        if failed:
            names = ", ".join(f.task_run.name for f, _ in failed[:5])
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            first = failed[0][1]
            state = new_state(StateType.FAILED,
                              message=f"{len(failed)} task run(s) failed: {names}{more}")
            state._result = first._result if isinstance(first._result, BaseException) else \
                RuntimeError(state.message)
            return state
        if outcome is not None:
            return outcome
        state = new_state(StateType.COMPLETED)
        state._result = value
        return state

    def _on_error(self, exc: BaseException) -> float | None:
        run = self.flow_run
        timed_out = isinstance(exc, TaskTimeout)
        message = str(exc) if timed_out else f"{type(exc).__name__}: {exc}"
        if self._attempts <= self.options.retries:
            self._logger().warning("Flow run failed (%s); retrying in %g s", message,
                                   self.options.retry_delay_seconds)
            self._set(new_state(StateType.SCHEDULED, "AwaitingRetry", message,
                                scheduled_time=utcnow()))
            return self.options.retry_delay_seconds
        self._logger().error("Flow run failed: %s", message, exc_info=exc)
        state = new_state(StateType.FAILED, "TimedOut" if timed_out else "Failed", message,
                          details={"exception_type": type(exc).__name__})
        state._result = exc
        self._finish(state)
        return None

    def _crash(self, exc: BaseException) -> None:
        state = new_state(StateType.CRASHED, message=f"{type(exc).__name__}: {exc}")
        state._result = exc
        self._finish(state)

    def _aborted(self, exc: RunAborted) -> State:
        state = new_state(StateType.CANCELLED, message=str(exc))
        state._result = exc
        if isinstance(exc, LeaseLost) and exc.cancelled:
            # Cancelled while the run held its lease (a script run): confirm it. A lease that
            # went to another attempt refuses this, and nothing is written.
            try:
                self.reporter.set_flow_run_state(self.flow_run, state, os.urandom(8).hex())
            except RunAborted:
                pass
        self.flow_run.state = state
        self.flow_run.end_time = state.timestamp
        self._run_hooks(self.options.on_cancellation, state)
        return state

    def _finish(self, state: State) -> State:
        # Said before the state is reported, so the line rides with the run's last batch, in
        # the request that carries the final state: logged after it, the line cost a request
        # of its own (a short run's only log request besides the final one) and reached
        # watchers after the run had ended.
        level = "info" if state.is_completed() else "error"
        getattr(self._logger(), level)("Finished in state %s", state)
        try:
            final = self._set(state)
        except RunAborted as exc:
            self._logger().warning("The control plane did not record %s: %s", state.name, exc)
            return self._aborted(exc)
        if (final.type, final.name) != (state.type, state.name):
            # The control plane answered with a state of its own: the line above proposed it.
            self._logger().warning("The control plane recorded %s instead", final)
        if self.subflow_key is not None and final.is_completed():
            persist_subflow_result(self, self.subflow_key, final)
        options = self.options
        hooks = {StateType.COMPLETED: options.on_completion, StateType.FAILED: options.on_failure,
                 StateType.CRASHED: options.on_crashed,
                 StateType.CANCELLED: options.on_cancellation}.get(final.type, ())
        self._run_hooks(hooks, final)
        return final

    def _run_hooks(self, hooks: tuple[Any, ...], state: State) -> None:
        run_hooks(hooks, self.flow, self.flow_run, state, self._logger)

    def _end(self) -> None:
        if self.context is not None:
            self.context.shutdown()
            if self.context.lease is not None:
                # Whatever the control plane heard, this process no longer runs the run: stop
                # renewing its lease (unreported, the monitor ends it when the lease runs out).
                self.context.lease.ended = True
        if self.parent is None:
            self.reporter.flush(timeout=10)

    # -- the attempt loops ---------------------------------------------------------------------
    def run_sync(self) -> State:
        try:
            final = self._begin()
            if final is not None:
                return final
            token = flow_run_ctx.set(self.context)
            try:
                while True:
                    self._start_attempt()
                    try:
                        call = lambda: self.flow.fn(*self.bound.args, **self.bound.kwargs)  # noqa: E731
                        timeout = self.options.timeout_seconds
                        value = call() if timeout is None else call_with_timeout(
                            call, timeout, f"flow run {self.flow_run.name!r}")
                        state = self._settle_futures(value)
                    except RunAborted:
                        raise
                    except Exception as exc:
                        delay = self._on_error(exc)
                        if delay is None:
                            return self.flow_run.state
                        time.sleep(delay)
                        continue
                    except BaseException as exc:
                        self._crash(exc)
                        raise
                    if state.is_completed() or not self._retry_after_failed_tasks(state):
                        return self._finish(state)
            finally:
                flow_run_ctx.reset(token)
        except RunAborted as exc:
            return self._aborted(exc)
        finally:
            self._end()

    async def run_async(self) -> State:
        try:
            final = self._begin()
            if final is not None:
                return final
            token = flow_run_ctx.set(self.context)
            try:
                while True:
                    self._start_attempt()
                    try:
                        coro = self.flow.fn(*self.bound.args, **self.bound.kwargs)
                        # Only the flow's own timeout becomes TimedOut; a TimeoutError the
                        # flow raises itself fails the run with that error.
                        value = await await_with_timeout(coro, self.options.timeout_seconds,
                                                         f"flow run {self.flow_run.name!r}")
                        state = self._settle_futures(value)
                    except RunAborted:
                        raise
                    except Exception as exc:
                        delay = self._on_error(exc)
                        if delay is None:
                            return self.flow_run.state
                        await asyncio.sleep(delay)
                        continue
                    except BaseException as exc:
                        self._crash(exc)
                        raise
                    if state.is_completed() or not self._retry_after_failed_tasks(state):
                        return self._finish(state)
            finally:
                flow_run_ctx.reset(token)
        except RunAborted as exc:
            return self._aborted(exc)
        finally:
            self._end()

    def _retry_after_failed_tasks(self, state: State) -> bool:
        """A flow whose tasks failed is retried like one that raised (when retries are left)."""
        if self._attempts > self.options.retries or state.is_cancelled():
            return False
        assert self.context is not None
        self.context.futures.clear()
        self._set(new_state(StateType.SCHEDULED, "AwaitingRetry", state.message,
                            scheduled_time=utcnow()))
        if self.options.retry_delay_seconds:
            time.sleep(self.options.retry_delay_seconds)
        return True


def _wait_state(future: TaskFuture[Any]) -> State:
    future.wait()
    return future._future.result()


def _resolve_returned(value: Any) -> Any:
    """A flow that returns futures returns their values (a failure raises into the flow)."""
    if isinstance(value, TaskFuture):
        return value.result()
    if isinstance(value, (list, tuple)) and value and any(isinstance(v, TaskFuture)
                                                         for v in value):
        return type(value)(v.result() if isinstance(v, TaskFuture) else v for v in value)
    if type(value) is dict and any(isinstance(v, TaskFuture) for v in value.values()):
        return {k: v.result() if isinstance(v, TaskFuture) else v for k, v in value.items()}
    return value
