"""Routes of automations (operator-only): create, list, read, pause/resume, delete."""

# No `from __future__ import annotations`: see flow_runs.py.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from sluice.models import Automation, AutomationCreate, AutomationUpdate, Page

from ..automations import manage
from ..ports import ControlPlanePorts
from .parameters import documented

TAG = "automations"
AutomationId = Annotated[str, Path(min_length=1, max_length=64, description="Automation id.")]


def register_automation_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add the `/automations` routes to `app`."""

    @app.post("/automations", tags=[TAG], responses=documented(200, 422),
              summary="Create an automation: a trigger and the actions it takes")
    def create_automation(request: AutomationCreate) -> Automation:
        return manage.create_automation(request, ports=ports, now=clock())

    @app.get("/automations", tags=[TAG], responses=documented(200),
             summary="Every automation, by name (one page: automations are few)")
    def list_automations() -> Page[Automation]:
        return Page[Automation](items=manage.list_automations(ports=ports))

    @app.get("/automations/<automation_id>", tags=[TAG], responses=documented(200, 404),
             summary="One automation")
    def get_automation(automation_id: AutomationId) -> Automation:
        return manage.get_automation(automation_id, ports=ports)

    @app.patch("/automations/<automation_id>", tags=[TAG], responses=documented(200, 404, 422),
               summary="Pause (enabled: false) or resume (enabled: true) an automation")
    def update_automation(automation_id: AutomationId, update: AutomationUpdate) -> Automation:
        return manage.set_enabled(automation_id, update.enabled, ports=ports, now=clock())

    @app.delete("/automations/<automation_id>", status_code=204, tags=[TAG],
                responses=documented(204, 404, 409),
                summary="Delete an automation (not one a deployment's triggers own: 409)")
    def delete_automation(automation_id: AutomationId):  # noqa: ANN202 - 204 has no body
        manage.delete_automation(automation_id, ports=ports)
        return Response(status_code=204)
