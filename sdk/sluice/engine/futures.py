"""Futures of submitted task runs, and `wait` / `as_completed` over them."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from ..exceptions import UpstreamFailed
from .context import task_run_ctx
from .jobs import help_with, wait_all

if TYPE_CHECKING:
    from ..models import State, TaskRun

R = TypeVar("R")


class TaskFuture(Generic[R]):
    """The eventual outcome of a submitted task run."""

    __slots__ = ("_future", "task_run", "_observed")

    def __init__(self, future: cf.Future[State], task_run: TaskRun) -> None:
        self._future = future
        self.task_run = task_run
        #: Whether user code looked at the outcome; an unobserved failure fails the flow.
        self._observed = False

    @property
    def task_run_id(self) -> str:
        return self.task_run.id

    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run ends (or `timeout` seconds pass)."""
        wait_all([self._future], timeout=timeout)

    def done(self) -> bool:
        return self._future.done()

    @property
    def state(self) -> State:
        """The run's state now, without waiting: Pending or Running (AwaitingRetry between
        attempts) while it runs, its final state once it ended (which counts as looking at the
        outcome: a failure seen here no longer fails the flow on its own)."""
        if self._future.done():
            self._observed = True
            return self._future.result()
        return self.task_run.state

    def final_state(self) -> State:
        """Wait for the run to end and return its final state (does not mark it observed)."""
        return self._future.result()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value. If the run failed, raise its exception, or return it when
        `raise_on_failure=False`. Raises `TimeoutError` if it has not ended within `timeout`."""
        try:
            state = self._future.result(timeout=timeout)
        except cf.TimeoutError:
            raise TimeoutError(
                f"task run {self.task_run.name!r} did not finish within {timeout} s"
            ) from None
        self._observed = True
        return state_result(state, raise_on_failure)

    def __repr__(self) -> str:
        status = self._future.result().name if self._future.done() else "running"
        return f"TaskFuture({self.task_run.name!r}, {status})"


def state_result(state: State, raise_on_failure: bool = True) -> Any:
    """The value a final state carries in this process, or its exception."""
    if state.is_completed():
        return state._result  # type: ignore[attr-defined]
    error = state._result  # type: ignore[attr-defined]
    if not isinstance(error, BaseException):
        if not state.is_terminal:
            error = UpstreamFailed(f"{state.name}: {state.message}")
        else:  # ended by a returned state: raise the failure it stands for, or give its data
            from .outcomes import failure_of

            if not raise_on_failure and error is not None:
                return error
            error = failure_of(state)
    if raise_on_failure:
        raise error
    return error


class TaskFutureList(list):  # type: ignore[type-arg]
    """The futures `Task.map` returns: a list, plus `.wait()` and `.result()` over all of them
    (Prefect's `PrefectFutureList`)."""

    def wait(self, timeout: float | None = None) -> None:
        """Block until every run ended (or `timeout` seconds passed)."""
        wait_all([f._future for f in self], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        """Every run's value, in order. The first failure raises (or, with
        `raise_on_failure=False`, its exception takes its place). Raises `TimeoutError` if
        they have not all ended within `timeout`."""
        _, not_done = wait_all([f._future for f in self], timeout=timeout)
        if not_done:
            raise TimeoutError(f"{len(not_done)} of {len(self)} task runs did not finish "
                               f"within {timeout} s")
        return [f.result(raise_on_failure=raise_on_failure) for f in self]


class DoneAndNotDone(NamedTuple):
    done: set[TaskFuture[Any]]
    not_done: set[TaskFuture[Any]]


def wait(futures: Iterable[TaskFuture[Any]], timeout: float | None = None) -> DoneAndNotDone:
    """Wait for futures to end; returns `(done, not_done)` sets (not_done is non-empty only
    when `timeout` ran out)."""
    futures = list(futures)
    by_inner = {f._future: f for f in futures}
    done, not_done = wait_all(list(by_inner), timeout=timeout)
    return DoneAndNotDone({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(futures: Iterable[TaskFuture[Any]],
                 timeout: float | None = None) -> Iterator[TaskFuture[Any]]:
    """Yield futures as their task runs end, first finished first."""
    by_inner = {f._future: f for f in futures}
    if timeout is None and task_run_ctx.get() is not None:
        for inner in by_inner:  # inside a task: run queued ones here rather than starve the pool
            help_with(inner)
    for inner in cf.as_completed(list(by_inner), timeout=timeout):
        yield by_inner[inner]
