"""Lambda entry of the API function: API Gateway HTTP API (payload 2.0) events -> `build_app`.

This is the composition root of the API in AWS, the one place allowed to build adapters: on the
first invocation of a container it reads `ControlPlaneSettings` from the environment, builds the
AWS ports and the app, and reuses them for every later invocation (cold start once, not per
request). The CDK construct points the function at `sluice_functions.handlers.api.handler`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from ..api import build_app
from ..api.errors import startup_failure_event_response
from ..automations.dispatch import NoDispatch
from ..automations.on_event import is_eventbridge_invocation, on_delivered
from ..ports import ControlPlanePorts
from ..service.event_log import attach_recorder
from .log_keys import keys_appended, request_log_keys, route_package_logs_through

SERVICE_NAME = "sluice-api"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(build_ports: Callable[[], ControlPlanePorts], *, logger: Logger,
                 clock: Callable[[], datetime] | None = None) -> Handler:
    """A Lambda handler that builds `build_ports()` and the app on its first call, then serves
    every event with them; logs are structured JSON with the Lambda context and the API request
    id as correlation id, and the metrics port is flushed after each invocation (EMF metrics
    only leave the process when flushed). `clock` gives the app its "now" (default: the real
    UTC clock; bench/scale.py passes a simulated one)."""
    built: list[tuple[Any, ControlPlanePorts]] = []

    def application(context: Any) -> tuple[Any, ControlPlanePorts]:
        if not built:
            ports = _with_on_event_rules(build_ports(), context)
            # Events go on the bus; the automations function acts on them (EventBridge rule),
            # never this request.
            attach_recorder(ports, NoDispatch())
            app = (build_app(ports, logger=logger) if clock is None
                   else build_app(ports, logger=logger, clock=clock))
            built.append((app, ports))
        return built[0]

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            app, ports = application(context)
        except Exception:
            # Misconfiguration (settings, adapters): answer JSON like every other failure; the
            # next invocation tries again.
            logger.exception("the API could not be built")
            return startup_failure_event_response()
        try:
            if is_eventbridge_invocation(event):
                # A deployment's on-event rule delivered this event: no HTTP request, no
                # response for anyone; the run(s) it starts are the answer.
                return on_delivered(event, ports=ports)
            with keys_appended(logger, request_log_keys(event)):
                return app.resolve(event, context)
        finally:
            ports.metrics.flush()

    return handler


def _with_on_event_rules(ports: ControlPlanePorts, context: Any) -> ControlPlanePorts:
    """In AWS (events go to a bus), deployments' on-event rules target this very function: the
    ports carry the rules (`ControlPlanePorts.event_rules`); elsewhere they are unchanged."""
    if not getattr(ports.publisher, "bus_name", None):
        return ports
    from ..adapters.aws.event_rules import rules_from_environment

    rules = rules_from_environment(getattr(context, "invoked_function_arn", None))
    return replace(ports, event_rules=rules) if rules is not None else ports


def ports_from_environment() -> ControlPlanePorts:
    """The AWS adapters configured by the function's environment (set by the CDK construct)."""
    # Imported here so that importing this module (tests, the embedded server) needs no boto3.
    from ..adapters.aws import build_aws_ports
    from ..config import ControlPlaneSettings

    return build_aws_ports(ControlPlaneSettings())


logger = Logger(service=SERVICE_NAME)
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda only: see route_package_logs_through
    route_package_logs_through(logger)
handler = make_handler(ports_from_environment, logger=logger)
