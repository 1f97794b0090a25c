"""Routes of deployments: upsert, list, read/patch/delete, and run.

A deployment is addressed by id (`/deployments/{id}`) or by its names
(`/deployments/{flow_name}/{name}`, the form users type): each route exists in both forms and
both call the same use case with a reference (`"<id>"` or `"<flow_name>/<name>"`). API Gateway
HTTP APIs decode `%2F` in paths, so `/deployments/etl%2Fnightly` lands on the two-segment form.
"""

# No `from __future__ import annotations`: see flow_runs.py.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from sluice.models import (
    BackfillRequest,
    BackfillSummary,
    Deployment,
    DeploymentCreate,
    DeploymentRunRequest,
    DeploymentUpdate,
    FlowRun,
    Page,
)
from sluice.models.names import lookup_validator

from .. import service
from ..ports import ControlPlanePorts
from ..service.pool_scope import run_of_deployment
from .parameters import (
    DEFAULT_PAGE_LIMIT,
    MAX_NAME_CHARS,
    DeploymentId,
    DeploymentName,
    FlowName,
    FlowRunId,
    PageCursor,
    PageLimit,
    documented,
)
from .request_checks import caller_identity, check_timestamps

TAG = "deployments"


def register_deployment_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add the `/deployments` routes to `app`; each one calls a use case with `ports`."""
    store, queue, metrics = ports.store, ports.queue, ports.metrics

    def read(ref: str) -> Deployment:
        return service.get_deployment(ref, store=store)

    def patch(ref: str, update: DeploymentUpdate) -> Deployment:
        check_timestamps(update)
        return service.update_deployment(ref, update, store=store, now=clock())

    def delete(ref: str) -> Response:
        service.delete_deployment(ref, store=store)
        return Response(status_code=204)

    def run(ref: str, request: DeploymentRunRequest | None) -> FlowRun:
        request = request or DeploymentRunRequest()
        check_timestamps(request)
        return service.run_deployment(
            ref, request, store=store, queue=queue, metrics=metrics,
            created_by=caller_identity(app.current_event.raw_event), now=clock(),
        )

    def backfill(ref: str, request: BackfillRequest) -> BackfillSummary:
        check_timestamps(request)
        from ..scheduling import backfill_deployment

        result = backfill_deployment(
            ref, request.start, request.end, store=store, queue=queue, metrics=metrics,
            reprocess=request.reprocess, max_active=request.max_active,
            backfill_id=request.backfill_id,
            created_by=caller_identity(app.current_event.raw_event), now=clock(),
        )
        return BackfillSummary(backfill_id=result.backfill_id, slots=result.slots,
                               created=result.created, reprocessed=result.reprocessed,
                               existing=result.existing, released=result.released,
                               run_ids=result.run_ids)

    @app.post("/deployments", tags=[TAG], responses=documented(200),
              summary="Create or replace the deployment (flow_name, name); creates its pool")
    def upsert_deployment(request: DeploymentCreate) -> Deployment:
        check_timestamps(request)
        return service.create_deployment(
            request, store=store, queue=queue,
            created_by=caller_identity(app.current_event.raw_event), now=clock(),
        )

    @app.get("/deployments", tags=[TAG], responses=documented(200),
             summary="List deployments by flow name, then name")
    def list_deployments(
        flow_name: Annotated[str | None, Query(max_length=MAX_NAME_CHARS),
                             lookup_validator("flow")] = None,
        limit: PageLimit = DEFAULT_PAGE_LIMIT,
        cursor: PageCursor = None,
    ) -> Page[Deployment]:
        return service.list_deployments(
            store=store, flow_name=flow_name, limit=limit, cursor=cursor
        )

    # ---- by id -----------------------------------------------------------------------------

    @app.get("/deployments/<deployment_id>", tags=[TAG], responses=documented(200, 404),
             summary="Read a deployment by id")
    def get_deployment(deployment_id: DeploymentId) -> Deployment:
        return read(deployment_id)

    @app.patch("/deployments/<deployment_id>", tags=[TAG], responses=documented(200, 404),
               summary="Change some fields of a deployment (pause/resume, schedules ...)")
    def update_deployment(deployment_id: DeploymentId, update: DeploymentUpdate) -> Deployment:
        return patch(deployment_id, update)

    @app.delete("/deployments/<deployment_id>", status_code=204, tags=[TAG],
                responses=documented(204, 404), summary="Delete a deployment (its runs stay)")
    def delete_deployment(deployment_id: DeploymentId):  # noqa: ANN202 - 204 has no body model
        return delete(deployment_id)

    @app.post("/deployments/<deployment_id>/runs", status_code=201, tags=[TAG],
              responses=documented(201, 404), summary="Create a run of a deployment")
    def run_deployment(
        deployment_id: DeploymentId,
        request: Annotated[DeploymentRunRequest | None, Body()] = None,
    ) -> FlowRun:
        return run(deployment_id, request)

    @app.post("/deployments/<deployment_id>/backfill", status_code=201, tags=[TAG],
              responses=documented(201, 404),
              summary="Create the runs the schedules would have made in a past window")
    def backfill_deployment(deployment_id: DeploymentId, request: BackfillRequest
                            ) -> BackfillSummary:
        return backfill(deployment_id, request)

    # ---- by "flow_name/name" -----------------------------------------------------------------

    @app.get("/deployments/<flow_name>/<name>", tags=[TAG], responses=documented(200, 404),
             summary="Read a deployment by its flow name and name")
    def get_deployment_by_name(flow_name: FlowName, name: DeploymentName) -> Deployment:
        return read(f"{flow_name}/{name}")

    @app.patch("/deployments/<flow_name>/<name>", tags=[TAG], responses=documented(200, 404),
               summary="Change some fields of a deployment named by flow name and name")
    def update_deployment_by_name(
        flow_name: FlowName, name: DeploymentName, update: DeploymentUpdate
    ) -> Deployment:
        return patch(f"{flow_name}/{name}", update)

    @app.delete("/deployments/<flow_name>/<name>", status_code=204, tags=[TAG],
                responses=documented(204, 404),
                summary="Delete a deployment named by flow name and name")
    def delete_deployment_by_name(flow_name: FlowName, name: DeploymentName):  # noqa: ANN202
        return delete(f"{flow_name}/{name}")

    @app.post("/deployments/<flow_name>/<name>/runs", status_code=201, tags=[TAG],
              responses=documented(201, 404),
              summary="Create a run of a deployment named by flow name and name")
    def run_deployment_by_name(
        flow_name: FlowName,
        name: DeploymentName,
        request: Annotated[DeploymentRunRequest | None, Body()] = None,
    ) -> FlowRun:
        return run(f"{flow_name}/{name}", request)

    @app.get("/deployments/<flow_name>/<name>/runs/<flow_run_id>", tags=[TAG],
             responses=documented(200, 404),
             summary="Read a run of a deployment named by flow name and name (what "
                     "`run_deployment` watches; a grant to trigger the deployment covers it)")
    def get_deployment_run_by_name(flow_name: FlowName, name: DeploymentName,
                                   flow_run_id: FlowRunId) -> FlowRun:
        return run_of_deployment(f"{flow_name}/{name}", flow_run_id, store=store)

    @app.post("/deployments/<flow_name>/<name>/backfill", status_code=201, tags=[TAG],
              responses=documented(201, 404),
              summary="Backfill a deployment named by flow name and name")
    def backfill_deployment_by_name(flow_name: FlowName, name: DeploymentName,
                                    request: BackfillRequest) -> BackfillSummary:
        return backfill(f"{flow_name}/{name}", request)
