"""Routes of Sluice events: read the event log (operators), emit events (operators: `/events`;
a pool's flow processes: `/pools/{pool}/events`, about their own runs, names outside
`sluice.`). See `sluice_functions.access` for who may call which."""

# No `from __future__ import annotations`: Powertools reads these signatures at registration to
# build validation and the OpenAPI document.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import Field

from sluice.models import MAX_PAGE_LIMIT, EmitEventsRequest, EventsEmitted, Page, SluiceEvent

from ..ports import ControlPlanePorts
from ..service import user_events
from .parameters import documented, utc_query_time
from .pools import PoolName

TAG = "events"


def register_event_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add `GET /events`, `POST /events` and `POST /pools/{pool}/events` to `app`."""

    @app.get("/events", tags=[TAG], responses=documented(200),
             summary="Sluice events, newest first (oldest first with since, to tail)")
    def list_events(
        since: Annotated[datetime | None, Query(
            description="Inclusive; events oldest first from here. Without zone: UTC.")] = None,
        until: Annotated[datetime | None, Query(description="Exclusive.")] = None,
        name: Annotated[
            list[Annotated[str, Field(max_length=200)]] | None,
            Query(max_length=user_events.MAX_NAME_FILTERS,
                  description="Name prefixes, e.g. sluice.flow-run.Failed (repeatable)."),
        ] = None,
        resource_id: Annotated[str | None, Query(
            max_length=200, description="Events about, or related to, this id.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 100,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> Page[SluiceEvent]:
        return user_events.list_events(
            ports=ports, since=utc_query_time(since, "since"),
            until=utc_query_time(until, "until"), names=name, resource_id=resource_id,
            limit=limit, cursor=cursor)

    @app.post("/events", tags=[TAG], responses=documented(200),
              summary="Emit events (automations and on-event deployments react to them)")
    def emit_events(request: EmitEventsRequest) -> EventsEmitted:
        return user_events.emit_events(request, ports=ports, now=clock(), operator=True)

    @app.post("/pools/<name>/events", tags=[TAG], responses=documented(200, 404),
              summary="A flow process of the pool emits events about its run")
    def emit_pool_events(name: PoolName, request: EmitEventsRequest) -> EventsEmitted:
        return user_events.emit_events(request, ports=ports, now=clock(), operator=False,
                                       pool=name)
