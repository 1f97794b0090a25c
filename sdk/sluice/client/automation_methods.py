"""The automation calls of `SluiceClient` (a mixin: the client module stays readable)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def _q(value: str) -> str:
    return quote(value, safe="")


class AutomationMethods:
    """`/automations` calls; the host class provides `_call(method, path, **kwargs)`."""

    _call: Any

    def create_automation(self, automation: Any) -> Any:
        """Create an automation from an `AutomationCreate` (or a dict of one); returns the
        stored `Automation`. Raises `ValidationError` naming the field at fault."""
        from ..models import Automation, AutomationCreate

        request = AutomationCreate.model_validate(
            automation if isinstance(automation, dict) else automation.model_dump())
        return Automation.model_validate(self._call(
            "POST", "/automations", json=request.model_dump(mode="json", exclude_none=True)))

    def list_automations(self) -> list[Any]:
        """Every automation, by name."""
        from ..models import Automation

        return [Automation.model_validate(a) for a in self._call("GET", "/automations")["items"]]

    def get_automation(self, automation_id: str) -> Any:
        """One automation. Raises `NotFound`."""
        from ..models import Automation

        return Automation.model_validate(self._call("GET", f"/automations/{_q(automation_id)}"))

    def set_automation_enabled(self, automation_id: str, enabled: bool) -> Any:
        """Pause (`enabled=False`) or resume an automation. Raises `NotFound`."""
        from ..models import Automation

        return Automation.model_validate(self._call(
            "PATCH", f"/automations/{_q(automation_id)}", json={"enabled": enabled}))

    def delete_automation(self, automation_id: str) -> None:
        """Delete an automation. Raises `NotFound`."""
        self._call("DELETE", f"/automations/{_q(automation_id)}")
