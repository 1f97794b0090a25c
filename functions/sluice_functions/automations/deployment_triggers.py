"""Automations owned by a deployment (`triggers=[...]`): deploying creates or replaces them,
deleting the deployment deletes them.

The n-th trigger is the automation named `<flow>/<deployment>#<n>` whose `owner` is
`deployment:<id>` (a name alone could be a user's own automation). A trigger redeployed in place
keeps its automation id, so its receipts still hold and an event it acted on is never acted on
again. Automations stored by the previous release carried the owner as a `[deployment <id>]`
mark at the start of their description; they are still recognised, and lose the mark when the
deployment is next deployed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sluice.models import Automation, Deployment, RunDeploymentAction, new_id, utcnow
from sluice.models.deployments import THIS_DEPLOYMENT

from .ports import automation_store, has_automations


def deployment_owner(deployment_id: str) -> str:
    """The `owner` of the automations a deployment's triggers make."""
    return f"deployment:{deployment_id}"


def _legacy_mark(deployment_id: str) -> str:
    return f"[deployment {deployment_id}]"


def owned_by(automation: Automation, deployment_id: str) -> bool:
    """Whether `automation` belongs to the deployment with that id."""
    if automation.owner is not None:
        return automation.owner == deployment_owner(deployment_id)
    return (automation.description or "").startswith(_legacy_mark(deployment_id))


def sync_triggers(deployment: Deployment, *, ports: Any, now: datetime | None = None
                  ) -> list[Automation]:
    """Make the deployment's owned automations exactly its `triggers`; returns them. Ports
    without an automation store (a bare test fake) own none: nothing to do without triggers."""
    if not has_automations(ports) and not deployment.triggers:
        return []
    now = now or utcnow()
    store = automation_store(ports)
    existing = {a.name: a for a in store.list_automations() if owned_by(a, deployment.id)}
    owned = []
    for number, trigger in enumerate(deployment.triggers, start=1):
        name = f"{deployment.flow_name}/{deployment.name}#{number}"
        previous = existing.pop(name, None)
        actions = [_this(action, deployment) for action in trigger.actions]
        automation = Automation(
            name=name[:200], description=trigger.description, enabled=trigger.enabled,
            owner=deployment_owner(deployment.id),
            trigger=trigger.trigger, actions=actions,
            id=previous.id if previous else new_id(),
            created=previous.created if previous else now, updated=now)
        owned.append(store.put_automation(automation))
    for leftover in existing.values():
        store.delete_automation(leftover.id)
    return owned


def delete_triggers(deployment_id: str, *, ports: Any) -> int:
    """Delete the automations the deployment owns; returns how many."""
    if not has_automations(ports):
        return 0
    store = automation_store(ports)
    owned = [a for a in store.list_automations() if owned_by(a, deployment_id)]
    for automation in owned:
        store.delete_automation(automation.id)
    return len(owned)


def _this(action: Any, deployment: Deployment) -> Any:
    if isinstance(action, RunDeploymentAction) and action.deployment == THIS_DEPLOYMENT:
        return action.model_copy(update={"deployment": deployment.id})
    return action
