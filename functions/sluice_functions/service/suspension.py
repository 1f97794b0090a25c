"""Use cases that suspend a flow run and resume it later (operators, CLI, console, automations).

Both go through `lifecycle.apply_server_transition`, the read-decide-compare-and-set path of
cancel and retry, so they write a history entry, record the `sluice.flow-run.<State>` event and
send the queue message a resumed run needs. A refusal raises `Conflict` (409) with the reason:
an operator asked for something that cannot happen to the run as it is.
"""

from __future__ import annotations

from datetime import datetime

from sluice.exceptions import Conflict
from sluice.models import SetStateResponse, utcnow

from .. import orchestration
from ..orchestration import Transition
from ..ports import Metrics, RunQueue, RunStore
from .lifecycle import apply_server_transition


def suspend_flow_run(
    flow_run_id: str,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime | None = None,
    message: str | None = None,
) -> SetStateResponse:
    """Suspend a run: Scheduled (Late, AwaitingRetry), Pending and Running runs become
    Suspended at once. A Running run's lease is voided: its worker's next heartbeat is refused
    (409, or `stop` in the per-worker answer), so the worker stops the flow process, and the
    process's late writes are refused too. Suspending a Suspended run is a no-op that returns
    its state. Raises `Conflict` for a finished or cancelling run and for a run started without
    a deployment (nothing could resume it), `NotFound` for an unknown run."""
    now = now or utcnow()
    outcome = apply_server_transition(
        flow_run_id, lambda run: orchestration.suspend(run, now=now, message=message),
        store=store, queue=queue, metrics=metrics, now=now,
    )
    return _accepted("suspend", flow_run_id, outcome)


def resume_flow_run(
    flow_run_id: str,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime | None = None,
    message: str | None = None,
) -> SetStateResponse:
    """Resume a Suspended run: Scheduled now and sent to its pool's queue, so a worker claims
    it as a new attempt that runs the flow from the start (tasks with cache policies reuse
    their results). Raises `Conflict` for a run that is not Suspended, `NotFound` for an
    unknown run."""
    now = now or utcnow()
    outcome = apply_server_transition(
        flow_run_id, lambda run: orchestration.resume(run, now=now, message=message),
        store=store, queue=queue, metrics=metrics, now=now,
    )
    return _accepted("resume", flow_run_id, outcome)


def _accepted(action: str, flow_run_id: str, outcome: Transition) -> SetStateResponse:
    if not outcome.accepted:
        state = outcome.state
        raise Conflict(
            f"cannot {action} flow run {flow_run_id}: {outcome.reason}",
            details={"flow_run_id": flow_run_id, "state": state.type.value,
                     "state_name": state.name, "reason": outcome.reason},
        )
    return SetStateResponse(status=outcome.status, state=outcome.state, reason=outcome.reason)
