"""Routes of the console's overview pages: runs counted per time bucket and state, and the
deployments with their schedules in words. Operator-only (`access.OPERATOR_ONLY_ROUTES`)."""

# No `from __future__ import annotations`: Powertools reads these signatures at registration to
# build validation and the OpenAPI document.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Query

from ..ports import ControlPlanePorts
from ..service import stats
from .parameters import MAX_NAME_CHARS, MAX_POOL_NAME_CHARS, documented, utc_query_time

TAG = "stats"


def register_stats_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add the `/stats` routes to `app`."""
    store = ports.store

    @app.get("/stats/flow-runs", tags=[TAG], responses=documented(200, 404),
             summary="Runs per scheduled-time bucket and state type (counted in the store)")
    def flow_run_stats(
        since: Annotated[datetime | None, Query(
            description="Start of the window (default: 24 h before until), rounded down to a "
                        "bucket edge; a time without zone is UTC.")] = None,
        until: Annotated[datetime | None, Query(
            description="End of the window (default: now), rounded up to a bucket edge.")
        ] = None,
        bucket_seconds: Annotated[int, Query(
            description="Bucket size: 300, 900, 3600, 21600 or 86400 seconds.")
        ] = stats.DEFAULT_BUCKET_SECONDS,
        flow_name: Annotated[str | None, Query(max_length=MAX_NAME_CHARS)] = None,
        deployment_id: Annotated[str | None, Query(
            max_length=2 * MAX_NAME_CHARS + 1,
            description='A deployment id, or "flow_name/deployment_name".')] = None,
        pool: Annotated[str | None, Query(max_length=MAX_POOL_NAME_CHARS)] = None,
    ) -> stats.FlowRunStats:
        return stats.flow_run_stats(
            store=store, now=clock(), since=utc_query_time(since, "since"),
            until=utc_query_time(until, "until"), bucket_seconds=bucket_seconds,
            flow_name=flow_name, deployment_id=deployment_id, pool=pool)

    @app.get("/stats/deployments", tags=[TAG], responses=documented(200),
             summary="Deployments with schedules in words, next runs and recent runs")
    def deployment_stats() -> list[stats.DeploymentStats]:
        return stats.deployment_stats(store=store, now=clock())
