"""`TaskOptions`: every option of `@task`, validated when the decorator is applied.

A module of its own so that `from sluice import task` does not import pydantic or build the
model: the first `@task` does (issue 20, as `flow_options`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import Field, StrictInt, field_validator, model_validator

from ._options import Hook, RunOptions, check_seconds
from .models.bounds import MAX_CACHE_EXPIRATION_SECONDS
from .models.names import TaskName
from .tasks import RetryDelay

#: The cache policies named by a string (`sluice.tasks.CachePolicy`).
POLICY_NAMES = ("none", "inputs", "source", "inputs+source")


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
        if isinstance(value, str) and value in POLICY_NAMES:
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
