"""Every transition of a run's life, and every deployment, pool and worker change the issue
lists, records the documented event (docs/events.md): name, resource, related, payload.

Driven through the use cases on the embedded (SQLite) adapters, the monitor included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sluice.models import (
    ClaimRequest,
    Completed,
    DeploymentCreate,
    DeploymentUpdate,
    Failed,
    FlowRunCreate,
    PoolCreate,
    PoolUpdate,
    Running,
    SetStateRequest,
    SluiceEvent,
)
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import (
    SqliteEventStore,
    SqliteLogSink,
    SqliteRunQueue,
    SqliteRunStore,
)
from sluice_functions.automations import InlineDispatcher, InMemoryAutomationStore
from sluice_functions.monitoring.monitor import monitor_runs
from sluice_functions.ports import ControlPlanePorts
from sluice_functions.service.event_log import attach_recorder
from sluice_functions.service.pools import delete_pool, update_pool

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(seconds=42)


class Published:
    def __init__(self) -> None:
        self.events: list[SluiceEvent] = []

    def publish(self, events) -> None:
        self.events.extend(events)


@pytest.fixture
def ports(tmp_path):
    built = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://localhost/q/"),
        logs=SqliteLogSink(tmp_path / "logs.db"),
        metrics=InMemoryMetrics(),
        events=SqliteEventStore(tmp_path / "events.db"),
        publisher=Published(),
        automations=InMemoryAutomationStore(),
    )
    attach_recorder(built, InlineDispatcher(built))
    service.create_pool(PoolCreate(name="etl"), store=built.store, queue=built.queue, now=NOW)
    yield built
    for adapter in (built.store, built.queue, built.logs, built.events):
        adapter.close()


def deploy(ports, **fields):
    request = DeploymentCreate(flow_name="etl", name="nightly", entrypoint="flows.py:etl",
                               pool="etl", **fields)
    return service.create_deployment(request, store=ports.store, queue=ports.queue, now=NOW)


def queued_run(ports, *, tags=("finance",), **deployment_fields):
    deployment = deploy(ports, **deployment_fields)
    run = service.create_flow_run(
        FlowRunCreate(flow_name="etl", deployment_id=deployment.id, tags=list(tags)),
        store=ports.store, queue=ports.queue, metrics=ports.metrics, now=NOW)
    return run


def claim(ports, run_id, now=NOW):
    return service.claim_flow_run(run_id, ClaimRequest(worker="w1"), store=ports.store,
                                  metrics=ports.metrics, now=now).lease


def set_state(ports, run_id, state, lease, transition_id, now=NOW):
    request = SetStateRequest(state=state, lease=lease, transition_id=transition_id)
    return service.set_state(run_id, request, store=ports.store, queue=ports.queue,
                             metrics=ports.metrics, now=now)


def events_of(ports, resource_id) -> list[SluiceEvent]:
    page = ports.events.list_events(since=NOW - timedelta(days=1), resource_id=resource_id,
                                    limit=100)
    return [e for e in page.items if e.resource.id == resource_id]


def names_of(ports, resource_id) -> list[str]:
    return [e.name for e in events_of(ports, resource_id)]


def related(event: SluiceEvent) -> set[tuple[str, str, str | None]]:
    return {(r.kind, r.id, r.name) for r in event.related}


def test_a_run_that_completes_records_one_event_per_state(ports):
    # Given a queued run of etl/nightly tagged finance
    run = queued_run(ports)
    # When a worker claims it, and it runs and completes 42 s later
    lease = claim(ports, run.id)
    set_state(ports, run.id, Running(), lease, "t1")
    set_state(ports, run.id, Completed(), lease, "t2", now=LATER)
    # Then each state it entered is an event, in order
    assert names_of(ports, run.id) == [
        "sluice.flow-run.Scheduled", "sluice.flow-run.Pending", "sluice.flow-run.Running",
        "sluice.flow-run.Completed"]
    done = events_of(ports, run.id)[-1]
    assert (done.resource.kind, done.resource.id, done.resource.name) == (
        "flow-run", run.id, run.name)
    assert related(done) == {("flow", "etl", None), ("deployment", run.deployment_id,
                             "etl/nightly"), ("pool", "etl", None), ("worker", "w1", None),
                             ("tag", "finance", None)}
    assert done.payload == {
        "state_type": "COMPLETED", "state_name": "Completed", "message": None, "attempt": 1,
        "scheduled_at": run.scheduled_at.isoformat(), "previous_state_name": "Running",
        "duration_seconds": 42.0}
    # And each was published as well as stored
    assert [e.name for e in ports.publisher.events if e.resource.id == run.id] == \
        names_of(ports, run.id)


def test_a_failure_without_retries_records_failed_with_its_message(ports):
    run = queued_run(ports)
    lease = claim(ports, run.id)
    set_state(ports, run.id, Running(), lease, "t1")
    set_state(ports, run.id, Failed("boom"), lease, "t2", now=LATER)
    failed = events_of(ports, run.id)[-1]
    assert failed.name == "sluice.flow-run.Failed"
    assert (failed.payload["state_type"], failed.payload["message"]) == ("FAILED", "boom")
    assert failed.payload["duration_seconds"] == 42.0


def test_a_failure_with_retries_left_records_awaiting_retry(ports):
    run = queued_run(ports, retries=1)
    lease = claim(ports, run.id)
    set_state(ports, run.id, Running(), lease, "t1")
    set_state(ports, run.id, Failed("boom"), lease, "t2")
    retry = events_of(ports, run.id)[-1]
    assert retry.name == "sluice.flow-run.AwaitingRetry"
    assert retry.payload["state_type"] == "SCHEDULED"
    assert retry.payload["previous_state_name"] == "Running"
    assert "duration_seconds" not in retry.payload


def test_a_run_whose_worker_went_silent_is_crashed_by_the_monitor(ports):
    run = queued_run(ports)
    lease = claim(ports, run.id)
    set_state(ports, run.id, Running(), lease, "t1")
    # When the monitor ticks long after the last heartbeat
    monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                 heartbeat_timeout=60, now=NOW + timedelta(hours=1))
    crashed = events_of(ports, run.id)[-1]
    assert crashed.name == "sluice.flow-run.Crashed"
    assert crashed.payload["state_type"] == "CRASHED" and crashed.payload["message"]


def test_a_cancelled_run_records_cancelled(ports):
    run = queued_run(ports)
    service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=LATER)
    assert names_of(ports, run.id)[-1] == "sluice.flow-run.Cancelled"


def test_a_run_nobody_claims_is_marked_late_by_the_monitor(ports):
    run = queued_run(ports)
    monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                 heartbeat_timeout=60, now=NOW + timedelta(minutes=5))
    late = events_of(ports, run.id)[-1]
    assert late.name == "sluice.flow-run.Late"
    assert (late.payload["state_type"], late.payload["previous_state_name"]) == (
        "SCHEDULED", "Scheduled")


def test_a_retried_transition_records_its_event_once(ports):
    run = queued_run(ports)
    lease = claim(ports, run.id)
    set_state(ports, run.id, Running(), lease, "t1")
    set_state(ports, run.id, Running(), lease, "t1")  # the same request, delivered again
    assert names_of(ports, run.id).count("sluice.flow-run.Running") == 1


def test_deployment_changes_are_events(ports):
    deployment = deploy(ports)
    deploy(ports, description="again")  # the same name: an update
    service.update_deployment(deployment.id, DeploymentUpdate(paused=True), store=ports.store,
                              now=LATER)
    service.update_deployment(deployment.id, DeploymentUpdate(paused=False), store=ports.store,
                              now=LATER)
    service.delete_deployment(deployment.id, store=ports.store, now=LATER)
    assert names_of(ports, deployment.id) == [
        "sluice.deployment.created", "sluice.deployment.updated", "sluice.deployment.paused",
        "sluice.deployment.resumed", "sluice.deployment.deleted"]
    assert events_of(ports, deployment.id)[0].resource.name == "etl/nightly"


def test_pool_changes_are_events(ports):
    service.create_pool(PoolCreate(name="gpu"), store=ports.store, queue=ports.queue, now=NOW)
    service.create_pool(PoolCreate(name="gpu"), store=ports.store, queue=ports.queue, now=NOW)
    for paused in (True, False):
        update_pool("gpu", PoolUpdate(paused=paused), store=ports.store,
                            queue=ports.queue, now=LATER)
    delete_pool("gpu", store=ports.store, queue=ports.queue, metrics=ports.metrics,
                        now=LATER)
    assert names_of(ports, "gpu") == ["sluice.pool.created", "sluice.pool.paused",
                                      "sluice.pool.resumed", "sluice.pool.deleted"]


def test_a_worker_gone_silent_is_reported_offline_once_per_spell(ports):
    # Given a worker that claimed a run and then went silent
    run = queued_run(ports)
    claim(ports, run.id)
    # When the monitor ticks twice during its silence (past the online window)
    from sluice_functions.service.pools import WORKER_ONLINE_WITHIN
    for minutes in (1, 2):
        monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                     heartbeat_timeout=3600,
                     now=NOW + WORKER_ONLINE_WITHIN + timedelta(minutes=minutes))
    # Then it went offline once, in its pool
    offline = events_of(ports, "w1")
    assert [e.name for e in offline] == ["sluice.worker.offline"]
    assert related(offline[0]) == {("pool", "etl", None)}


def test_a_growing_dead_letter_queue_is_reported_with_its_depth(ports):
    tick = dict(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                heartbeat_timeout=3600)
    monitor_runs(**tick, now=NOW)  # the baseline: an empty dead-letter queue
    # When a message is received more often than the pool allows
    ports.queue.send("etl", "poison")
    for _ in range(6):
        for message in ports.queue.receive("etl", visibility_timeout=0):
            pass
    monitor_runs(**tick, now=LATER)
    grew = [e for e in events_of(ports, "etl") if e.name == "sluice.pool.dead-letter"]
    assert [e.payload for e in grew] == [{"depth": 1, "previous_depth": 0}]


class BrokenPublisher:
    def publish(self, events) -> None:
        raise RuntimeError("EventBridge is down")


def test_a_publish_failure_is_counted_and_never_fails_the_transition(ports):
    # Given a control plane whose EventBridge puts fail
    broken = ControlPlanePorts(store=ports.store, queue=ports.queue, logs=ports.logs,
                               metrics=ports.metrics, events=ports.events,
                               publisher=BrokenPublisher(), automations=ports.automations)
    attach_recorder(broken, InlineDispatcher(broken))
    run = queued_run(broken)
    # When the run is claimed and runs
    lease = claim(broken, run.id)
    answer = set_state(broken, run.id, Running(), lease, "t1")
    # Then the transitions went through, the events are stored, and the failures counted
    assert answer.state.name == "Running"
    assert names_of(broken, run.id)[-1] == "sluice.flow-run.Running"
    # (deployment created, then the run's Scheduled, Pending and Running)
    assert broken.metrics.counter("EventPublishErrors") == 4
