"""Cache keys and persisted results of task runs."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from ..models import StateType, new_state
from .results import MISSING, ResultStorage, dump_result, load_result, storage_from

if TYPE_CHECKING:
    from ..models import State
    from .task_engine import TaskRunner


def cache_key_for(runner: TaskRunner) -> str | None:
    """The run's cache key, namespaced by task, or None when this call is not cacheable.

    `cache_key_fn` wins over `cache_policy` (as in Prefect). A key that cannot be computed (an
    input that cannot be hashed by value, a key function that raises) is logged as a warning
    and the call runs without the cache: it never falls back to something that could collide."""
    task = runner.task
    options = task.options
    try:
        inputs = runner.parameters
        if options.cache_key_fn is not None:
            user_key = options.cache_key_fn(runner._context(), inputs)
            if user_key is None:
                return None
            material = f"key:{user_key}"
        else:
            from ..cache_policies import as_policy

            flow_parameters = getattr(runner.flow_ctx, "parameters", None) or {}
            key = as_policy(options.cache_policy).compute_key(
                task_ctx=runner._context(), inputs=inputs, flow_parameters=flow_parameters)
            if key is None:
                return None
            material = f"policy:{key}"
    except Exception as exc:
        runner._logger().warning(
            "no cache key for task run %r, so it runs without the cache: %s: %s",
            runner.task_run.name, type(exc).__name__, exc)
        return None
    return hashlib.sha256(f"{task.task_key}|{material}".encode()).hexdigest()


def refreshes(runner: TaskRunner) -> bool:
    """`refresh_cache`: the task's option, else the SLUICE_TASKS_REFRESH_CACHE setting."""
    own = runner.options.refresh_cache
    if own is not None:
        return own
    from ..settings import get_settings

    return get_settings().tasks_refresh_cache


def storage_for(runner: TaskRunner) -> ResultStorage:
    storage = runner.options.result_storage or runner.flow_ctx.result_storage
    if storage is None:
        from ..settings import get_settings

        storage = storage_from(get_settings().default_result_storage)
        runner.flow_ctx.result_storage = storage
    return storage


def _result_keys(runner: TaskRunner) -> list[str]:
    """Where a value is stored: under its cache key, and under the run when it persists (so a
    retry of the run finds it even when the cache entry expired)."""
    keys = []
    if runner.task_run.cache_key is not None:
        keys.append(f"cache/{runner.task_run.cache_key}")
    if runner.persists:
        keys.append(f"runs/{runner.flow_ctx.flow_run.id}/{runner.task_run.name}")
    return keys


def read_cached(runner: TaskRunner, cache_key: str) -> State | None:
    """A Cached state carrying the stored value, or None on a miss, an expired entry, or when
    the task refreshes its cache (it runs, and `persist` overwrites the entry)."""
    if refreshes(runner):
        return None
    key = f"cache/{cache_key}"
    value = load_result(storage_for(runner).read(key))
    if value is MISSING:
        return None
    runner.task_run.result_key = key
    state = new_state(StateType.COMPLETED, "Cached", details={"cache_key": cache_key})
    state._result = value
    return state


def read_earlier_attempt(runner: TaskRunner) -> State | None:
    """On a retried flow run: the value an earlier attempt persisted for this task run, as a
    Cached state, or None (then the task runs)."""
    key = f"runs/{runner.flow_ctx.flow_run.id}/{runner.task_run.name}"
    value = load_result(storage_for(runner).read(key))
    if value is MISSING:
        return None
    runner.task_run.result_key = key
    state = new_state(StateType.COMPLETED, "Cached",
                      message="completed in an earlier attempt of this flow run",
                      details={"result_key": key})
    state._result = value
    return state


def persist(runner: TaskRunner, value: Any) -> None:
    """Store the value where later runs (cache hits, retries from failure) find it."""
    expiration = runner.options.cache_expiration
    expires_at = time.time() + expiration.total_seconds() if expiration is not None else None
    keys = _result_keys(runner)
    try:
        for key in keys:
            # Only the cache entry expires; the run's own copy serves its retries.
            storage_for(runner).write(key, dump_result(
                value, expires_at if key.startswith("cache/") else None))
    except Exception as exc:  # an unpicklable value or a storage outage must not fail the task
        runner._logger().warning("could not persist the result of %r: %s", runner.task_run.name,
                                 exc)
        return
    runner.task_run.result_key = keys[0]
