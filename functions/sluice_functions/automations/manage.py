"""Use cases of the `/automations` routes: create, list, read, pause/resume, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sluice.exceptions import Conflict
from sluice.models import Automation, AutomationCreate, utcnow

from .ports import automation_store


def create_automation(request: AutomationCreate, *, ports: Any,
                      now: datetime | None = None) -> Automation:
    """Store a new automation (a new id each time); it applies to events from now on."""
    now = now or utcnow()
    automation = Automation(**request.model_dump(), created=now, updated=now)
    return automation_store(ports).put_automation(automation)


def list_automations(*, ports: Any) -> list[Automation]:
    """Every automation, by name."""
    return automation_store(ports).list_automations()


def get_automation(automation_id: str, *, ports: Any) -> Automation:
    """One automation; raises `NotFound`."""
    return automation_store(ports).get_automation(automation_id)


def set_enabled(automation_id: str, enabled: bool, *, ports: Any,
                now: datetime | None = None) -> Automation:
    """Pause (`enabled=False`: it ignores events and ticks) or resume it; raises `NotFound`."""
    store = automation_store(ports)
    current = store.get_automation(automation_id)
    if current.enabled == enabled:
        return current
    return store.put_automation(current.model_copy(
        update={"enabled": enabled, "updated": now or utcnow()}))


def delete_automation(automation_id: str, *, ports: Any) -> None:
    """Delete it with its receipts; raises `NotFound`, and `Conflict` for an automation a
    deployment owns (the next deploy would bring it back: change the deployment instead)."""
    store = automation_store(ports)
    owner = store.get_automation(automation_id).owner
    if owner is not None:
        raise Conflict(
            f"automation {automation_id} belongs to {owner.replace(':', ' ', 1)} (one of its "
            "triggers): remove the trigger and deploy again, or delete the deployment; to stop "
            f"it meanwhile, `sluice automation pause {automation_id}`",
            details={"automation_id": automation_id, "owner": owner})
    store.delete_automation(automation_id)
