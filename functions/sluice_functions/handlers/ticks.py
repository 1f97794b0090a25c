"""The scheduler and monitor ticks as jobs: the Lambda handlers (`scheduler`, `monitor`) and the
embedded server's timers run the same functions with the same ports.

Every job reads the clock when it runs (`clock`, injectable for tests) and returns its result;
the Lambda handler made by `make_tick_handler` builds the ports once per container, logs the
result as structured JSON with Powertools and flushes the metrics after every invocation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from sluice.models import utcnow

from ..config import ControlPlaneSettings
from ..monitoring import DEFAULT_LATE_GRACE, DEFAULT_REPAIR_AFTER, MonitorTickResult, monitor_runs
from ..ports import ControlPlanePorts
from ..scheduling import DEFAULT_TICK_INTERVAL, SchedulerTickResult, schedule_deployments

Clock = Callable[[], datetime]
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class TickResult(Protocol):
    def as_dict(self) -> dict[str, int]: ...


def _refuse_newer_data(ports: ControlPlanePorts) -> None:
    """A tick on data newer than this code understands fails (`SchemaTooNew`; the function's
    error alarm fires) instead of rewriting runs in a layout it does not know."""
    if ports.schema is not None:
        ports.schema.check()


def scheduler_job(
    ports: ControlPlanePorts,
    *,
    clock: Clock = utcnow,
    tick_interval: timedelta = DEFAULT_TICK_INTERVAL,
) -> Callable[[], SchedulerTickResult]:
    """One scheduler tick per call."""

    def run() -> SchedulerTickResult:
        _refuse_newer_data(ports)
        return schedule_deployments(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                                    now=clock(), tick_interval=tick_interval)

    return run


def monitor_job(
    ports: ControlPlanePorts,
    *,
    heartbeat_timeout: timedelta,
    clock: Clock = utcnow,
    late_grace: timedelta = DEFAULT_LATE_GRACE,
    repair_after: timedelta = DEFAULT_REPAIR_AFTER,
) -> Callable[[], MonitorTickResult]:
    """One monitor tick per call."""

    def run() -> MonitorTickResult:
        _refuse_newer_data(ports)
        return monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                            now=clock(), heartbeat_timeout=heartbeat_timeout,
                            late_grace=late_grace, repair_after=repair_after)

    return run


def embedded_jobs(
    ports: ControlPlanePorts,
    *,
    settings: ControlPlaneSettings | None = None,
    clock: Clock = utcnow,
    tick_interval: timedelta = DEFAULT_TICK_INTERVAL,
) -> list[tuple[str, Callable[[], Any]]]:
    """The periodic jobs of the embedded server: the scheduler and the monitor. The heartbeat
    timeout comes from `settings` (default: the environment, `SLUICE_HEARTBEAT_TIMEOUT_SECONDS`);
    `tick_interval` is how often the server's timer calls them."""
    settings = settings or ControlPlaneSettings()
    timeout = timedelta(seconds=settings.heartbeat_timeout_seconds)
    return [
        ("scheduler", scheduler_job(ports, clock=clock, tick_interval=tick_interval)),
        ("monitor", monitor_job(ports, heartbeat_timeout=timeout, clock=clock)),
    ]


def ports_from_environment() -> tuple[ControlPlanePorts, ControlPlaneSettings]:
    """The AWS adapters and the settings of the function's environment (set by the CDK
    construct); boto3 is imported only here, on the first invocation. The ticks' events go
    on the bus, where the automations function acts on them (`NoDispatch` here)."""
    from ..adapters.aws import build_aws_ports
    from ..automations.dispatch import NoDispatch
    from ..service.event_log import attach_recorder

    settings = ControlPlaneSettings()
    ports = build_aws_ports(settings)
    attach_recorder(ports, NoDispatch())
    return ports, settings


def make_tick_handler(
    name: str,
    make_job: Callable[[ControlPlanePorts, ControlPlaneSettings], Callable[[], TickResult]],
    build: Callable[[], tuple[ControlPlanePorts, ControlPlaneSettings]],
    *,
    logger: Logger,
) -> Handler:
    """A Lambda handler for EventBridge scheduled events that runs one tick per event.

    The ports and the job are built on the first invocation of a container and reused; a
    failure is logged and raised (Lambda records the error, EventBridge retries; ticks are
    idempotent). Returns the tick's counts.
    """
    built: list[tuple[ControlPlanePorts, Callable[[], TickResult]]] = []

    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not built:
            ports, settings = build()
            built.append((ports, make_job(ports, settings)))
        ports, job = built[0]
        try:
            result = job().as_dict()
        except Exception:
            logger.exception(f"{name} tick failed")
            raise
        finally:
            ports.metrics.flush()
        logger.info(f"{name} tick done", extra={"tick": result,
                                                "event_time": (event or {}).get("time")})
        return result

    return handler
