"""Sluice: Python-native workflow orchestration with a serverless control plane.

    from sluice import flow, task

    @task(retries=2)
    def double(x: int) -> int:
        return 2 * x

    @flow
    def pipeline(n: int = 3) -> list[int]:
        return [f.result() for f in double.map(range(n))]

Importing this package has no side effects and loads submodules only when a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    # defining flows and tasks
    "flow", "task", "Flow", "Task", "unmapped", "exponential_backoff",
    "allow_failure", "quote", "tags",
    # inside runs
    "get_run_logger", "wait", "as_completed", "TaskFuture", "TaskFutureList", "secret",
    "emit_event",
    # running
    "run_flow", "use_reporter", "run_deployment",
    "ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "DaskTaskRunner",
    # states
    "State", "StateType", "Completed", "Failed", "Cancelled", "Crashed", "Pending", "Running",
    "Scheduled", "Paused", "Cached",
    # errors
    "SluiceError",
    # metadata
    "__version__",
]

_LAZY = {
    "flow": "sluice.flows", "Flow": "sluice.flows",
    "task": "sluice.tasks", "Task": "sluice.tasks", "unmapped": "sluice.tasks",
    "exponential_backoff": "sluice.tasks",
    "allow_failure": "sluice.annotations", "quote": "sluice.annotations",
    "tags": "sluice.annotations",
    "get_run_logger": "sluice.run_logging",
    "wait": "sluice.engine.futures", "as_completed": "sluice.engine.futures",
    "TaskFuture": "sluice.engine.futures", "TaskFutureList": "sluice.engine.futures",
    "secret": "sluice.secrets",
    "emit_event": "sluice.event_emitter",
    "run_flow": "sluice.engine", "use_reporter": "sluice.engine",
    "run_deployment": "sluice.deployments",
    **dict.fromkeys(["ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "DaskTaskRunner"],
                    "sluice.task_runners"),
    "State": "sluice.models", "StateType": "sluice.models",
    **dict.fromkeys(["Completed", "Failed", "Cancelled", "Crashed", "Pending", "Running",
                     "Scheduled", "Paused", "Cached"], "sluice.states"),
    "SluiceError": "sluice.exceptions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sluice' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .annotations import allow_failure, quote, tags
    from .deployments import run_deployment
    from .engine import run_flow, use_reporter
    from .engine.futures import TaskFuture, TaskFutureList, as_completed, wait
    from .event_emitter import emit_event
    from .exceptions import SluiceError
    from .flows import Flow, flow
    from .models import State, StateType
    from .states import (Cached, Cancelled, Completed, Crashed, Failed, Paused, Pending, Running,
                         Scheduled)
    from .run_logging import get_run_logger
    from .secrets import secret
    from .task_runners import DaskTaskRunner, ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from .tasks import Task, exponential_backoff, task, unmapped
