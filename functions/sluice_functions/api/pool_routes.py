"""The routes of workers and flow processes, each under its pool's path (`/pools/{name}/...`).

IAM (or the embedded server's tokens) lets a worker call only its own pool's paths
(`sluice_functions.access`); these routes then reach only that pool's runs, deployments and
bundles (`service.pool_scope`): anything else is 404, as if it did not exist. Operators use the
unscoped routes (`/flow-runs/...`, `/deployments/...`) for everything.
"""

# No `from __future__ import annotations`: see flow_runs.py.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Path

from sluice.exceptions import Conflict, ValidationError
from sluice.models import (
    BundleLocation,
    ClaimRequest,
    ClaimResponse,
    Deployment,
    EventsAccepted,
    FlowRun,
    FlowRunCreate,
    HeartbeatRequest,
    HeartbeatResponse,
    SetStateRequest,
    SetStateResponse,
    WorkerLeaseAnswer,
    WorkerLeaseHeartbeat,
)
from sluice.models.names import MAX_NAME_CHARS, check_name

from .. import service
from ..orchestration import LeasePolicy
from ..ports import ControlPlanePorts
from ..service import code, worker_leases
from ..service.pool_scope import (
    PoolScopedStore,
    check_bundle_in_pool,
    deployment_in_pool,
    subflow_create_conflict,
    subflow_request_in_pool,
)
from .batch_body import EventsBatchBody, check_batch_timestamps, received_json
from .code import Sha256
from .parameters import DeploymentId, FlowRunId, documented
from .pools import PoolName
from .request_checks import body_size, caller_identity, check_timestamps

TAG = "workers"
#: A worker's name in a path; checked like `WorkerHeartbeat.name` (`check_name`) by the route.
WorkerNameParam = Annotated[str, Path(min_length=1, max_length=MAX_NAME_CHARS,
                                      description="Worker name.")]


def register_pool_routes_of_workers(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime],
    leases: LeasePolicy,
) -> None:
    """Add the pool-scoped routes workers and flow processes call."""
    store, queue, logs, metrics = ports.store, ports.queue, ports.logs, ports.metrics

    @app.post("/pools/<name>/flow-runs/<flow_run_id>/claim", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="A worker of the pool claims a queued run; returns the lease")
    def claim(name: PoolName, flow_run_id: FlowRunId, request: ClaimRequest) -> ClaimResponse:
        return service.claim_flow_run(
            flow_run_id, request, store=PoolScopedStore(store, name), metrics=metrics,
            queue=queue, now=clock(), leases=leases)

    @app.post("/pools/<name>/flow-runs/<flow_run_id>/heartbeat", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Renew the lease of a run of the pool")
    def heartbeat(name: PoolName, flow_run_id: FlowRunId,
                  request: HeartbeatRequest) -> HeartbeatResponse:
        return service.heartbeat(flow_run_id, request, store=PoolScopedStore(store, name),
                                 now=clock(), leases=leases)

    @app.post("/pools/<name>/workers/<worker>/heartbeat", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="A worker renews the leases of all its runs (one request per interval) "
                      "and says it is alive")
    def worker_lease_heartbeat(name: PoolName, worker: WorkerNameParam,
                               beat: WorkerLeaseHeartbeat) -> WorkerLeaseAnswer:
        try:
            check_name(worker, "worker")
        except ValueError as problem:
            raise ValidationError(str(problem), details={"field": "worker"}) from None
        return worker_leases.worker_lease_heartbeat(name, worker, beat, store=store,
                                                    clock=clock, leases=leases)

    @app.post("/pools/<name>/flow-runs/<flow_run_id>/state", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Report a transition of a run of the pool (with its lease)")
    def set_state(name: PoolName, flow_run_id: FlowRunId,
                  request: SetStateRequest) -> SetStateResponse:
        check_timestamps(request)
        return service.set_state(flow_run_id, request, store=PoolScopedStore(store, name),
                                 queue=queue, metrics=metrics, now=clock())

    @app.post("/pools/<name>/flow-runs/<flow_run_id>/events", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Report task runs and log lines of a run of the pool (with its lease)")
    def record_events(name: PoolName, flow_run_id: FlowRunId,
                      batch: EventsBatchBody) -> EventsAccepted:
        check_batch_timestamps(batch)
        return service.record_events(flow_run_id, batch, store=PoolScopedStore(store, name),
                                     logs=logs, metrics=metrics, queue=queue, now=clock(),
                                     body_bytes=body_size(app.current_event),
                                     received=received_json(batch))

    @app.get("/pools/<name>/flow-runs/<flow_run_id>", tags=[TAG],
             responses=documented(200, 404), summary="Read a run of the pool")
    def get_flow_run(name: PoolName, flow_run_id: FlowRunId) -> FlowRun:
        return service.get_flow_run(flow_run_id, store=PoolScopedStore(store, name))

    @app.post("/pools/<name>/flow-runs", status_code=201, tags=[TAG],
              responses=documented(201, 404, 409),
              summary="A flow process of the pool creates a subflow run")
    def create_subflow_run(name: PoolName, request: FlowRunCreate) -> FlowRun:
        check_timestamps(request)
        scoped = PoolScopedStore(store, name)
        subflow_request_in_pool(request, name, store=scoped)
        try:
            return service.create_flow_run(
                request, store=scoped, queue=queue, metrics=metrics,
                created_by=caller_identity(app.current_event.raw_event), now=clock(),
                leases=leases, worker_pool=name)
        except Conflict:
            # The id collided with a run this pool cannot see: say nothing about that run.
            raise subflow_create_conflict(request) from None

    @app.get("/pools/<name>/deployments/<deployment_id>", tags=[TAG],
             responses=documented(200, 404), summary="Read a deployment of the pool")
    def get_deployment(name: PoolName, deployment_id: DeploymentId) -> Deployment:
        return deployment_in_pool(deployment_id, name, store=store)

    @app.get("/pools/<name>/bundles/<sha256>", tags=[TAG], responses=documented(200, 404),
             summary="Where a worker of the pool downloads the code of one of its deployments")
    def bundle_download(name: PoolName, sha256: Sha256) -> BundleLocation:
        check_bundle_in_pool(sha256, name, store=store)
        return code.bundle_download(sha256, bundles=ports.bundles)
