"""The suspend / resume calls of `SluiceClient` (a mixin: the client module stays readable)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def _q(value: str) -> str:
    return quote(value, safe="")


class RunControlMethods:
    """`/flow-runs/{id}/suspend|resume` calls; the host class provides `_call(method, path,
    **kwargs)`."""

    _call: Any

    def suspend_flow_run(self, flow_run_id: str, message: str | None = None) -> Any:
        """Suspend a run (Scheduled, Pending or Running) until `resume_flow_run`; a running
        attempt is stopped by its worker. Suspending a Suspended run changes nothing (the
        answer's `reason` says so). Returns the `SetStateResponse`; raises `Conflict` (with the
        reason) for a finished or cancelling run."""
        from ..models import SetStateResponse

        body = {"message": message} if message else {}
        return SetStateResponse.model_validate(
            self._call("POST", f"/flow-runs/{_q(flow_run_id)}/suspend", json=body))

    def resume_flow_run(self, flow_run_id: str, message: str | None = None) -> Any:
        """Resume a Suspended run: Scheduled now, a new attempt runs the flow from the start.
        Returns the `SetStateResponse`; raises `Conflict` for a run that is not Suspended."""
        from ..models import SetStateResponse

        body = {"message": message} if message else {}
        return SetStateResponse.model_validate(
            self._call("POST", f"/flow-runs/{_q(flow_run_id)}/resume", json=body))
