"""Routes of work pools: create (idempotent), list, read with live figures, pause or resume,
and delete."""

# No `from __future__ import annotations`: see flow_runs.py.

from collections.abc import Callable
from datetime import datetime

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from sluice.models import Page, Pool, PoolCreate, PoolUpdate

from .. import service
from ..service import pools
from ..ports import ControlPlanePorts
from .parameters import PoolName, documented

TAG = "pools"


def register_pool_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add the `/pools` routes to `app`; each one calls a use case with `ports`."""
    store, queue = ports.store, ports.queue

    @app.post("/pools", tags=[TAG], responses=documented(200, 409),
              summary="Create a pool (its queue and dead-letter queue) or update its settings")
    def create_pool(request: PoolCreate) -> Pool:
        return service.create_pool(request, store=store, queue=queue, now=clock())

    @app.get("/pools", tags=[TAG], responses=documented(200),
             summary="Every pool's settings, by name (one page: pools are few)")
    def list_pools() -> Page[Pool]:
        return Page[Pool](items=service.list_pools(store=store))

    @app.get("/pools/<name>", tags=[TAG], responses=documented(200, 404),
             summary="A pool with queue depth, workers seen and runs holding a slot")
    def get_pool(name: PoolName) -> Pool:
        return service.get_pool(name, store=store, queue=queue, now=clock())

    @app.patch("/pools/<name>", tags=[TAG], responses=documented(200, 404, 422),
               summary="Change a pool's settings: pause (claims refused, runs wait) or resume")
    def update_pool(name: PoolName, update: PoolUpdate) -> Pool:
        return pools.update_pool(name, update, store=store, queue=queue, now=clock())

    @app.delete("/pools/<name>", status_code=204, tags=[TAG],
                responses=documented(204, 404, 409),
                summary="Delete a pool, its queue and dead-letter queue (refused while in use)")
    def delete_pool(  # noqa: ANN202 - 204 has no body model
        name: PoolName,
        force: Annotated[bool, Query(description="Cancel its scheduled runs and delete it even "
                                                 "if deployments use it (never while runs of "
                                                 "it are active).")] = False,
    ):
        pools.delete_pool(name, store=store, queue=queue, metrics=ports.metrics, force=force,
                          now=clock())
        return Response(status_code=204)
