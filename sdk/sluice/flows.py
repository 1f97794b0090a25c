"""`@flow`: a function whose runs are tracked, retried and reported."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .flow_options import FlowOptions

P = ParamSpec("P")
R = TypeVar("R")


def __getattr__(name: str) -> Any:
    # `sluice.flows.FlowOptions` as before, imported on first use (see `flow_options`).
    if name == "FlowOptions":
        from .flow_options import FlowOptions

        return FlowOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Flow(Generic[P, R]):
    """A function made into a flow. Calling it starts a tracked flow run and returns the
    function's value (or, with `return_state=True`, the run's final state). The function stays
    available, untouched, as `.fn`."""

    def __init__(self, fn: Callable[P, R], options: FlowOptions) -> None:
        from ._callables import check_reserved, unwrap

        fn, self._binding = unwrap(fn, "@flow")
        self.fn = fn
        self.options = options
        self.name: str = options.name or getattr(fn, "__name__", "flow").replace("_", "-")
        from .models.names import name_problem

        problem = None if options.name else name_problem(self.name, "flow")
        if problem is not None:  # a name taken from the function (`<lambda>`, non-ASCII)
            raise ConfigurationError(f"@flow: {problem}; the name comes from the function: "
                                     "give one with @flow(name='...')")
        self.is_async = inspect.iscoroutinefunction(fn)
        self._parameters_model: type[BaseModel] | None = None
        update_wrapper(self, fn)  # type: ignore[arg-type]
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to check
            pass
        else:
            check_reserved(signature, "@flow", self.name)
            if options.flow_run_name is not None:
                from .engine.run_names import check_template

                check_template("flow_run_name", "@flow", options.flow_run_name, signature)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """Flows defined in a class bind like methods (`self`/`cls` passed on calls)."""
        from ._callables import bound_copy

        return bound_copy(self, instance, owner, self._binding)

    def _reset_signature(self) -> None:
        self._parameters_model = None
        self.__dict__.pop("_secret_parameters", None)

    @property
    def description(self) -> str | None:
        """The `description` option, else the function's docstring (as in Prefect)."""
        return self.options.description or inspect.getdoc(self.fn)

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @property
    def parameters_model(self) -> type[BaseModel]:
        """A pydantic model of the flow's parameters, built from its type hints (once)."""
        if self._parameters_model is None:
            from .engine.parameters import parameters_model

            self._parameters_model = parameters_model(self)
        return self._parameters_model

    def parameter_schema(self) -> dict[str, Any]:
        """JSON schema of the parameters (what deployments validate triggers against)."""
        from .engine.parameters import parameter_schema

        return parameter_schema(self)

    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed, e.g. `.with_options(retries=2)`."""
        copy = Flow(self.fn, self.options.replace("@flow", **changes))
        copy._binding = self._binding
        return copy

    def deploy(self, name: str, *, pool: str = "default",
               parameters: dict[str, Any] | None = None, source: Any = "local",
               cron: str | None = None, interval: float | None = None,
               timezone: str | None = None, **options: Any) -> Any:
        """Register this flow as a deployment that workers of `pool` run.

        `source` is where workers get the code: "local" (this project's directory, on the
        worker's disk too), "bundle" (zipped and uploaded to your control plane's storage) or a
        `CodeSource(kind="git", repository=..., ref=...)`. A schedule is `cron="0 2 * * *"`
        or `interval=300`, in `timezone` (IANA, default UTC). Other options: tags,
        description, version, paused, concurrency_limit, collision_strategy, retries,
        retry_delay_seconds, catchup, max_lateness_seconds, timeout_seconds (default: the
        flow's own; a lambda pool refuses one over 870 s), requirements, entrypoint,
        project_dir, client.

        Events: `on_event={"source": ["aws.s3"], ...}` (an EventBridge pattern) starts a run
        per matching event, with the `parameters` whose values are templates rendered over it
        (`{"key": "{{ event.detail.object.key }}"}`); `triggers=[reactive(...),
        (proactive(...), [notify(...)])]` are automations this deployment owns (a bare trigger
        runs this deployment). Returns the stored `Deployment`."""
        from .deployments import deploy_flow

        return deploy_flow(self, name=name, pool=pool, parameters=parameters, source=source,
                           cron=cron, interval=interval, timezone=timezone, **options)

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .engine.flow_engine import call_flow

        return call_flow(self, args, kwargs)


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(
    *, name: str | None = ..., description: str | None = ..., version: str | None = ...,
    retries: int = ..., retry_delay_seconds: float = ..., timeout_seconds: float | None = ...,
    validate_parameters: bool = ..., log_prints: bool | None = ..., tags: Iterable[str] | None = ...,
    max_workers: int | None = ..., persist_result: bool | None = ..., result_storage: Any = ...,
    on_completion: Any = ..., on_failure: Any = ..., on_crashed: Any = ...,
    on_cancellation: Any = ..., on_running: Any = ...,
    flow_run_name: str | Callable[..., str] | None = ..., task_runner: Any = ...,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a flow: `@flow` or `@flow(name='etl', retries=2, log_prints=True)`.

    Options are validated here, when the decorator is applied; a bad one raises
    `ConfigurationError` naming the option with a correct example. Nothing runs until the flow
    is called."""
    if fn is not None and not callable(fn) and not isinstance(fn, (staticmethod, classmethod)):
        raise ConfigurationError(
            f"@flow got {fn!r} as a positional argument; pass options by name, "
            f"e.g. @flow(name={fn!r})" if isinstance(fn, str) else f"@flow decorates functions, got {fn!r}"
        )
    from .flow_options import FlowOptions  # pydantic, on the first decoration (issue 20)

    validated = FlowOptions.build("@flow", **options)
    if fn is not None:
        return Flow(fn, validated)
    return lambda f: Flow(f, validated)
