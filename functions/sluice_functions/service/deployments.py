"""Use cases for deployments: upsert, read, update, delete, and run one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sluice.exceptions import SluiceError, ValidationError
from sluice.models import (
    new_id,
    LAMBDA_MAX_RUN_SECONDS,
    MAX_PAGE_LIMIT,
    Deployment,
    DeploymentCreate,
    DeploymentRunRequest,
    DeploymentUpdate,
    FlowRun,
    FlowRunCreate,
    Page,
    Pool,
    Schedule,
    utcnow,
)

from ..automations.deployment_triggers import delete_triggers, sync_triggers
from ..automations.on_event import check_on_event, delete_rule, sync_rule
from ..ports import Metrics, RunQueue, RunStore
from . import event_log
from .event_builders import deployment_event
from .flow_runs import create_flow_run
from .limits import check_page_limit, check_parameters, check_tags
from .parameter_schema import check_schema_usable, schema_errors
from .pools import ensure_pool
from .request_reads import request_reads

#: `PATCH` fields whose explicit null means "no value"; for the others null means "unchanged".
NULLABLE_UPDATE_FIELDS = frozenset({"description", "concurrency_limit"})


def create_deployment(
    request: DeploymentCreate,
    *,
    store: RunStore,
    queue: RunQueue,
    created_by: str | None = None,
    now: datetime | None = None,
) -> Deployment:
    """Create the deployment (flow_name, name), or replace it keeping its id. Its pool is
    created if missing. Raises `ValidationError` / `PayloadTooLarge` before writing anything."""
    now = now or utcnow()
    deployment = Deployment(
        **request.model_dump(), id=new_id(), created=now, updated=now,
        created_by=created_by,
    )
    check_deployment(deployment)
    check_on_event(deployment)
    check_pool_kind(deployment, ensure_pool(deployment.pool, store=store, queue=queue, now=now))
    stored = store.upsert_deployment(deployment)
    _owned_automations_saved(stored, store=store, now=now)
    # The store keeps the id of a deployment that already had this name: then it was updated.
    action = "created" if stored.id == deployment.id else "updated"
    event_log.record_for_store([deployment_event(action, stored, now=now)], store=store, now=now)
    return stored


def check_pool_kind(deployment: Deployment, pool: Pool | None) -> None:
    """Refuse (422) a deployment its pool's kind cannot run: on a Lambda pool, a flow whose own
    timeout is longer than an invocation may last (`LAMBDA_MAX_RUN_SECONDS`)."""
    timeout = deployment.timeout_seconds
    if pool is None or pool.type != "lambda" or timeout is None \
            or timeout <= LAMBDA_MAX_RUN_SECONDS:
        return
    raise ValidationError(
        f"deployment {deployment.flow_name}/{deployment.name} may run {timeout:g} s, longer than "
        f"a run on Lambda pool {pool.name} may last ({LAMBDA_MAX_RUN_SECONDS} s: Lambda's "
        "15-minute limit less a margin): use a fargate or worker pool (--pool), or lower the "
        "timeout (the flow's timeout_seconds, or `sluice deploy --timeout SECONDS`)",
        details={"pool": pool.name, "pool_type": pool.type, "timeout_seconds": timeout,
                 "max_seconds": LAMBDA_MAX_RUN_SECONDS})


def _pool_or_none(name: str, *, store: RunStore) -> Pool | None:
    try:
        return store.get_pool(name)
    except SluiceError:  # missing or unreadable: nothing to check against
        return None


def get_deployment(ref: str, *, store: RunStore) -> Deployment:
    """The deployment named by id or by "flow_name/deployment_name". Raises `NotFound`."""
    if "/" in ref:
        flow_name, _, name = ref.partition("/")
        return store.get_deployment_by_name(flow_name, name)
    return store.get_deployment(ref)


def list_deployments(
    *,
    store: RunStore,
    flow_name: str | None = None,
    limit: int = MAX_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[Deployment]:
    """Deployments ordered by flow name then name."""
    check_page_limit(limit)
    return store.list_deployments(flow_name=flow_name, limit=limit, cursor=cursor)


def update_deployment(
    ref: str, update: DeploymentUpdate, *, store: RunStore, now: datetime | None = None
) -> Deployment:
    """Change the fields the request sets (pause/resume, schedules, defaults ...).

    Raises `NotFound`, `ValidationError`, `PayloadTooLarge`.
    """
    now = now or utcnow()
    current = get_deployment(ref, store=store)
    changes: dict[str, Any] = {
        field: value
        for field, value in update.model_dump(exclude_unset=True).items()
        if value is not None or field in NULLABLE_UPDATE_FIELDS
    }
    updated = Deployment.model_validate({**current.model_dump(), **changes, "updated": now})
    check_deployment(updated)
    if "timeout_seconds" in changes:
        check_pool_kind(updated, _pool_or_none(updated.pool, store=store))
    stored = store.update_deployment(updated)
    if stored.paused != current.paused and stored.on_event is not None:
        sync_rule(stored, ports=event_log.ports_of(store))  # AWS: a paused one's is disabled
    events = []
    if stored.paused != current.paused:
        events.append(deployment_event("paused" if stored.paused else "resumed", stored, now=now))
    if set(changes) - {"paused"}:
        events.append(deployment_event("updated", stored, now=now,
                                       payload={"fields": sorted(set(changes) - {"paused"})}))
    event_log.record_for_store(events, store=store, now=now)
    return stored


def delete_deployment(ref: str, *, store: RunStore, now: datetime | None = None) -> None:
    """Delete the deployment (its runs stay). Raises `NotFound`."""
    deployment = get_deployment(ref, store=store)
    store.delete_deployment(deployment.id)
    now = now or utcnow()
    _owned_automations_deleted(deployment, store=store)
    event_log.record_for_store([deployment_event("deleted", deployment, now=now)], store=store,
                               now=now)


def run_deployment(
    ref: str,
    request: DeploymentRunRequest,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    created_by: str | None = None,
    now: datetime | None = None,
) -> FlowRun:
    """Create a run of the deployment: its parameters merged over the deployment's defaults and
    checked against its schema, in its pool, enqueued when due. A paused deployment can still be
    run by hand (pausing stops its schedules). Idempotent with `idempotency_key`."""
    # Read by name, the deployment also answers the create's read of it by id (one GetItem).
    store = request_reads(store)
    deployment = get_deployment(ref, store=store)
    create = FlowRunCreate(
        flow_name=deployment.flow_name,
        deployment_id=deployment.id,
        name=request.name,
        parameters=request.parameters,
        tags=request.tags,
        scheduled_at=request.scheduled_at,
        idempotency_key=request.idempotency_key,
    )
    return create_flow_run(
        create, store=store, queue=queue, metrics=metrics, created_by=created_by, now=now
    )


def _owned_automations_saved(deployment: Deployment, *, store: RunStore,
                             now: datetime) -> None:
    """Its `triggers` become its automations and its `on_event` its EventBridge rule (AWS)."""
    ports = event_log.ports_of(store)
    sync_rule(deployment, ports=ports)
    if ports is not None:  # a bare test store has no automation store to write to
        sync_triggers(deployment, ports=ports, now=now)


def _owned_automations_deleted(deployment: Deployment, *, store: RunStore) -> None:
    ports = event_log.ports_of(store)
    delete_rule(deployment.id, ports=ports)
    if ports is not None:
        delete_triggers(deployment.id, ports=ports)


def check_deployment(deployment: Deployment) -> None:
    """Everything a deployment must satisfy beyond its model's field types."""
    check_parameters(deployment.parameters)
    check_parameters(deployment.parameter_schema, field="parameter_schema")
    check_tags(deployment.tags)
    check_schema_usable(deployment.parameter_schema)
    _check_defaults(deployment)
    _check_schedules(deployment.schedules)
    _check_scheduled_parameters(deployment)


def _check_defaults(deployment: Deployment) -> None:
    """Default parameters must fit the schema; required ones may be left to each run. Without
    a schema they are not checked, except that none may be a secret reference (no parameter is
    known to be a secret)."""
    errors = [
        error
        for error in schema_errors(
            deployment.parameters, deployment.parameter_schema,
            root=deployment.parameter_schema, loc=("parameters",),
        )
        if not (len(error["loc"]) == 2 and error["msg"] == "is required")
    ]
    if errors:
        where = ".".join(str(part) for part in errors[0]["loc"])
        raise ValidationError(f"default {where}: {errors[0]['msg']}", details=errors)


def _check_schedules(schedules: list[Schedule]) -> None:
    """Each schedule usable (5-field cron only, IANA zones, intervals: the rules live with the
    schedule math, imported here because the scheduling package imports this service), no two
    firing as one, and parameters within size."""
    from ..scheduling.schedules import validate_schedules

    validate_schedules(schedules, field="schedules")
    for index, schedule in enumerate(schedules):
        check_parameters(schedule.parameters, field=f"schedules[{index}].parameters")


def _check_scheduled_parameters(deployment: Deployment) -> None:
    """A schedule's runs get only the deployment's defaults and the schedule's parameters, so
    together they must satisfy the schema (required ones included): otherwise every scheduled
    run would be refused when the scheduler creates it. (Without a schema only secret
    references are refused.)"""
    for index, schedule in enumerate(deployment.schedules):
        merged = {**deployment.parameters, **schedule.parameters}
        errors = schema_errors(
            merged, deployment.parameter_schema, root=deployment.parameter_schema,
            loc=(f"schedules[{index}]", "parameters"),
        )
        if errors:
            where = ".".join(str(part) for part in errors[0]["loc"])
            raise ValidationError(
                f"{where}: {errors[0]['msg']} (the schedule's runs get the deployment's "
                "defaults and the schedule's parameters only)", details=errors,
            )
