"""Routes of flow runs: create, list, read, move through states, and what a run reports (task
runs and logs)."""

# No `from __future__ import annotations`: Powertools reads these signatures at registration to
# build validation and the OpenAPI document, and plain annotations need no name resolution.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field

from sluice.models import (
    MAX_STATE_MESSAGE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    ClaimRequest,
    ClaimResponse,
    EventsAccepted,
    FlowRun,
    FlowRunCreate,
    HeartbeatRequest,
    HeartbeatResponse,
    LogRecord,
    Page,
    SetStateRequest,
    SetStateResponse,
    State,
    StateType,
    TaskRun,
)

from .. import service
from ..service import run_admin, suspension
from ..service.run_admin import MAX_REF_CHARS
from ..orchestration import LeasePolicy
from ..ports import ControlPlanePorts, FlowRunFilter
from .batch_body import EventsBatchBody, check_batch_timestamps, received_json
from .parameters import (
    DEFAULT_PAGE_LIMIT,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    FlowRunId,
    PageCursor,
    PageLimit,
    documented,
    utc_query_time,
)
from .request_checks import body_size, caller_identity, check_timestamps

TAG = "flow runs"


class CancelRequest(BaseModel):
    """Optional body of `POST /flow-runs/{id}/cancel`: why the run is cancelled."""

    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(default=None, max_length=MAX_STATE_MESSAGE_CHARS)


class SuspendRequest(BaseModel):
    """Optional body of `POST /flow-runs/{id}/suspend` and `/resume`: why, shown in the state."""

    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(default=None, max_length=MAX_STATE_MESSAGE_CHARS)


def register_flow_run_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime],
    leases: LeasePolicy,
) -> None:
    """Add the `/flow-runs` routes to `app`; each one calls a use case with `ports`; claims and
    heartbeats grant leases on `leases`' terms."""
    store, queue, logs, metrics = ports.store, ports.queue, ports.logs, ports.metrics

    @app.post("/flow-runs", status_code=201, tags=[TAG], responses=documented(201, 409),
              summary="Create a flow run (idempotent with idempotency_key or a client id)")
    def create_flow_run(request: FlowRunCreate) -> FlowRun:
        check_timestamps(request)
        return service.create_flow_run(
            request, store=store, queue=queue, metrics=metrics,
            created_by=caller_identity(app.current_event.raw_event), now=clock(), leases=leases,
        )

    @app.get("/flow-runs", tags=[TAG], responses=documented(200, 404),
             summary="List flow runs, newest scheduled first")
    def list_flow_runs(
        flow_name: Annotated[str | None, Query(max_length=MAX_NAME_CHARS)] = None,
        deployment_id: Annotated[
            str | None,
            Query(max_length=2 * MAX_NAME_CHARS + 1,
                  description='A deployment id, or "flow_name/deployment_name".'),
        ] = None,
        pool: Annotated[str | None, Query(max_length=MAX_NAME_CHARS)] = None,
        state_type: Annotated[
            list[StateType] | None,
            Query(description="Any of these state types (repeat the parameter or separate "
                              "with commas)."),
        ] = None,
        scheduled_after: Annotated[
            datetime | None, Query(description="Inclusive; a time without zone is UTC.")
        ] = None,
        scheduled_before: Annotated[
            datetime | None, Query(description="Exclusive; a time without zone is UTC.")
        ] = None,
        tag: Annotated[
            list[Annotated[str, Field(max_length=MAX_TAG_CHARS)]] | None,
            Query(max_length=MAX_TAGS,
                  description="Only runs having every one of these tags (repeat the parameter)."),
        ] = None,
        parent_flow_run_id: Annotated[
            str | None, Query(max_length=MAX_ID_CHARS, description="Only subflows of this run.")
        ] = None,
        limit: PageLimit = DEFAULT_PAGE_LIMIT,
        cursor: PageCursor = None,
    ) -> Page[FlowRun]:
        if deployment_id is not None and "/" in deployment_id:
            deployment_id = service.get_deployment(deployment_id, store=store).id
        flt = FlowRunFilter(
            flow_name=flow_name,
            deployment_id=deployment_id,
            pool=pool,
            state_types=frozenset(state_type) if state_type else None,
            scheduled_after=utc_query_time(scheduled_after, "scheduled_after"),
            scheduled_before=utc_query_time(scheduled_before, "scheduled_before"),
            tags=frozenset(tag) if tag else None,
            parent_flow_run_id=parent_flow_run_id,
        )
        return service.list_flow_runs(flt, store=store, limit=limit, cursor=cursor)

    # A static path: Powertools tries static routes before `/flow-runs/<flow_run_id>`, and it
    # is registered first too, so "resolve" is never taken for an id.
    @app.get("/flow-runs/resolve", tags=[TAG], responses=documented(200, 400, 404, 409),
             summary="Find the run a user means: full id, unique id prefix or suffix, or name")
    def resolve_flow_run(
        ref: Annotated[str, Query(min_length=1, max_length=MAX_REF_CHARS,
                                  description="A run's id, the start (4+ characters) or end "
                                              "(6+) of its id, or its name.")],
    ) -> FlowRun:
        return run_admin.resolve_flow_run(ref, store=store)

    @app.delete("/flow-runs/<flow_run_id>", status_code=204, tags=[TAG],
                responses=documented(204, 404, 409),
                summary="Delete a finished run with its history, task runs and logs")
    def delete_flow_run(flow_run_id: FlowRunId):  # noqa: ANN202 - 204 has no body model
        run_admin.delete_flow_run(flow_run_id, store=store, logs=logs)
        return Response(status_code=204)

    @app.get("/flow-runs/<flow_run_id>", tags=[TAG], responses=documented(200, 404),
             summary="Read a flow run")
    def get_flow_run(flow_run_id: FlowRunId) -> FlowRun:
        return service.get_flow_run(flow_run_id, store=store)

    @app.get("/flow-runs/<flow_run_id>/history", tags=[TAG], responses=documented(200, 404),
             summary="Every state of a flow run, oldest first")
    def get_flow_run_history(flow_run_id: FlowRunId) -> list[State]:
        return service.list_state_history(flow_run_id, store=store)

    @app.post("/flow-runs/<flow_run_id>/state", tags=[TAG], responses=documented(200, 404, 409),
              summary="Propose a new state: ACCEPT, or REJECT/ABORT with the reason")
    def set_flow_run_state(flow_run_id: FlowRunId, request: SetStateRequest) -> SetStateResponse:
        check_timestamps(request)
        return service.set_state(
            flow_run_id, request, store=store, queue=queue, metrics=metrics, now=clock()
        )

    @app.post("/flow-runs/<flow_run_id>/claim", tags=[TAG], responses=documented(200, 404, 409),
              summary="Claim a queued run for a worker (Scheduled to Pending); returns the lease")
    def claim_flow_run(flow_run_id: FlowRunId, request: ClaimRequest) -> ClaimResponse:
        return service.claim_flow_run(
            flow_run_id, request, store=store, metrics=metrics, queue=queue, now=clock(),
            leases=leases,
        )

    @app.post("/flow-runs/<flow_run_id>/heartbeat", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Renew the attempt's lease; the answer says whether to cancel, and the "
                      "lease's new expiry")
    def heartbeat_flow_run(flow_run_id: FlowRunId, request: HeartbeatRequest) -> HeartbeatResponse:
        return service.heartbeat(flow_run_id, request, store=store, now=clock(), leases=leases)

    @app.post("/flow-runs/<flow_run_id>/cancel", tags=[TAG], responses=documented(200, 404, 409),
              summary="Cancel a run (at once if not started, else Cancelling until confirmed)")
    def cancel_flow_run(
        flow_run_id: FlowRunId,
        request: Annotated[CancelRequest | None, Body()] = None,
    ) -> SetStateResponse:
        return service.cancel_flow_run(
            flow_run_id, store=store, metrics=metrics, now=clock(),
            message=request.message if request else None,
        )

    @app.post("/flow-runs/<flow_run_id>/retry", tags=[TAG], responses=documented(200, 404, 409),
              summary="Start a new attempt of a Failed or Crashed run")
    def retry_flow_run(flow_run_id: FlowRunId) -> SetStateResponse:
        return service.retry_flow_run(
            flow_run_id, store=store, queue=queue, metrics=metrics, now=clock()
        )

    @app.post("/flow-runs/<flow_run_id>/suspend", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Suspend a run (Scheduled, Pending or Running) until it is resumed; a "
                      "finished run is refused (409)")
    def suspend_flow_run(
        flow_run_id: FlowRunId,
        request: Annotated[SuspendRequest | None, Body()] = None,
    ) -> SetStateResponse:
        return suspension.suspend_flow_run(
            flow_run_id, store=store, queue=queue, metrics=metrics, now=clock(),
            message=request.message if request else None,
        )

    @app.post("/flow-runs/<flow_run_id>/resume", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Resume a Suspended run: Scheduled now, a new attempt is queued")
    def resume_flow_run(
        flow_run_id: FlowRunId,
        request: Annotated[SuspendRequest | None, Body()] = None,
    ) -> SetStateResponse:
        return suspension.resume_flow_run(
            flow_run_id, store=store, queue=queue, metrics=metrics, now=clock(),
            message=request.message if request else None,
        )

    @app.post("/flow-runs/<flow_run_id>/events", tags=[TAG],
              responses=documented(200, 404, 409),
              summary="Record a batch of task-run records and log lines (idempotent by id)")
    def record_flow_run_events(flow_run_id: FlowRunId, batch: EventsBatchBody) -> EventsAccepted:
        check_batch_timestamps(batch)
        return service.record_events(flow_run_id, batch, store=store, logs=logs, metrics=metrics,
                                     queue=queue, now=clock(),
                                     body_bytes=body_size(app.current_event),
                                     received=received_json(batch))

    @app.get("/flow-runs/<flow_run_id>/task-runs", tags=[TAG], responses=documented(200, 404),
             summary="Task runs of a flow run, in creation order")
    def list_flow_run_task_runs(
        flow_run_id: FlowRunId, limit: PageLimit = DEFAULT_PAGE_LIMIT, cursor: PageCursor = None
    ) -> Page[TaskRun]:
        return service.list_task_runs(flow_run_id, store=store, limit=limit, cursor=cursor)

    @app.get("/flow-runs/<flow_run_id>/logs", tags=[TAG], responses=documented(200, 404),
             summary="Log lines of a flow run in time order; next_cursor is always set")
    def read_flow_run_logs(
        flow_run_id: FlowRunId, limit: PageLimit = DEFAULT_PAGE_LIMIT, cursor: PageCursor = None
    ) -> Page[LogRecord]:
        return service.read_logs(flow_run_id, store=store, logs=logs, limit=limit, cursor=cursor)
