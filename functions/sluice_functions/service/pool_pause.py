"""Paused pools: a worker's claim of a run of a paused pool is refused, and the run waits.

The refusal is `Throttled` (429) with `details.reason` "pool_paused". As with a full
concurrency slot (`concurrency.requeue_waiting`), a claim that asks for `requeue` gets a fresh
message for the run, due `PAUSED_RETRY_AFTER_SECONDS` later, and `details.requeued`, so the
worker deletes the message it holds and waiting never counts deliveries towards the
dead-letter queue. The run stays Scheduled with the message "waiting: pool P is paused (sluice
pool resume P)", written only when it changes. Runs already claimed go on: only fresh claims
are checked. Checked before any other admission rule, so a paused pool's runs never take a
slot nor get cancelled by a `cancel_new` strategy while it is paused.

Costs one read of the pool per claim, shared with the claim's other rules (the claim's
`request_reads`); the run is the one the claim read.
"""

from __future__ import annotations

from datetime import datetime

from sluice.exceptions import NotFound, SluiceError, Throttled
from sluice.models import ClaimRequest, FlowRun

from ..ports import Metrics, RunQueue, RunStore
from .concurrency import requeue_run
from .queueing import is_held


#: `details.reason` of a claim refused because the run's pool is paused.
POOL_PAUSED_REASON = "pool_paused"
#: A waiting run of a paused pool is offered to its workers again this often: a pause usually
#: lasts minutes, so a slower beat than a concurrency slot's saves requests, and a resumed
#: pool's runs start within this delay.
PAUSED_RETRY_AFTER_SECONDS = 30


def waiting_message(pool: str) -> str:
    """The state message of a run waiting for its paused pool, with the fix."""
    return f"waiting: pool {pool} is paused (sluice pool resume {pool})"


def refuse_claim_if_pool_paused(
    run: FlowRun, request: ClaimRequest, *, store: RunStore, queue: RunQueue | None,
    metrics: Metrics, now: datetime,
) -> None:
    """Raise `Throttled` (reason "pool_paused") when `request` would newly claim `run` (as the
    claim read it) and its pool is paused; otherwise return and let the claim go on. See the
    module docstring."""
    fresh_claim = (run.state.is_scheduled() and run.lease is None and run.pool is not None
                   and not is_held(run)
                   and (request.attempt is None or request.attempt == run.run_count))
    if not fresh_claim:
        return
    assert run.pool is not None
    try:
        paused = store.get_pool(run.pool).paused
    except NotFound:
        return
    if not paused:
        return
    metrics.count("ClaimsRefusedPoolPaused", dimensions={"pool": run.pool})
    run = _note_waiting(run, store=store)
    refusal = Throttled(
        f"pool {run.pool} is paused: flow run {run.id} waits in Scheduled until the pool is "
        f"resumed (sluice pool resume {run.pool})",
        retry_after=PAUSED_RETRY_AFTER_SECONDS,
        details={"reason": POOL_PAUSED_REASON, "pool": run.pool, "flow_run_id": run.id},
    )
    if request.requeue and queue is not None:
        requeue_run(run, refusal, delay_seconds=PAUSED_RETRY_AFTER_SECONDS, store=store,
                    queue=queue, metrics=metrics, now=now)
    raise refusal


def _note_waiting(run: FlowRun, *, store: RunStore) -> FlowRun:
    """The run with its waiting message, written only when it changes (no history entry: the
    run's state is the same). Best effort: a run that changed meanwhile is left as it is."""
    assert run.pool is not None
    message = waiting_message(run.pool)
    if (run.state.message or "").endswith(message):  # a Late run's may start with lateness
        return run
    try:
        return store.update_flow_run(
            run.model_copy(update={"state": run.state.model_copy(update={"message": message})}))
    except SluiceError:
        return run
