"""Lambda entry of the automations function: an EventBridge rule on the stack's bus (source =
the stack's event source, `adapters/aws/event_bridge.py`) invokes it with each Sluice event the
API, scheduler and monitor functions put there, and it runs the reactive automations on it.

The other functions never run automations in a request or a tick (their dispatcher is
`NoDispatch`); proactive triggers stay on the monitor tick. EventBridge delivers at least once
and Lambda retries a failed invocation: the engine claims a receipt per (automation, event)
before acting, so a redelivered event acts no second time. The CDK construct points the
function at `sluice_functions.handlers.automations.handler`
(`infra/sluice_infra/automation_function.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from sluice.models import SluiceEvent

from ..automations.dispatch import NoDispatch
from ..automations.engine import on_events
from ..ports import ControlPlanePorts
from ..service.event_log import attach_recorder

SERVICE_NAME = "sluice-automations"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def sluice_event_of(delivered: dict[str, Any]) -> SluiceEvent:
    """The Sluice event an EventBridge delivery carries: its `detail` is the event's JSON, as
    the publisher put it. Raises pydantic's `ValidationError` for anything else."""
    return SluiceEvent.model_validate(delivered.get("detail"))


def make_handler(build_ports: Callable[[], ControlPlanePorts], *, logger: Logger) -> Handler:
    """A handler that builds the ports on its first call and runs the reactive automations on
    each delivered event. An event that is no Sluice event is logged, counted
    (`AutomationEventsMalformed`) and dropped: retrying cannot fix it. A failure to read the
    automations raises, so Lambda retries the delivery (and the rule's dead-letter queue keeps
    what could not be delivered)."""
    built: list[ControlPlanePorts] = []

    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not built:
            ports = build_ports()
            # This function's own results (`sluice.automation.*`) go on the bus too and come
            # back here through the rule; the events carry their depth, which bounds loops.
            attach_recorder(ports, NoDispatch())
            built.append(ports)
        ports = built[0]
        try:
            try:
                sluice_event = sluice_event_of(event)
            except ValidationError as exc:
                logger.error("not a Sluice event; dropped", extra={
                    "detail_type": (event or {}).get("detail-type"),
                    "errors": exc.errors(include_url=False)[:5]})
                ports.metrics.count("AutomationEventsMalformed")
                return {"fired": 0, "event": None}
            fired = on_events([sluice_event], ports=ports)
        finally:
            ports.metrics.flush()
        logger.info("automations evaluated", extra={"event_id": sluice_event.id,
                                                    "event_name": sluice_event.name,
                                                    "fired": fired})
        return {"fired": fired, "event": sluice_event.id}

    return handler


def ports_from_environment() -> ControlPlanePorts:
    """The AWS adapters configured by the function's environment (set by the CDK construct)."""
    from ..adapters.aws import build_aws_ports
    from ..config import ControlPlaneSettings

    return build_aws_ports(ControlPlaneSettings())


logger = Logger(service=SERVICE_NAME)
handler = make_handler(ports_from_environment, logger=logger)
