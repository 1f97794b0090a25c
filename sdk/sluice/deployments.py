"""Registering deployments (`Flow.deploy`, `sluice deploy`) and running them
(`run_deployment`)."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .exceptions import ConfigurationError
from .models import (
    DEFAULT_POOL,
    CodeSource,
    CollisionStrategy,
    Deployment,
    DeploymentCreate,
    DeploymentRunRequest,
    FlowRun,
    Schedule,
    SourceKind,
)
from .models.automations import ProactiveTrigger, ReactiveTrigger, RunDeploymentAction
from .models.deployments import THIS_DEPLOYMENT, DeploymentTrigger, OnEvent

if TYPE_CHECKING:
    from .client import SluiceClient
    from .flows import Flow


M = TypeVar("M", bound=BaseModel)


def explain_invalid(exc: PydanticValidationError) -> ConfigurationError:
    """A request model's validation errors as one `ConfigurationError`: each line names the
    field and what to fix (the messages of `sluice.models.names` already say both)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    lines = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"])
        reason = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {reason}" if where else reason)
    return ConfigurationError("\n".join(lines) or str(exc), details=errors)


def request_model(model: type[M], **fields: Any) -> M:
    """`model(**fields)`, refused as a `ConfigurationError` naming each bad field: what users
    typed (a deployment name, a tag, a git URL) is checked before anything is sent."""
    try:
        return model(**fields)
    except PydanticValidationError as exc:
        raise explain_invalid(exc) from None


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """`k=v` pairs; each value is read as JSON when it parses (numbers, lists, objects), else
    kept as a string: `--param day=3 --param name=berlin`."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--param {pair!r} must look like key=value, e.g. day=3")
        try:
            parameters[key] = json.loads(raw)
        except ValueError:
            parameters[key] = raw
    return parameters


def schedules_from(cron: str | None, interval: float | None, timezone: str | None,
                   parameters: dict[str, Any] | None = None) -> list[Schedule]:
    if cron and interval:
        raise ConfigurationError("give either --cron or --interval, not both")
    if cron:
        return [Schedule(cron=cron, timezone=timezone or "UTC", parameters=parameters or {})]
    if interval is not None:
        if interval <= 0:
            raise ConfigurationError(f"--interval must be a number of seconds > 0, got {interval}")
        return [Schedule(interval_seconds=interval, timezone=timezone or "UTC",
                         parameters=parameters or {})]
    if timezone:
        raise ConfigurationError("--timezone applies to a schedule; add --cron or --interval")
    return []


def local_entrypoint(flow: Flow[Any, Any], project_dir: Path | None = None) -> tuple[str, Path]:
    """(entrypoint relative to the project directory, project directory) of a flow defined
    in a file."""
    try:
        file = Path(inspect.getfile(flow.fn)).resolve()
    except TypeError:
        raise ConfigurationError(f"flow {flow.name!r} is not defined in a file; pass "
                                 "entrypoint='path/to/file.py:my_flow'") from None
    root = (project_dir or Path.cwd()).resolve()
    if not file.is_relative_to(root):
        root = file.parent
    return f"{file.relative_to(root).as_posix()}:{flow.fn.__name__}", root


def deployment_request(flow: Flow[Any, Any], *, name: str, entrypoint: str,
                       source: CodeSource, pool: str = DEFAULT_POOL,
                       parameters: dict[str, Any] | None = None,
                       tags: Iterable[str] | None = None, description: str | None = None,
                       version: str | None = None, schedules: list[Schedule] | None = None,
                       paused: bool = False, concurrency_limit: int | None = None,
                       collision_strategy: str = "enqueue", retries: int | None = None,
                       retry_delay_seconds: float | None = None, catchup: bool = False,
                       max_lateness_seconds: float | None = None,
                       triggers: Iterable[Any] | None = None,
                       on_event: Any = None,
                       timeout_seconds: float | None = None) -> DeploymentCreate:
    """The deployment of `flow`: its parameter schema comes from the type hints, and default
    parameters are checked against it here, before anything is sent.

    With `on_event` (an EventBridge pattern: dict or JSON text, or an `OnEvent`), parameters
    whose values are templates (`{{ event.detail.object.key }}`) become the event runs'
    parameters; the others stay defaults of every run. `timeout_seconds` (default: the flow's
    own) is recorded so a Lambda pool can refuse a flow that may outlive its 15 minutes."""
    parameters = dict(parameters or {})
    unknown = set(parameters) - set(flow.signature.parameters)
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD
                           for p in flow.signature.parameters.values()):
        raise ConfigurationError(
            f"flow {flow.name!r} has no parameter(s) {sorted(unknown)}; its parameters are "
            f"{list(flow.signature.parameters)}")
    event_runs = None
    if on_event is not None:
        event_runs = on_event_spec(on_event, parameters)
        parameters = {k: v for k, v in parameters.items() if k not in event_runs.parameters}
    return request_model(
        DeploymentCreate, flow_name=flow.name, name=name, entrypoint=entrypoint, pool=pool,
        parameters=parameters, parameter_schema=flow.parameter_schema(),
        tags=list(tags or flow.options.tags), description=description or flow.description
        or (inspect.getdoc(flow.fn) or None), version=version or flow.options.version,
        source=source, schedules=schedules or [], paused=paused,
        concurrency_limit=concurrency_limit,
        collision_strategy=CollisionStrategy(collision_strategy),
        retries=flow.options.retries if retries is None else retries,
        retry_delay_seconds=flow.options.retry_delay_seconds if retry_delay_seconds is None
        else retry_delay_seconds,
        catchup=catchup, max_lateness_seconds=max_lateness_seconds,
        triggers=[_trigger_spec(t) for t in triggers or []], on_event=event_runs,
        timeout_seconds=flow.options.timeout_seconds if timeout_seconds is None
        else timeout_seconds,
    )


def on_event_spec(on_event: Any, parameters: dict[str, Any]) -> OnEvent:
    """`OnEvent` from a pattern (dict, JSON text or `OnEvent`), taking the templated values of
    `parameters` as the event runs' parameters."""
    if isinstance(on_event, OnEvent):
        spec = on_event
    else:
        pattern = on_event
        if isinstance(on_event, str):
            try:
                pattern = json.loads(on_event)
            except ValueError as exc:
                raise ConfigurationError(
                    f"the event pattern is not JSON ({exc}); write it as an EventBridge "
                    """pattern in single quotes, e.g. '{"source": ["aws.s3"]}'""") from None
        spec = request_model(OnEvent, pattern=pattern)
    templated = {k: v for k, v in parameters.items()
                 if "{{" in json.dumps(v) or "{%" in json.dumps(v)}
    return spec.model_copy(update={"parameters": {**spec.parameters, **templated}})


def _trigger_spec(trigger: Any) -> DeploymentTrigger:
    """A `DeploymentTrigger` from one, a dict, an `Automation` (its name unused), a
    `(trigger, actions)` pair, or a bare `reactive(...)`/`proactive(...)` trigger (which runs
    this deployment with its default parameters)."""
    if isinstance(trigger, DeploymentTrigger):
        return trigger
    if isinstance(trigger, tuple) and len(trigger) == 2:
        return request_model(DeploymentTrigger, trigger=trigger[0], actions=list(trigger[1]))
    if isinstance(trigger, (ReactiveTrigger, ProactiveTrigger)):
        return request_model(DeploymentTrigger, trigger=trigger, actions=[
            RunDeploymentAction(deployment=THIS_DEPLOYMENT)])
    if isinstance(trigger, BaseModel):
        trigger = trigger.model_dump(include={"trigger", "actions", "description", "enabled"})
    return request_model(DeploymentTrigger, **trigger)


def deploy_flow(flow: Flow[Any, Any], *, name: str, source: str | CodeSource = "local",
                project_dir: str | Path | None = None, entrypoint: str | None = None,
                cron: str | None = None, interval: float | None = None,
                timezone: str | None = None, client: SluiceClient | None = None,
                **options: Any) -> Deployment:
    """Register `flow` as a deployment named `name` (see `Flow.deploy`)."""
    root = Path(project_dir).resolve() if project_dir else None
    if entrypoint is None:
        entrypoint, root = local_entrypoint(flow, root)
    root = root or Path.cwd()
    if isinstance(source, CodeSource):
        code = source
    elif source == SourceKind.LOCAL.value:
        code = CodeSource(kind=SourceKind.LOCAL, path=str(root),
                          requirements=options.pop("requirements", None))
    elif source == SourceKind.BUNDLE.value:
        from .bundles import upload_bundle

        client = client or _client()
        code = upload_bundle(client, root, requirements=options.pop("requirements", None))
    else:
        raise ConfigurationError(
            f"source {source!r}: use 'local', 'bundle', or a CodeSource(kind='git', "
            "repository=..., ref=...)")
    options.setdefault("schedules", schedules_from(cron, interval, timezone))
    request = deployment_request(flow, name=name, entrypoint=entrypoint, source=code, **options)
    client = client or _client()
    return client.create_deployment(request)


def _client() -> SluiceClient:
    from .client import get_client

    return get_client()


def run_deployment(name: str, parameters: dict[str, Any] | None = None, *,
                   timeout: float | None = None, poll_interval: float = 0.5,
                   max_poll_interval: float = 5.0,
                   tags: Iterable[str] | None = None,
                   flow_run_name: str | None = None,
                   client: SluiceClient | None = None) -> FlowRun:
    """Start a run of the deployment `name` ("flow/deployment" or an id) and wait for it to end
    (at most `timeout` seconds; `timeout=0` returns at once). Returns the flow run as it is then.
    Inside a flow this works the same: the run executes on a worker of the deployment's pool;
    the flow's worker needs a grant to trigger `name` (`SluiceControlPlane.grant_trigger` on
    AWS, `sluice worker start --may-trigger` on the embedded server), and `name` must then be
    "flow/deployment".

    The run is polled every `poll_interval` seconds at first, then less and less often (x1.5
    per poll, at most every `max_poll_interval` seconds), as `--watch` does: a run that takes
    an hour costs about 720 requests, not 7,200. `flow_run_name` names the run (default: a
    generated adjective-animal name)."""
    client = client or _client()
    run = client.run_deployment(name, request_model(DeploymentRunRequest,
                                                    parameters=parameters or {},
                                                    tags=list(tags or []),
                                                    name=flow_run_name))
    if timeout == 0:
        return run
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = poll_interval
    while not run.state.is_terminal:
        if deadline is not None and time.monotonic() >= deadline:
            return run
        wait = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
        time.sleep(wait)
        run = client.get_deployment_run(name, run.id)
        delay = min(delay * POLL_BACKOFF, max(poll_interval, max_poll_interval))
    return run


#: Growth of `run_deployment`'s polling interval per poll (0.5 s -> 5 s in six polls).
POLL_BACKOFF = 1.5
