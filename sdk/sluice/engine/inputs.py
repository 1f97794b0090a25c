"""Task and subflow inputs: futures and states inside arguments, replaced by their values.

Futures and states are found inside lists, tuples (named too), sets, dicts (keys and values),
dataclasses and pydantic models. A future records its run as an upstream of the task run. A
failed upstream stops the downstream run (`UpstreamFailed`, naming the upstream) unless it was
wrapped in `allow_failure(...)`, which passes the upstream's exception in its place; `quote(...)`
passes a value as is, unsearched. Kept lean: plain values cost one type check.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..annotations import allow_failure, quote
from ..exceptions import UpstreamFailed
from ..models import State
from .futures import TaskFuture, TaskFutureList

if TYPE_CHECKING:
    from ..models import TaskRun
    from .context import FlowRunContext

_ATOMS = frozenset({int, float, str, bytes, bool, type(None), complex, bytearray})
_SEQUENCES = (list, tuple, set, frozenset)


def resolve(value: Any, upstream: list[TaskRun], flow_ctx: FlowRunContext | None = None,
            allow: bool = False) -> Any:
    """`value` with every future and state in it replaced by its value (see the module doc).
    Unchanged containers are returned as they are (same object)."""
    cls = type(value)
    if cls in _ATOMS:
        return value
    if isinstance(value, TaskFuture):
        upstream.append(value.task_run)
        state = value.final_state()
        value._observed = True  # its failure now belongs to the downstream run
        if state.is_completed():
            return state._result  # type: ignore[attr-defined]
        if allow:
            return _error(state)
        raise UpstreamFailed(
            f"upstream task run {value.task_run.name!r} ended {state.name}: {state.message}; "
            f"wrap it in allow_failure(...) to run this task anyway"
        )
    if isinstance(value, State):
        return _state_value(value, upstream, flow_ctx, allow)
    if cls in _SEQUENCES or isinstance(value, _SEQUENCES):
        for v in value:
            if type(v) not in _ATOMS:
                break
        else:  # empty, or only plain values: nothing to resolve
            return value
        items = [resolve(v, upstream, flow_ctx, allow) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
            return cls(*items)
        if isinstance(value, TaskFutureList):  # futures become values: a plain list
            return items
        return cls(items)
    if isinstance(value, dict):
        for k, v in value.items():
            if type(v) not in _ATOMS or type(k) not in _ATOMS:
                break
        else:
            return value
        pairs = [(resolve(k, upstream, flow_ctx, allow), resolve(v, upstream, flow_ctx, allow))
                 for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items())):
            return value
        out = {} if cls is dict else copy.copy(value)
        out.clear()
        out.update(pairs)
        return out
    if isinstance(value, allow_failure):
        return resolve(value.value, upstream, flow_ctx, True)
    if isinstance(value, quote):
        return value.value
    if isinstance(value, BaseModel):
        changed = {}
        for name, field_value in value.__dict__.items():
            new = resolve(field_value, upstream, flow_ctx, allow)
            if new is not field_value:
                changed[name] = new
        return value.model_copy(update=changed) if changed else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for field in dataclasses.fields(value):
            field_value = getattr(value, field.name)
            new = resolve(field_value, upstream, flow_ctx, allow)
            if new is not field_value:
                changed[field.name] = new
        if not changed:
            return value
        out = copy.copy(value)
        for name, new in changed.items():
            object.__setattr__(out, name, new)  # also works on frozen dataclasses
        return out
    return value


def _state_value(state: State, upstream: list[TaskRun], flow_ctx: FlowRunContext | None,
                 allow: bool) -> Any:
    """A state passed as an input: its value, or (failed) the downstream fails naming it."""
    run = _run_of(state, flow_ctx)
    if run is not None:
        upstream.append(run)
    if state.is_completed():
        return state._result  # type: ignore[attr-defined]
    if allow:
        return _error(state)
    which = f"upstream task run {run.name!r}" if run is not None else "an upstream state"
    raise UpstreamFailed(
        f"{which} ended {state.name}: {state.message}; wrap it in allow_failure(...) to run "
        f"this task anyway"
    )


def _run_of(state: State, flow_ctx: FlowRunContext | None) -> TaskRun | None:
    """The submitted task run whose final state this is (None: not found, e.g. a state the
    user built, or one from a plain call with return_state=True)."""
    if flow_ctx is None:
        return None
    for future in reversed(flow_ctx.futures):
        if future.task_run.state is state:
            return future.task_run
    return None


def _error(state: State) -> BaseException:
    from .outcomes import failure_of

    return failure_of(state)


def resolve_flow_inputs(args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
                        ) -> tuple[tuple[Any, ...], dict[str, Any], UpstreamFailed | None]:
    """A (sub)flow call's arguments with futures and states replaced by their values, after
    waiting for `wait_for`. A failed upstream gives the arguments unchanged and the error (the
    flow run then ends Failed naming it, without running)."""
    from .context import flow_run_ctx

    flow_ctx = flow_run_ctx.get()
    upstream: list[TaskRun] = []
    try:
        if wait_for is not None:
            for dependency in wait_for:
                resolve(dependency, upstream, flow_ctx)
        return resolve(args, upstream, flow_ctx), resolve(kwargs, upstream, flow_ctx), None
    except UpstreamFailed as exc:
        return args, kwargs, exc
