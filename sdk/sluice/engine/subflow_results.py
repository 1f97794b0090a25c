"""Subflow results that survive a retry of their parent (as in Prefect).

A subflow that persists its result (its own `persist_result=True`, or its parent's when it sets
none) and completed in a failed attempt of its parent is not run again when the parent retries:
its stored value is returned, as task runs' values are (`caching.read_earlier_attempt`).

A subflow call is identified inside its parent run by the subflow's name, the n-th call of that
name in the attempt (attempts count from 0 again) and its parameters (hashed by value), stored
under `runs/<parent flow run id>/subflows/<name>-<n>-<parameters hash>` in the result storage,
so a retry made by another process (a worker that picks the run up again) finds it too. A
subflow whose parameters cannot be hashed is not persisted: it runs again on a retry.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from ..exceptions import HashError
from ..models import StateType, new_state
from .hashing import stable_hash
from .results import MISSING, ResultStorage, dump_result, load_result, storage_from

if TYPE_CHECKING:
    from ..models import State
    from .flow_engine import FlowRunner


def subflow_result_key(runner: FlowRunner) -> str | None:
    """Where this subflow call's value is kept, or None when it does not persist (or is not a
    subflow). Called when the call is made, in the caller's thread, so the numbering is stable."""
    parent = runner.parent
    if parent is None:
        return None
    own = runner.options.persist_result
    if not (parent.persist_result if own is None else own):
        return None
    name = runner.flow.name
    # `:` cannot appear in a task name, so these counters never meet a task's.
    counter = parent.task_counters.setdefault(f"subflow:{name}", itertools.count())
    number = next(counter)
    try:
        # The parameters too: calls made from concurrent tasks may be numbered in another
        # order by the next attempt, and must not pick up each other's values.
        arguments = stable_hash(dict(runner.bound.arguments), "subflow parameters")[:16]
    except HashError:
        return None  # not persisted: it runs again on a retry rather than risk a mix-up
    return f"runs/{parent.flow_run.id}/subflows/{name}-{number}-{arguments}"


def _storage(runner: FlowRunner) -> ResultStorage:
    assert runner.parent is not None
    storage = runner.options.result_storage or runner.parent.result_storage
    if storage is None:
        from ..settings import get_settings

        storage = storage_from(get_settings().default_result_storage)
    return storage


def reuse_subflow_result(runner: FlowRunner, key: str) -> State | None:
    """On a retry of the parent: a Cached state with the value an earlier attempt stored for
    this subflow call, or None (then the subflow runs)."""
    parent = runner.parent
    if parent is None or not parent.resuming:
        return None
    try:
        value = load_result(_storage(runner).read(key))
    except Exception:  # an unreadable entry: run the subflow again
        return None
    if value is MISSING:
        return None
    state = new_state(StateType.COMPLETED, "Cached",
                      message="completed in an earlier attempt of the parent flow run",
                      details={"result_key": key})
    state._result = value
    from ..run_logging import run_logger_for

    run_logger_for(parent).info("Subflow %r completed in an earlier attempt; reusing its result",
                                runner.flow.name)
    return state


def persist_subflow_result(runner: FlowRunner, key: str, state: State) -> None:
    """Keep a completed subflow's value for retries of its parent (never fails the subflow)."""
    try:
        _storage(runner).write(key, dump_result(getattr(state, "_result", None), None))
    except Exception as exc:  # an unpicklable value or a storage outage
        from ..run_logging import run_logger_for

        run_logger_for(runner.context).warning(
            "could not persist the result of subflow %r: %s", runner.flow.name, exc)
