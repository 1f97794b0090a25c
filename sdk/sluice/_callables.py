"""What `@flow` and `@task` accept: functions, methods (instance, class, static), not each
other; and the parameter names every call reserves."""

from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Callable
from typing import Any, Literal

from .exceptions import ConfigurationError

#: Keyword arguments every flow and task call takes for itself.
RESERVED_PARAMETERS = ("return_state", "wait_for")

Binding = Literal["instance", "class", "static"]


def unwrap(fn: Any, decorator: str) -> tuple[Callable[..., Any], Binding]:
    """The function to run and how it binds when read from a class; refuses what cannot be a
    flow or task with a message naming the fix."""
    from .flows import Flow
    from .tasks import Task

    if isinstance(fn, Task) and decorator == "@flow":
        raise ConfigurationError(
            f"@flow got the task {fn.name!r}: a task cannot be made a flow; decorate the "
            f"function itself with @flow (e.g. flow({fn.name}.fn)), or call the task inside a "
            "flow")
    if isinstance(fn, Flow) and decorator == "@task":
        raise ConfigurationError(
            f"@task got the flow {fn.name!r}: a flow cannot be made a task; call the flow inside "
            f"another flow (it runs as a subflow), or decorate the function itself with @task "
            "(e.g. task(my_flow.fn))")
    if isinstance(fn, staticmethod):
        return fn.__func__, "static"
    if isinstance(fn, classmethod):
        return fn.__func__, "class"
    if not callable(fn):
        raise ConfigurationError(f"{decorator} decorates functions, got {fn!r}")
    return fn, "instance"


def check_reserved(signature: inspect.Signature, decorator: str, name: str) -> None:
    """Refuse a function with a parameter named like a reserved keyword of flow/task calls."""
    for reserved in RESERVED_PARAMETERS:
        if reserved in signature.parameters:
            raise ConfigurationError(
                f"{decorator}: {name!r} has a parameter named `{reserved}`, which every call "
                f"takes for itself ({', '.join(RESERVED_PARAMETERS)} are reserved); rename it, "
                f"e.g. `{reserved}_`")


def bound_copy(obj: Any, instance: Any, owner: type | None, binding: Binding) -> Any:
    """The flow or task read from a class or instance (the descriptor protocol): a copy whose
    `.fn` is bound to the instance (or the class for classmethods), like a method."""
    if binding == "static":
        return obj
    if binding == "class":
        target = owner if owner is not None else type(instance)
    else:
        if instance is None:
            return obj  # read from the class: pass `self` explicitly, like a function
        target = instance
    bound = copy.copy(obj)
    bound.fn = types.MethodType(obj.fn, target)
    bound.__wrapped__ = bound.fn
    bound._binding = "static"  # already bound: reading it again returns it unchanged
    bound._reset_signature()
    return bound
