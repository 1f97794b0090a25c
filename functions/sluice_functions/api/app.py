"""The control-plane HTTP API: one Powertools `APIGatewayHttpResolver` built from the ports.

`build_app` is the only way to get one: the Lambda handler builds it once per container with
the AWS adapters, the embedded server with the SQLite ones, tests with fakes. Nothing here holds
adapters at module level.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from pydantic import BaseModel

import sluice
from sluice.models import utcnow

from ..orchestration import LeasePolicy
from ..ports import ControlPlanePorts
from .automations import register_automation_routes
from .batch_body import json_body_reader
from .code import register_code_routes
from .deployments import register_deployment_routes
from .errors import mark_request_read, register_error_handlers
from .events import register_event_routes
from .flow_runs import register_flow_run_routes
from .pool_routes import register_pool_routes_of_workers
from .pools import register_pool_routes
from .stats import register_stats_routes

OPENAPI_TITLE = "Sluice control plane"


class Health(BaseModel):
    """Answer of `GET /health`: the API process is up (no backend is called: a health probe must
    cost nothing and cannot fail because a table is throttled)."""

    status: str = "ok"
    version: str


def build_app(
    ports: ControlPlanePorts,
    *,
    clock: Callable[[], datetime] = utcnow,
    logger: logging.Logger | Any | None = None,
    leases: LeasePolicy | None = None,
) -> APIGatewayHttpResolver:
    """The API with every route of the control plane, served by `ports`.

    `clock` gives "now" to every use case (tests pass a fixed one). `logger` receives refused
    requests (info), backend push-back (warning) and failures (exception); a Powertools `Logger`
    fits, and the default is this module's standard logger. `leases` are the terms claims and
    heartbeats grant (default: the heartbeat timeout of `ControlPlaneSettings` from the
    environment).
    """
    if leases is None:
        from ..config import ControlPlaneSettings

        leases = LeasePolicy.of_seconds(ControlPlaneSettings().heartbeat_timeout_seconds)
    app = APIGatewayHttpResolver(
        enable_validation=True,
        # Size limit and strict JSON before anything is parsed (see request_checks); an events
        # batch validated from its text in one pass (see batch_body).
        json_body_deserializer=json_body_reader(
            lambda: app.current_event,
            keep_record_text=getattr(ports.store, "KEEPS_RECEIVED_JSON", False)),
        # A response that fails its own model is our bug: 500, never a 422 blamed on the client.
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    register_error_handlers(app, logger=logger or logging.getLogger(__name__))
    app.use([mark_request_read] if ports.schema is None
            else [mark_request_read, _schema_check(ports.schema)])
    _register_service_routes(app)
    register_flow_run_routes(app, ports=ports, clock=clock, leases=leases)
    register_deployment_routes(app, ports=ports, clock=clock)
    register_pool_routes(app, ports=ports, clock=clock)
    register_code_routes(app, ports=ports, clock=clock)
    register_pool_routes_of_workers(app, ports=ports, clock=clock, leases=leases)
    register_stats_routes(app, ports=ports, clock=clock)
    register_event_routes(app, ports=ports, clock=clock)
    register_automation_routes(app, ports=ports, clock=clock)
    return app


def _schema_check(guard: Any) -> Callable[..., Response]:
    """Middleware: every route but the health probe refuses to run on data newer than this
    code understands (`SchemaTooNew`, 503 naming the versions and the fix)."""

    def check_schema(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
        if app.current_event.path != "/health":
            guard.check()
        return next_middleware(app)

    return check_schema


def _register_service_routes(app: APIGatewayHttpResolver) -> None:
    @app.get("/health", tags=["service"], summary="Liveness of the API (calls no backend)")
    def health() -> Health:
        return Health(version=sluice.__version__)

    @functools.cache
    def openapi_document() -> str:
        # Generating the document walks every route and model (tens of ms): once per app.
        return app.get_openapi_json_schema(title=OPENAPI_TITLE, version=sluice.__version__)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi():  # noqa: ANN202 - the document itself is not described by a model
        return Response(
            status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document()
        )
