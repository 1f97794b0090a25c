"""Lambda entry of the scheduler function (EventBridge `rate(1 minute)`): one scheduler tick per
event - upcoming runs, releases, catch-up, backfill feeding, enqueueing of due runs. The CDK
construct points the function at `sluice_functions.handlers.scheduler.handler`."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

from .log_keys import route_package_logs_through
from .ticks import make_tick_handler, ports_from_environment, scheduler_job

SERVICE_NAME = "sluice-scheduler"

logger = Logger(service=SERVICE_NAME)
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda only: see route_package_logs_through
    route_package_logs_through(logger)
handler = make_tick_handler(
    "scheduler", lambda ports, settings: scheduler_job(ports), ports_from_environment,
    logger=logger,
)
