"""`FlowOptions`: every option of `@flow`, validated when the decorator is applied.

A module of its own so that `from sluice import flow` does not import pydantic or build the
model: the first `@flow` does (issue 20: the import is what Lambda cold starts and short
scripts pay, and most of it was pydantic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, StrictInt, field_validator, model_validator

from ._options import Hook, RunOptions
from .models.names import FlowName


class FlowOptions(RunOptions):
    """Every option of `@flow`, once. Frozen: `Flow.with_options` builds a new one."""

    examples = {
        "name": "name='nightly-etl'",
        "description": "description='Loads yesterday's orders'",
        "version": "version='2024.06.1'",
        "retries": "retries=2",
        "retry_delay_seconds": "retry_delay_seconds=30",
        "timeout_seconds": "timeout_seconds=3600",
        "validate_parameters": "validate_parameters=False",
        "log_prints": "log_prints=True",
        "tags": "tags=['etl', 'nightly']",
        "max_workers": "max_workers=8",
        "persist_result": "persist_result=True",
        "result_storage": "result_storage='s3://my-bucket/results'",
        "on_completion": "on_completion=[notify]",
        "on_failure": "on_failure=[page_oncall]",
        "on_crashed": "on_crashed=[page_oncall]",
        "on_cancellation": "on_cancellation=[cleanup]",
        "on_running": "on_running=[note_start]",
        "flow_run_name": "flow_run_name='etl-{day}'",
        "task_runner": "task_runner=ThreadPoolTaskRunner(max_workers=8)",
    }

    name: FlowName | None = None
    description: str | None = None
    version: str | None = None
    retries: StrictInt = Field(default=0, ge=0)
    retry_delay_seconds: float = Field(default=0, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    validate_parameters: bool = True
    #: Route print() in the run to its logger; None: as the parent flow/task run (else off).
    log_prints: bool | None = None
    tags: tuple[str, ...] = ()
    max_workers: StrictInt | None = Field(default=None, ge=1)
    persist_result: bool | None = None
    result_storage: Any = None
    on_completion: tuple[Hook, ...] = ()
    on_failure: tuple[Hook, ...] = ()
    on_crashed: tuple[Hook, ...] = ()
    on_cancellation: tuple[Hook, ...] = ()
    on_running: tuple[Hook, ...] = ()
    #: The flow run's name: a template over the parameters ("etl-{day}") or a callable
    #: (taking the parameters dict, or nothing). Default: a random "adjective-animal".
    flow_run_name: str | Callable[..., str] | None = None
    #: Where submitted tasks run (sluice.task_runners); None: ThreadPoolTaskRunner(max_workers).
    task_runner: Any = None

    @field_validator("retry_delay_seconds", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number of seconds >= 0")
        return value

    @field_validator("task_runner", mode="before")
    @classmethod
    def _task_runner(cls, value: Any) -> Any:
        from .task_runners import as_task_runner

        return as_task_runner(value)

    @model_validator(mode="after")
    def _one_pool_size(self) -> FlowOptions:
        if self.task_runner is not None and self.max_workers is not None:
            raise ValueError("give `max_workers` to the task runner instead of the flow, e.g. "
                             "task_runner=ThreadPoolTaskRunner(max_workers=8); not both")
        return self
