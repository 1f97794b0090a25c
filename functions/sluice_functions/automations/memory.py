"""`AutomationStore` in memory: for tests and fakes."""

from __future__ import annotations

import threading
from datetime import datetime

from sluice.exceptions import NotFound
from sluice.models import Automation


class InMemoryAutomationStore:
    """Automations and receipts in dicts, behind a lock (the claim is atomic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._automations: dict[str, Automation] = {}
        self.receipts: dict[tuple[str, str], datetime] = {}

    def put_automation(self, automation: Automation) -> Automation:
        with self._lock:
            self._automations[automation.id] = automation.model_copy(deep=True)
        return automation.model_copy(deep=True)

    def get_automation(self, automation_id: str) -> Automation:
        with self._lock:
            found = self._automations.get(automation_id)
        if found is None:
            raise NotFound(f"no automation {automation_id!r}; list them with "
                           "`sluice automation ls`", details={"automation": automation_id})
        return found.model_copy(deep=True)

    def list_automations(self) -> list[Automation]:
        with self._lock:
            items = list(self._automations.values())
        return [a.model_copy(deep=True) for a in sorted(items, key=lambda a: (a.name, a.id))]

    def delete_automation(self, automation_id: str) -> None:
        self.get_automation(automation_id)
        with self._lock:
            self._automations.pop(automation_id, None)
            for key in [k for k in self.receipts if k[0] == automation_id]:
                del self.receipts[key]

    def claim_receipt(self, automation_id: str, key: str, *, at: datetime) -> bool:
        with self._lock:
            if (automation_id, key) in self.receipts:
                return False
            self.receipts[(automation_id, key)] = at
            return True

    def latest_receipt(self, automation_id: str, key_prefix: str) -> datetime | None:
        with self._lock:
            times = [at for (aid, key), at in self.receipts.items()
                     if aid == automation_id and key.startswith(key_prefix)]
        return max(times, default=None)
