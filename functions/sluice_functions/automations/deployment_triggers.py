"""Automations owned by a deployment (`triggers=[...]`): deploying creates or replaces them,
deleting the deployment deletes them.

The n-th trigger is the automation named `<flow>/<deployment>#<n>` whose description starts
with `[deployment <id>]` (the owner mark: a name alone could be a user's own automation). A
trigger redeployed in place keeps its automation id, so its receipts still hold and an event it
acted on is never acted on again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sluice.models import Automation, Deployment, RunDeploymentAction, new_id, utcnow
from sluice.models.deployments import THIS_DEPLOYMENT

from .ports import automation_store


def owner_mark(deployment_id: str) -> str:
    """How an owned automation's description starts."""
    return f"[deployment {deployment_id}]"


def owned_by(automation: Automation, deployment_id: str) -> bool:
    """Whether `automation` belongs to the deployment with that id."""
    return (automation.description or "").startswith(owner_mark(deployment_id))


def sync_triggers(deployment: Deployment, *, ports: Any, now: datetime | None = None
                  ) -> list[Automation]:
    """Make the deployment's owned automations exactly its `triggers`; returns them."""
    now = now or utcnow()
    store = automation_store(ports)
    existing = {a.name: a for a in store.list_automations() if owned_by(a, deployment.id)}
    owned = []
    for number, trigger in enumerate(deployment.triggers, start=1):
        name = f"{deployment.flow_name}/{deployment.name}#{number}"
        previous = existing.pop(name, None)
        text = f"{owner_mark(deployment.id)} {trigger.description or ''}".rstrip()
        actions = [_this(action, deployment) for action in trigger.actions]
        automation = Automation(
            name=name[:200], description=text, enabled=trigger.enabled,
            trigger=trigger.trigger, actions=actions,
            id=previous.id if previous else new_id(),
            created=previous.created if previous else now, updated=now)
        owned.append(store.put_automation(automation))
    for leftover in existing.values():
        store.delete_automation(leftover.id)
    return owned


def delete_triggers(deployment_id: str, *, ports: Any) -> int:
    """Delete the automations the deployment owns; returns how many."""
    store = automation_store(ports)
    owned = [a for a in store.list_automations() if owned_by(a, deployment_id)]
    for automation in owned:
        store.delete_automation(automation.id)
    return len(owned)


def _this(action: Any, deployment: Deployment) -> Any:
    if isinstance(action, RunDeploymentAction) and action.deployment == THIS_DEPLOYMENT:
        return action.model_copy(update={"deployment": deployment.id})
    return action
