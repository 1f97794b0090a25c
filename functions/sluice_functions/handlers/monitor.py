"""Lambda entry of the monitor function (EventBridge `rate(1 minute)`): one monitor tick per
event - crashed runs (heartbeat older than `SLUICE_HEARTBEAT_TIMEOUT_SECONDS`), late runs, lost
queue messages. The CDK construct points the function at
`sluice_functions.handlers.monitor.handler`."""

from __future__ import annotations

import os
from datetime import timedelta

from aws_lambda_powertools import Logger

from .log_keys import route_package_logs_through
from .ticks import make_tick_handler, monitor_job, ports_from_environment

SERVICE_NAME = "sluice-monitor"

logger = Logger(service=SERVICE_NAME)
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda only: see route_package_logs_through
    route_package_logs_through(logger)
handler = make_tick_handler(
    "monitor",
    lambda ports, settings: monitor_job(
        ports, heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_seconds)
    ),
    ports_from_environment,
    logger=logger,
)
