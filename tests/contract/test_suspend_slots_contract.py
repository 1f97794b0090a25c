"""Every run store frees a suspended run's concurrency slot (issue 17): a Suspended run is
PAUSED, an active state type, but suspending clears the slot scopes it was admitted under, and
the exact slot count must follow (DynamoDB: its slot-holder item is found stale and removed)."""

from __future__ import annotations

from datetime import datetime, timezone

from contract_support import flow_run, state

from sluice.models import StateType
from sluice_functions import orchestration
from sluice_functions.ports import FlowRunFilter

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def test_a_suspended_run_holds_no_slot_until_it_is_claimed_again(run_store):
    # Given a Running run admitted under its deployment's and its pool's limits
    run = run_store.create_flow_run(flow_run(pool="default", deployment_id="dep-1"))
    run = run_store.set_flow_run_state(run.model_copy(update={
        "state": state(StateType.RUNNING), "lease": "L", "run_count": 1,
        "slot_scopes": ("deployment", "pool")}), "t1")
    by_deployment = FlowRunFilter.slot_holders(deployment_id="dep-1")
    by_pool = FlowRunFilter.slot_holders(pool="default")
    assert (run_store.count_flow_runs(by_deployment), run_store.count_flow_runs(by_pool)) == (1, 1)
    # When it is suspended
    suspended = orchestration.suspend(run, now=NOW).run
    run = run_store.set_flow_run_state(suspended, "t2")
    # Then neither limit counts it (twice: a stale holder, once removed, stays removed)
    for _ in range(2):
        assert (run_store.count_flow_runs(by_deployment),
                run_store.count_flow_runs(by_pool)) == (0, 0)
    # When it is resumed and claimed again under the pool's limit, Then it holds that slot
    run = run_store.set_flow_run_state(orchestration.resume(run, now=NOW).run, "t3")
    assert run_store.count_flow_runs(by_pool) == 0
    claimed = orchestration.claim(run, worker="w1", new_lease="L2", now=NOW).run
    run_store.set_flow_run_state(claimed.model_copy(update={"slot_scopes": ("pool",)}), "t4")
    assert (run_store.count_flow_runs(by_deployment), run_store.count_flow_runs(by_pool)) == (0, 1)
