"""`@task`: a tracked, retryable, cacheable unit of work inside a flow."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .task_options import TaskOptions
    from .cache_policies import CachePolicy as PolicyObject
    from .engine.futures import TaskFuture

P = ParamSpec("P")
R = TypeVar("R")

CachePolicy = Literal["none", "inputs", "source", "inputs+source"]
RetryDelay = float | list[float] | Callable[[int], float]


def __getattr__(name: str) -> Any:
    # `sluice.tasks.TaskOptions` as before, imported on first use (see `task_options`).
    if name == "TaskOptions":
        from .task_options import TaskOptions

        return TaskOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def exponential_backoff(backoff_factor: float) -> Callable[[int], float]:
    """Retry delays of `backoff_factor * 2 ** (retry - 1)` seconds: 1st retry after
    `backoff_factor`, 2nd after twice that, and so on. Use as `retry_delay_seconds=`."""
    if not isinstance(backoff_factor, (int, float)) or backoff_factor < 0:
        raise ValueError(f"backoff_factor must be a number >= 0, got {backoff_factor!r}")

    def delay(retry: int) -> float:
        return float(backoff_factor) * 2 ** (retry - 1)

    delay.__name__ = f"exponential_backoff({backoff_factor})"
    return delay


class unmapped(Generic[R]):  # noqa: N801 - reads like the function users know from Prefect
    """Wrap an argument of `Task.map` that is passed whole to every call instead of mapped."""

    __slots__ = ("value",)

    def __init__(self, value: R) -> None:
        self.value = value


class Task(Generic[P, R]):
    """A function made into a tracked task. Call it inside a flow to run it (the value comes
    back), `.submit()` it to run concurrently (a future comes back), or `.map()` it over
    iterables. Outside a flow, calling it is still a tracked run (retries, timeouts, caching,
    hooks, run logger), reported in a lightweight flow run named after the task. The function
    stays available, untouched, as `.fn`."""

    def __init__(self, fn: Callable[P, R], options: TaskOptions) -> None:
        from ._callables import check_reserved, unwrap

        fn, self._binding = unwrap(fn, "@task")
        self.fn = fn
        self.options = options
        self.name: str = options.name or getattr(fn, "__name__", "task")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.task_key = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', self.name)}"
        self._signature: inspect.Signature | None = None
        update_wrapper(self, fn)  # type: ignore[arg-type]
        try:
            self._signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to check
            pass
        else:
            check_reserved(self._signature, "@task", self.name)
            if options.task_run_name is not None:
                from .engine.run_names import check_template

                check_template("task_run_name", "@task", options.task_run_name, self._signature)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """Tasks defined in a class bind like methods (`self`/`cls` passed on calls)."""
        from ._callables import bound_copy

        return bound_copy(self, instance, owner, self._binding)

    def _reset_signature(self) -> None:
        self._signature = None

    @property
    def description(self) -> str | None:
        """The `description` option, else the function's docstring (as in Prefect)."""
        return self.options.description or inspect.getdoc(self.fn)

    @property
    def signature(self) -> inspect.Signature:
        if self._signature is None:
            self._signature = inspect.signature(self.fn)
        return self._signature

    def with_options(self, **changes: Any) -> Task[P, R]:
        """A copy of this task with some options changed, e.g. `.with_options(retries=5)`."""
        copy = Task(self.fn, self.options.replace("@task", **changes))
        copy._binding = self._binding
        return copy

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .engine.task_engine import call_task

        return call_task(self, args, kwargs)

    def submit(self, *args: Any, wait_for: Iterable[Any] | None = None,
               **kwargs: Any) -> TaskFuture[R]:
        """Run the task concurrently in the flow run's thread pool; returns a future (with
        `return_state=True`: waits, and returns the run's final state instead)."""
        from .engine.dispatch import submit_task

        return submit_task(self, args, kwargs, wait_for=wait_for)

    def map(self, *args: Any, wait_for: Iterable[Any] | None = None,
            **kwargs: Any) -> list[TaskFuture[R]]:
        """Submit one run per element of the iterable arguments (zipped; lengths must match).
        Wrap constants in `unmapped(...)`; strings, bytes, dicts and futures are passed whole.
        Returns a `TaskFutureList` (a list with `.result()` and `.wait()`), or with
        `return_state=True` waits and returns the runs' final states."""
        from .engine.dispatch import map_task

        return map_task(self, args, kwargs, wait_for=wait_for)


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *, name: str | None = ..., description: str | None = ..., tags: Iterable[str] | None = ...,
    retries: int = ..., retry_delay_seconds: RetryDelay = ...,
    retry_jitter_factor: float | None = ..., retry_condition_fn: Callable[..., bool] | None = ...,
    timeout_seconds: float | None = ..., cache_key_fn: Callable[..., str | None] | None = ...,
    cache_expiration: timedelta | float | None = ...,
    cache_policy: CachePolicy | PolicyObject = ..., refresh_cache: bool | None = ...,
    persist_result: bool | None = ..., result_storage: Any = ..., log_prints: bool | None = ...,
    on_completion: Any = ..., on_failure: Any = ..., on_running: Any = ...,
    task_run_name: str | Callable[..., str] | None = ...,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a task: `@task` or `@task(retries=3, cache_policy='inputs+source')`.

    Options are validated here, when the decorator is applied; a bad one raises
    `ConfigurationError` naming the option with a correct example."""
    if fn is not None and not callable(fn) and not isinstance(fn, (staticmethod, classmethod)):
        raise ConfigurationError(
            f"@task got {fn!r} as a positional argument; pass options by name, "
            f"e.g. @task(name={fn!r})" if isinstance(fn, str) else f"@task decorates functions, got {fn!r}"
        )
    from .task_options import TaskOptions  # pydantic, on the first decoration (issue 20)

    validated = TaskOptions.build("@task", **options)
    if fn is not None:
        return Task(fn, validated)
    return lambda f: Task(f, validated)
