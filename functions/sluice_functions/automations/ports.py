"""The storage an automation engine needs: automations, and the receipts that make each
(automation, key) act at most once however often a tick fires or an event is redelivered.

Kept apart from `sluice_functions.ports` (which the event engineer owns); `ControlPlanePorts`
carries one `automations` field of this type, set explicitly by every composition root (the
embedded server: SQLite beside the run store; the Lambda handlers: the DynamoDB table; tests and
fakes: `InMemoryAutomationStore`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sluice.exceptions import ConfigurationError
from sluice.models import Automation


@runtime_checkable
class AutomationStore(Protocol):
    """Automations and action receipts (SQLite tables embedded, items of the single table in
    DynamoDB). Errors are `sluice.exceptions` (`NotFound` for an unknown id)."""

    def put_automation(self, automation: Automation) -> Automation:
        """Store a new automation, or replace the one with its id."""
        ...

    def get_automation(self, automation_id: str) -> Automation:
        """The automation with that id; raises `NotFound`."""
        ...

    def list_automations(self) -> list[Automation]:
        """Every automation, ordered by name then id (automations are few: one page)."""
        ...

    def delete_automation(self, automation_id: str) -> None:
        """Delete it and its receipts; raises `NotFound` for an unknown id."""
        ...

    def claim_receipt(self, automation_id: str, key: str, *, at: datetime) -> bool:
        """Insert the receipt (automation, key) if absent, atomically: True when this call
        inserted it (the caller acts), False when it existed (someone acted already)."""
        ...

    def latest_receipt(self, automation_id: str, key_prefix: str) -> datetime | None:
        """When the most recent receipt whose key starts with `key_prefix` was claimed."""
        ...


def automation_store(ports: Any) -> AutomationStore:
    """The automation store of `ports` (`ControlPlanePorts.automations`, set by the composition
    root). Raises `ConfigurationError` when the ports have none."""
    explicit = getattr(ports, "automations", None)
    if explicit is None:
        raise ConfigurationError(
            "these control-plane ports have no automation store: the composition root must "
            "set ControlPlanePorts.automations (SqliteAutomationStore embedded, "
            "DynamoAutomationStore on AWS, InMemoryAutomationStore in tests)")
    return explicit


def has_automations(ports: Any) -> bool:
    """Whether `ports` carry an automation store (ports of a bare test fake may not)."""
    return getattr(ports, "automations", None) is not None
