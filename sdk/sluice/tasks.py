"""`@task`: a tracked, retryable, cacheable unit of work inside a flow."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from pydantic import Field, StrictInt, field_validator, model_validator

from ._options import Hook, RunOptions, check_seconds
from .models.bounds import MAX_CACHE_EXPIRATION_SECONDS
from .models.names import TaskName
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .cache_policies import CachePolicy as PolicyObject
    from .engine.futures import TaskFuture

P = ParamSpec("P")
R = TypeVar("R")

CachePolicy = Literal["none", "inputs", "source", "inputs+source"]
_POLICY_NAMES = ("none", "inputs", "source", "inputs+source")
RetryDelay = float | list[float] | Callable[[int], float]


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


class TaskOptions(RunOptions):
    """Every option of `@task`, once. Frozen: `Task.with_options` builds a new one."""

    examples = {
        "name": "name='load-orders'",
        "description": "description='Loads one day of orders'",
        "tags": "tags=['etl']",
        "retries": "retries=3",
        "retry_delay_seconds": "retry_delay_seconds=[1, 10, 60]",
        "retry_jitter_factor": "retry_jitter_factor=0.5",
        "retry_condition_fn": "retry_condition_fn=lambda task, task_run, state: True",
        "timeout_seconds": "timeout_seconds=30",
        "cache_key_fn": "cache_key_fn=lambda context, parameters: parameters['day']",
        "cache_expiration": "cache_expiration=timedelta(hours=1)",
        "cache_policy": "cache_policy='inputs+source'",
        "refresh_cache": "refresh_cache=True",
        "persist_result": "persist_result=True",
        "result_storage": "result_storage='s3://my-bucket/results'",
        "log_prints": "log_prints=True",
        "on_completion": "on_completion=[notify]",
        "on_failure": "on_failure=[alert]",
        "on_running": "on_running=[note_start]",
        "task_run_name": "task_run_name='load-{table}'",
    }

    name: TaskName | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    retries: StrictInt = Field(default=0, ge=0)
    retry_delay_seconds: RetryDelay = 0
    retry_jitter_factor: float | None = Field(default=None, ge=0)
    retry_condition_fn: Callable[..., bool] | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    cache_key_fn: Callable[..., str | None] | None = None
    cache_expiration: timedelta | None = None
    #: One of the strings in `CachePolicy`, or a `sluice.cache_policies` policy (`NONE` is
    #: stored as "none").
    cache_policy: Any = "none"
    #: Run even on a cache hit and overwrite the stored value (None: `SLUICE_TASKS_REFRESH_CACHE`).
    refresh_cache: bool | None = None
    persist_result: bool | None = None
    result_storage: Any = None
    log_prints: bool | None = None
    on_completion: tuple[Hook, ...] = ()
    on_failure: tuple[Hook, ...] = ()
    on_running: tuple[Hook, ...] = ()
    #: The task run's name: a template over the parameters ("load-{table}") or a callable
    #: (taking the parameters dict, or nothing). Default: "<task name>-<n>".
    task_run_name: str | Callable[..., str] | None = None

    @field_validator("retry_delay_seconds", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        if callable(value) or isinstance(value, bool):
            if isinstance(value, bool):
                raise ValueError("must be a number, a list of numbers or a callable")
            return value
        if isinstance(value, (int, float)):
            if value < 0:
                raise ValueError("must be >= 0")
            return float(value)
        if isinstance(value, (list, tuple)):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                       for v in value):
                raise ValueError("must be a list of numbers >= 0")
            return [float(v) for v in value]
        raise ValueError("must be a number, a list of numbers or a callable")

    @field_validator("cache_policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        if isinstance(value, str) and value in _POLICY_NAMES:
            return value
        if not isinstance(value, str):
            from .cache_policies import NONE, CachePolicy as PolicyClass

            if isinstance(value, PolicyClass):
                return "none" if value == NONE else value
        raise ValueError(
            "must be 'none', 'inputs', 'source', 'inputs+source' or a policy from "
            "sluice.cache_policies such as INPUTS + TASK_SOURCE or INPUTS - 'verbose'"
        )

    @field_validator("cache_expiration", mode="before")
    @classmethod
    def _expiration(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # Bounded before `timedelta()`, which overflows on a huge number of seconds.
            check_seconds(value, MAX_CACHE_EXPIRATION_SECONDS, "MAX_CACHE_EXPIRATION_SECONDS",
                          "ten years; leave it unset for a cache that never expires")
            value = timedelta(seconds=value)
        if isinstance(value, timedelta) and value.total_seconds() <= 0:
            raise ValueError("must be positive")
        return value


    @model_validator(mode="after")
    def _consistent(self) -> TaskOptions:
        delays = self.retry_delay_seconds
        if isinstance(delays, list) and len(delays) > self.retries:
            raise ValueError(
                f"retry_delay_seconds lists {len(delays)} delays but retries={self.retries}; "
                f"give at most one delay per retry, e.g. retries={len(delays)}"
            )
        if self.persist_result is False and self.cache_policy != "none":
            raise ValueError(
                "cache_policy needs persisted results; drop persist_result=False or use "
                "cache_policy='none'"
            )
        return self

    def delay_for(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based), before jitter."""
        delays = self.retry_delay_seconds
        if callable(delays):
            return float(delays(retry))
        if isinstance(delays, list):
            return delays[min(retry, len(delays)) - 1] if delays else 0.0
        return float(delays)


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
    validated = TaskOptions.build("@task", **options)
    if fn is not None:
        return Task(fn, validated)
    return lambda f: Task(f, validated)
