"""Cache policies, composable as in Prefect 3: `@task(cache_policy=INPUTS + TASK_SOURCE)`.

    from sluice.cache_policies import INPUTS, TASK_SOURCE, FLOW_PARAMETERS, RUN_ID, NONE

    @task(cache_policy=INPUTS - "verbose")      # key on every input but `verbose`
    @task(cache_policy=INPUTS + TASK_SOURCE)    # ... and on the function's source code
    @task(cache_policy=DEFAULT)                 # Prefect's default: inputs + source + run id

A policy turns a task call into a key (a string) or None ("do not cache this call"). Calls with
the same key, of the same task, share one stored result. `policy + other` keys on both (parts
that give None are left out; all None gives None); `policy - "name"` stops keying on parameter
`name`. Write your own by subclassing `CachePolicy` and implementing `compute_key`.

The strings `"inputs"`, `"source"`, `"inputs+source"` and `"none"` keep working. Caching stays off
unless a task asks for it (the option's default is `"none"`, Prefect's is `DEFAULT`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .engine.hashing import stable_hash

if TYPE_CHECKING:
    from .engine.context import TaskRunContext

__all__ = [
    "CachePolicy", "CompoundCachePolicy", "CacheKeyFnPolicy", "Inputs", "TaskSource",
    "FlowParameters", "RunId", "INPUTS", "TASK_SOURCE", "FLOW_PARAMETERS", "RUN_ID", "NONE",
    "NO_CACHE", "DEFAULT", "as_policy",
]


@dataclass(frozen=True)
class CachePolicy:
    """Base of every cache policy: `compute_key` gives a key, or None for "do not cache"."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        """The key of this call. `inputs` are the task's arguments by parameter name (defaults
        applied); `flow_parameters` are the flow run's."""
        raise NotImplementedError

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, _None):
            return self
        return CompoundCachePolicy((self, other))

    def __sub__(self, other: str) -> CachePolicy:
        """`policy - "name"`: stop keying on the input `name` (a no-op for a policy that does
        not look at inputs, as in Prefect)."""
        _check_name(other)
        return self


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"only a parameter name (a string) can be subtracted from a cache "
                        f"policy, got {name!r}; for example INPUTS - 'verbose'")


@dataclass(frozen=True)
class _None(CachePolicy):
    """Never caches (the key is always None)."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return other


@dataclass(frozen=True)
class Inputs(CachePolicy):
    """Keys on the task's inputs, hashed by value (`sluice.engine.hashing`), minus `exclude`.

    No inputs means no key (as in Prefect), unless `cache_without_inputs` (what the legacy
    string `"inputs"` does: a task without parameters is cached once)."""

    exclude: tuple[str, ...] = ()
    cache_without_inputs: bool = False

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        hashed = {k: v for k, v in (inputs or {}).items() if k not in self.exclude}
        if not hashed and not self.cache_without_inputs:
            return None
        return stable_hash(hashed, "inputs")

    def __sub__(self, other: str) -> CachePolicy:
        _check_name(other)
        return dataclasses.replace(self, exclude=(*self.exclude, other))


@dataclass(frozen=True)
class TaskSource(CachePolicy):
    """Keys on the source code of the task's function (only its own lines, not what it calls)."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        if task_ctx is None:
            return None
        return source_hash(task_ctx.task)


def source_hash(task: Any) -> str:
    """SHA-256 of a task function's source (its bytecode when the source is not available),
    computed once per Task object."""
    cached = getattr(task, "_source_hash", None)
    if cached is None:
        try:
            source = inspect.getsource(task.fn).encode()
        except (OSError, TypeError):  # built in, or defined in a REPL
            source = getattr(getattr(task.fn, "__code__", None), "co_code", b"")
        cached = hashlib.sha256(source).hexdigest()
        task._source_hash = cached
    return cached


@dataclass(frozen=True)
class FlowParameters(CachePolicy):
    """Keys on the parameters of the flow run (hashed by value); no parameters, no key."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        if not flow_parameters:
            return None
        return stable_hash(flow_parameters, "flow parameters")


@dataclass(frozen=True)
class RunId(CachePolicy):
    """Keys on the flow run (the task run when there is none): caches within one run only."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        if task_ctx is None:
            return None
        run = task_ctx.task_run
        return str(run.flow_run_id or run.id)


@dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """Wraps a `cache_key_fn(context, parameters) -> str | None`."""

    cache_key_fn: Callable[..., str | None] | None = None

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        return self.cache_key_fn(task_ctx, inputs) if self.cache_key_fn else None


@dataclass(frozen=True)
class CompoundCachePolicy(CachePolicy):
    """Keys on every part; parts that give None are left out, and all None gives None.
    Nested compounds are flattened and their `Inputs` merged (excludes united)."""

    policies: tuple[CachePolicy, ...] = ()

    def __post_init__(self) -> None:
        flat = [q for p in self.policies
                for q in (p.policies if isinstance(p, CompoundCachePolicy) else (p,))
                if not isinstance(q, _None)]
        inputs = [p for p in flat if isinstance(p, Inputs)]
        merged = [p for p in flat if not isinstance(p, Inputs)]
        if inputs:
            merged.append(Inputs(
                exclude=tuple(sorted({name for p in inputs for name in p.exclude})),
                cache_without_inputs=any(p.cache_without_inputs for p in inputs)))
        object.__setattr__(self, "policies", tuple(merged))

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        keys = []
        for policy in self.policies:
            key = policy.compute_key(task_ctx=task_ctx, inputs=inputs,
                                     flow_parameters=flow_parameters, **kwargs)
            if key is not None:
                keys.append(f"{type(policy).__name__}:{key}")
        return stable_hash(keys, "keys") if keys else None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return CompoundCachePolicy((*self.policies, other))

    def __sub__(self, other: str) -> CachePolicy:
        _check_name(other)
        if not any(isinstance(p, Inputs) for p in self.policies):
            return self  # no dependency on inputs already
        return CompoundCachePolicy((*self.policies, Inputs(exclude=(other,))))


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE = _None()
NO_CACHE = NONE
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID

#: The string forms of the `cache_policy` option (kept from before policies composed).
NAMED = {
    "none": NONE,
    "inputs": Inputs(cache_without_inputs=True),
    "source": TASK_SOURCE,
    "inputs+source": Inputs(cache_without_inputs=True) + TASK_SOURCE,
}


def as_policy(value: str | CachePolicy) -> CachePolicy:
    """The policy an option value means: a `CachePolicy`, or one of the strings in `NAMED`."""
    if isinstance(value, CachePolicy):
        return value
    return NAMED[value]
