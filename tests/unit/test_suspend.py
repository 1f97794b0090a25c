"""Suspend and resume a flow run (issue 17): the rule table's new cells over every pair, the pure
transitions, and the use cases on the SQLite store with events recorded and an automation that
suspends a run when another one fails.

The expected tables are written by hand, not computed from the code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sluice.exceptions import Conflict, StaleLease
from sluice.models import (
    AutomationCreate,
    ClaimRequest,
    DeploymentCreate,
    FlowRun,
    FlowRunCreate,
    HeartbeatRequest,
    Running,
    SetStateRequest,
    State,
    StateType,
    Suspended,
    TransitionStatus,
    new_state,
)
from sluice_functions import orchestration, service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import (
    SqliteEventStore,
    SqliteLogSink,
    SqliteRunQueue,
    SqliteRunStore,
)
from sluice_functions.adapters.sqlite.automation_store import SqliteAutomationStore
from sluice_functions.automations.dispatch import InlineDispatcher
from sluice_functions.automations.manage import create_automation
from sluice_functions.orchestration import Mover, propose_state
from sluice_functions.ports import ControlPlanePorts, FlowRunFilter
from sluice_functions.service.event_log import attach_recorder
from sluice_functions.service.suspension import resume_flow_run, suspend_flow_run

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
ORDER = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING",
         "COMPLETED", "FAILED", "CANCELLED", "CRASHED"]

# Suspend (POST /flow-runs/{id}/suspend) from each state of a queued run. A = accepted (the run
# becomes Suspended), N = accepted as a no-op, R = rejected, X = rejected with ABORT.
# "PAUSED" is a run paused in its process (it keeps its lease); "SUSPENDED" one already suspended.
EXPECTED_SUSPENDS = {
    "SCHEDULED": "A", "Late": "A", "AwaitingRetry": "A", "PENDING": "A", "RUNNING": "A",
    "PAUSED": "R", "SUSPENDED": "N", "CANCELLING": "X",
    "COMPLETED": "X", "FAILED": "X", "CANCELLED": "X", "CRASHED": "X",
}
# The Suspended row of the rule table: the server proposing each state type for a Suspended run
# (its process, holding no lease, can propose nothing).
EXPECTED_FROM_SUSPENDED = {
    "SCHEDULED": "A", "PENDING": "R", "RUNNING": "R", "PAUSED": "R", "CANCELLING": "R",
    "COMPLETED": "R", "FAILED": "A", "CANCELLED": "A", "CRASHED": "A",
}
# Resume from each state: only a Suspended run.
EXPECTED_RESUMES = {
    "SCHEDULED": "R", "PENDING": "R", "RUNNING": "R", "PAUSED": "R", "SUSPENDED": "A",
    "CANCELLING": "X", "COMPLETED": "X", "FAILED": "X", "CANCELLED": "X", "CRASHED": "X",
}


def _run_in(name: str) -> FlowRun:
    """A queued run in the state `name` (a type, a named state, or SUSPENDED). Claimed runs hold
    lease "L"; a Scheduled one waits for its claim and holds none; a Suspended one neither."""
    if name == "SUSPENDED":
        state, leased = Suspended("held"), False
    elif name in ("Late", "AwaitingRetry"):
        state, leased = new_state(StateType.SCHEDULED, name), False
    else:
        state, leased = State(type=StateType(name)), name != "SCHEDULED"
    return FlowRun(
        id="run-1", flow_name="etl", pool="etl", state=state, scheduled_at=NOW,
        run_count=1 if leased else 0, lease="L" if leased else None, version=3,
        slot_scopes=("pool",) if leased else (),
    )


def _verdict(outcome: orchestration.Transition) -> str:
    if outcome.status is TransitionStatus.ACCEPT:
        return "A" if outcome.write else "N"
    return "R" if outcome.status is TransitionStatus.REJECT else "X"


# ---- the rule table ----------------------------------------------------------------------------


@pytest.mark.parametrize("from_name", list(EXPECTED_SUSPENDS))
def test_suspend_from_every_state_is_accepted_or_refused_as_written(from_name):
    # Given a queued run in `from_name`
    run = _run_in(from_name)
    # When an operator suspends it
    outcome = orchestration.suspend(run, now=NOW, message="maintenance")
    # Then the table's verdict holds; a refusal writes nothing and says why
    assert _verdict(outcome) == EXPECTED_SUSPENDS[from_name], outcome.reason
    if _verdict(outcome) == "A":
        assert outcome.run.state.name == "Suspended"
        assert outcome.run.state.type is StateType.PAUSED
        assert outcome.run.state.message == "maintenance"
        assert orchestration.is_suspended(outcome.run) and not outcome.enqueue
    elif _verdict(outcome) == "N":
        assert outcome.run is run and "already suspended" in (outcome.reason or "")
    else:
        assert not outcome.write and outcome.reason


@pytest.mark.parametrize("to_name", ORDER)
def test_every_transition_out_of_suspended_is_accepted_or_refused_as_written(to_name):
    # Given a Suspended run (no attempt holds it)
    run = _run_in("SUSPENDED")
    # When the server proposes `to_name`
    outcome = propose_state(run, State(type=StateType(to_name)), now=NOW, mover=Mover.SERVER)
    # Then the Suspended row holds
    assert _verdict(outcome) == EXPECTED_FROM_SUSPENDED[to_name], outcome.reason
    if not outcome.accepted:
        assert outcome.reason and outcome.run is run


@pytest.mark.parametrize("to_name", ORDER)
@pytest.mark.parametrize("lease", [None, "L"])
def test_nothing_reported_by_an_attempt_changes_a_suspended_run(to_name, lease):
    # Given a run suspended while its attempt (lease L) ran
    run = orchestration.suspend(_run_in("RUNNING"), now=NOW).run
    # When the old attempt (or a caller without a lease) reports anything, Then 409
    with pytest.raises(StaleLease):
        propose_state(run, State(type=StateType(to_name)), now=NOW, lease=lease)


@pytest.mark.parametrize("from_name", list(EXPECTED_RESUMES))
def test_only_a_suspended_run_can_be_resumed(from_name):
    run = _run_in(from_name)
    outcome = orchestration.resume(run, now=NOW)
    assert _verdict(outcome) == EXPECTED_RESUMES[from_name], outcome.reason
    if outcome.accepted:
        assert outcome.run.state.type is StateType.SCHEDULED and outcome.enqueue
        assert outcome.run.scheduled_at == NOW and outcome.run.lease is None


def test_suspending_a_running_run_voids_its_lease_and_frees_its_slot():
    # Given a Running run holding lease L and a pool slot
    run = _run_in("RUNNING").model_copy(update={"heartbeat_at": NOW, "lease_expires_at": NOW})
    # When it is suspended
    suspended = orchestration.suspend(run, now=NOW).run
    # Then no attempt holds it: no lease, no slot, nothing for the monitor to crash; its last
    # attempt's final log lines are still accepted as that attempt's (ended_lease)
    assert suspended.lease is None and suspended.slot_scopes == ()
    assert suspended.heartbeat_at is None and suspended.lease_expires_at is None
    assert suspended.ended_lease == "L"
    assert not orchestration.holds_live_attempt(suspended)


def test_a_suspended_run_cannot_be_claimed_and_is_cancelled_at_once():
    run = orchestration.suspend(_run_in("SCHEDULED"), now=NOW).run
    # A worker holding the run's old queue message cannot claim it
    with pytest.raises(Conflict):
        orchestration.claim(run, worker="w1", new_lease="L2", now=NOW)
    # A cancel needs no worker to confirm it: Cancelled, not Cancelling
    cancelled = orchestration.cancel(run, now=NOW)
    assert cancelled.accepted and cancelled.run.state.type is StateType.CANCELLED


def test_a_flow_process_cannot_suspend_its_own_run_by_proposing_the_state():
    run = _run_in("RUNNING")
    outcome = propose_state(run, Suspended(), now=NOW, lease="L")
    assert outcome.status is TransitionStatus.REJECT and "operator" in (outcome.reason or "")


def test_a_run_without_a_pool_is_not_suspended():
    run = _run_in("RUNNING").model_copy(update={"pool": None})
    outcome = orchestration.suspend(run, now=NOW)
    assert not outcome.accepted and "cancel it instead" in (outcome.reason or "")


# ---- the use cases on the SQLite store ---------------------------------------------------------


@pytest.fixture
def ports(tmp_path):
    ports = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://local/queues/"),
        logs=SqliteLogSink(tmp_path / "logs.db"), metrics=InMemoryMetrics(),
        events=SqliteEventStore(tmp_path / "events.db"),
        automations=SqliteAutomationStore(tmp_path / "automations.db"))
    attach_recorder(ports, InlineDispatcher(ports))
    service.create_deployment(
        DeploymentCreate(flow_name="etl", name="nightly", entrypoint="flows.py:etl", pool="etl",
                         concurrency_limit=5),
        store=ports.store, queue=ports.queue, now=NOW)
    return ports


def _queued(ports, name: str = "one") -> FlowRun:
    deployment_id = service.get_deployment("etl/nightly", store=ports.store).id
    return service.create_flow_run(
        FlowRunCreate(flow_name="etl", deployment_id=deployment_id, name=name),
        store=ports.store, queue=ports.queue, metrics=ports.metrics, now=NOW)


def _running(ports, name: str = "one") -> tuple[FlowRun, str]:
    run = _queued(ports, name)
    lease = service.claim_flow_run(run.id, ClaimRequest(worker="w1"), store=ports.store,
                                   metrics=ports.metrics, now=NOW).lease
    service.set_state(run.id, SetStateRequest(state=Running(), transition_id=f"{name}-run",
                                              lease=lease),
                      store=ports.store, queue=ports.queue, metrics=ports.metrics, now=NOW)
    return ports.store.get_flow_run(run.id), lease


def _event_names(ports, run_id: str) -> list[str]:
    page = ports.events.list_events(resource_id=run_id, since=NOW - timedelta(days=1), limit=100)
    return [event.name for event in page.items]


def test_suspend_then_resume_a_running_run_records_events_and_queues_a_new_attempt(ports):
    # Given a Running run whose worker holds its lease
    run, lease = _running(ports)
    later = NOW + timedelta(seconds=30)
    # When an operator suspends it
    answer = suspend_flow_run(run.id, store=ports.store, queue=ports.queue,
                              metrics=ports.metrics, now=later, message="db maintenance")
    # Then it is Suspended, the event is recorded, and the worker's next beat is refused (409)
    assert answer.status is TransitionStatus.ACCEPT and answer.state.name == "Suspended"
    assert "sluice.flow-run.Suspended" in _event_names(ports, run.id)
    with pytest.raises(StaleLease):
        service.heartbeat(run.id, HeartbeatRequest(lease=lease), store=ports.store, now=later)
    # and so is the flow process's late write
    with pytest.raises(StaleLease):
        service.set_state(run.id, SetStateRequest(state=new_state(StateType.COMPLETED),
                                                  transition_id="late", lease=lease),
                          store=ports.store, queue=ports.queue, metrics=ports.metrics,
                          now=later)
    # When it is resumed
    resumed = resume_flow_run(run.id, store=ports.store, queue=ports.queue,
                              metrics=ports.metrics, now=later + timedelta(seconds=5))
    # Then it is Scheduled now, with a queue message a worker claims as attempt 2
    assert resumed.state.type is StateType.SCHEDULED
    assert "sluice.flow-run.Scheduled" in _event_names(ports, run.id)
    claimed = service.claim_flow_run(run.id, ClaimRequest(worker="w2", attempt=1),
                                     store=ports.store, metrics=ports.metrics,
                                     now=later + timedelta(seconds=6))
    assert claimed.lease != lease and claimed.flow_run.run_count == 2
    names = [s.name for s in service.list_state_history(run.id, store=ports.store)]
    assert names == ["Scheduled", "Pending", "Running", "Suspended", "Scheduled", "Pending"]


def test_a_repeated_suspend_is_a_no_op_and_a_finished_run_is_refused_with_409(ports):
    run = _queued(ports)
    first = suspend_flow_run(run.id, store=ports.store, queue=ports.queue,
                             metrics=ports.metrics, now=NOW)
    version = ports.store.get_flow_run(run.id).version
    again = suspend_flow_run(run.id, store=ports.store, queue=ports.queue,
                             metrics=ports.metrics, now=NOW)
    assert first.state.name == again.state.name == "Suspended"
    assert ports.store.get_flow_run(run.id).version == version  # nothing written
    service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=NOW)
    with pytest.raises(Conflict) as refused:
        suspend_flow_run(run.id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
                         now=NOW)
    assert "terminal" in str(refused.value) and refused.value.details["state"] == "CANCELLED"
    with pytest.raises(Conflict, match="only a suspended run can be resumed"):
        resume_flow_run(run.id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
                        now=NOW)


def test_a_suspended_run_holds_no_concurrency_slot_and_is_left_alone_by_the_monitor(ports):
    from sluice_functions.monitoring.monitor import monitor_runs

    # Given a Running run holding a slot of its deployment's concurrency limit, suspended
    run, _ = _running(ports)
    holders = FlowRunFilter.slot_holders(deployment_id=run.deployment_id)
    assert ports.store.count_flow_runs(holders) == 1
    suspend_flow_run(run.id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
                     now=NOW)
    # Then it holds no slot
    assert ports.store.count_flow_runs(holders) == 0
    # and long after any lease would have expired, the monitor neither crashes, marks late nor
    # enqueues it
    result = monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                          heartbeat_timeout=30, now=NOW + timedelta(hours=2))
    assert (result.crashed, result.late, result.repaired) == (0, 0, 0)
    assert ports.store.get_flow_run(run.id).state.name == "Suspended"


def test_an_automation_suspends_another_run_when_a_run_fails(ports):
    # Given an automation: when a run of etl fails, suspend the run named "downstream"
    target = _queued(ports, "downstream")
    create_automation(AutomationCreate.model_validate({
        "name": "hold downstream",
        "trigger": {"type": "reactive", "match": {"names": ["sluice.flow-run.Failed"]}},
        "actions": [{"type": "suspend-flow-run", "run": target.id,
                     "message": "upstream {{ event.resource.id }} failed"}],
    }), ports=ports, now=NOW - timedelta(days=1))
    # When another run fails
    failing, lease = _running(ports, "upstream")
    service.set_state(failing.id, SetStateRequest(state=new_state(StateType.FAILED),
                                                  transition_id="fail", lease=lease),
                      store=ports.store, queue=ports.queue, metrics=ports.metrics, now=NOW)
    # Then the downstream run is Suspended, saying why
    held = ports.store.get_flow_run(target.id)
    assert held.state.name == "Suspended"
    assert held.state.message == f"upstream {failing.id} failed"
    assert "sluice.flow-run.Suspended" in _event_names(ports, target.id)


def test_the_resume_action_queues_a_suspended_run_and_suspending_an_ended_run_fails(ports):
    from sluice.models import Automation, ResumeRunAction, SuspendRunAction
    from sluice_functions.automations.actions import ActionFailed, ActionRuntime, execute

    automation = Automation(name="ops", trigger={"type": "reactive"},
                            actions=[{"type": "resume-run"}], created=NOW, updated=NOW)
    run_id = _queued(ports).id
    context = {"event": {"resource": {"id": run_id}}}
    run_action = {"automation": automation, "context": context, "ports": ports,
                  "runtime": ActionRuntime(secret=lambda name: None), "now": NOW}
    # Given a run suspended by an automation's action
    execute(SuspendRunAction(), key="k1", **run_action)
    assert ports.store.get_flow_run(run_id).state.message == "suspended by automation 'ops'"
    # When the resume action runs, Then the run is Scheduled again
    assert execute(ResumeRunAction(), key="k2", **run_action) == f"resumed run {run_id}"
    assert ports.store.get_flow_run(run_id).state.type is StateType.SCHEDULED
    # When a suspend action targets a run that ended, Then the action fails, saying why
    service.cancel_flow_run(run_id, store=ports.store, metrics=ports.metrics, now=NOW)
    with pytest.raises(ActionFailed, match="terminal"):
        execute(SuspendRunAction(), key="k3", **run_action)
