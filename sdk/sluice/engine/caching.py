"""Cache keys and persisted results of task runs."""

from __future__ import annotations

import hashlib
import inspect
import pickle
import time
from typing import TYPE_CHECKING, Any

from ..models import StateType, new_state
from .results import MISSING, ResultStorage, dump_result, load_result, storage_from

if TYPE_CHECKING:
    from ..models import State
    from ..tasks import Task
    from .task_engine import TaskRunner


def _source_hash(task: Task[Any, Any]) -> str:
    cached = getattr(task, "_source_hash", None)
    if cached is None:
        try:
            source = inspect.getsource(task.fn).encode()
        except (OSError, TypeError):  # built in, or defined in a REPL
            source = getattr(getattr(task.fn, "__code__", None), "co_code", b"")
        cached = hashlib.sha256(source).hexdigest()
        task._source_hash = cached  # type: ignore[attr-defined]
    return cached


def _inputs_hash(parameters: dict[str, Any]) -> str | None:
    items = sorted(parameters.items())
    try:
        data = pickle.dumps(items, protocol=4)
    except Exception:
        try:
            data = repr(items).encode()
        except Exception:
            return None
    return hashlib.sha256(data).hexdigest()


def cache_key_for(runner: TaskRunner) -> str | None:
    """The run's cache key, namespaced by task, or None when this call is not cacheable."""
    task = runner.task
    options = task.options
    if options.cache_key_fn is not None:
        user_key = options.cache_key_fn(runner._context(), runner.parameters)
        if user_key is None:
            return None
        material = f"key:{user_key}"
    else:
        parts = []
        if "inputs" in options.cache_policy:
            inputs = _inputs_hash(runner.parameters)
            if inputs is None:
                runner._logger().warning("inputs of %r cannot be hashed; not caching", task.name)
                return None
            parts.append(f"inputs:{inputs}")
        if "source" in options.cache_policy:
            parts.append(f"source:{_source_hash(task)}")
        material = "|".join(parts)
    return hashlib.sha256(f"{task.task_key}|{material}".encode()).hexdigest()


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
    """A Cached state carrying the stored value, or None on a miss or an expired entry."""
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
