"""The storage an automation engine needs: automations, and the receipts that make each
(automation, key) act at most once however often a tick fires or an event is redelivered.

Kept apart from `sluice_functions.ports` (which the event engineer owns); `ControlPlanePorts`
carries one `automations` field of this type. When a composition root leaves it None,
`automation_store(ports)` derives one from the run store (same SQLite file, or same DynamoDB
table), so the embedded server and the Lambda handlers need no extra wiring.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

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
    """The automation store of `ports`: its `automations` field, else one on the run store's
    own database (in memory beside any other store, such as a test's fake)."""
    explicit = getattr(ports, "automations", None)
    if explicit is not None:
        return explicit
    key = id(ports.store)
    cached = _derived.get(key)
    if cached is not None and cached[0]() is ports.store:
        return cached[1]
    store = _derive(ports.store)
    try:
        # Held weakly and forgotten with the run store, so a later store reusing the address
        # never gets this one's automations.
        _derived[key] = (weakref.ref(ports.store), store)
        weakref.finalize(ports.store, _derived.pop, key, None)
    except TypeError:  # a store that cannot be weakly referenced: derive on every call
        pass
    return store


_derived: dict[int, tuple[weakref.ref[Any], AutomationStore]] = {}


def _derive(run_store: Any) -> AutomationStore:
    from ..adapters.sqlite.run_store import SqliteRunStore

    if isinstance(run_store, SqliteRunStore):
        from ..adapters.sqlite.automation_store import SqliteAutomationStore

        return SqliteAutomationStore(run_store._db.path)
    try:
        from ..adapters.aws.dynamo_automations import DynamoAutomationStore
        from ..adapters.aws.dynamo_store import DynamoRunStore
    except ImportError:  # boto3 absent: no DynamoDB store to derive from
        DynamoRunStore = None  # type: ignore[assignment,misc]
    if DynamoRunStore is not None and isinstance(run_store, DynamoRunStore):
        table = run_store._table
        return DynamoAutomationStore(table._client, table._table_name)
    # Another store (a test's fake): automations live in memory beside it, for its lifetime.
    from .memory import InMemoryAutomationStore

    return InMemoryAutomationStore()
