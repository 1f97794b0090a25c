"""Routes of work pools: create (idempotent), list, and read with live figures."""

# No `from __future__ import annotations`: see flow_runs.py.

from collections.abc import Callable
from datetime import datetime

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from sluice.models import Page, Pool, PoolCreate

from .. import service
from ..ports import ControlPlanePorts
from .parameters import PoolName, documented

TAG = "pools"


def register_pool_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add the `/pools` routes to `app`; each one calls a use case with `ports`."""
    store, queue = ports.store, ports.queue

    @app.post("/pools", tags=[TAG], responses=documented(200),
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
