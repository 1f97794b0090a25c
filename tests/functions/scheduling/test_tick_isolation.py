"""One bad record never stops a tick: the scheduler and the monitor handle each run, deployment,
schedule and backfill on its own; a record whose handling raises anything is logged with its
id, counted in `TickRecordErrors` and in the tick's `failed`, and skipped (SQLite, hand-moved
clock)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from conftest import T0, UTC, Plane
from sluice.models import (
    MAX_RETRY_DELAY_SECONDS,
    DeploymentRunRequest,
    FlowRun,
    Running,
    Schedule,
    StateType,
    TransitionStatus,
)
from sluice_functions import service
from sluice_functions.isolation import TICK_RECORD_ERRORS
from sluice_functions.monitoring import monitor_runs
from sluice_functions.scheduling import schedule_deployments
from sluice_functions.service import enqueue_due_runs

TIMEOUT = 30
#: Past the lease and its margin: a silent attempt is crashed at this age.
DEAD = 60


class FailingStore:
    """The plane's store, raising `RuntimeError` from `method` when `when(*args)` is true: a
    record whose handling fails in a way no one planned for."""

    def __init__(self, store: Any, method: str, when) -> None:
        self._store, self._method, self._when = store, method, when
        self.raised = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name != self._method:
            return attribute

        def maybe_failing(*args: Any, **kwargs: Any) -> Any:
            if self._when(*args, **kwargs):
                self.raised += 1
                raise RuntimeError("boom: an unexpected failure of this record")
            return attribute(*args, **kwargs)

        return maybe_failing


def running(plane: Plane, name: str, **deployment_fields) -> tuple[FlowRun, str]:
    """A run of deployment etl/<name>, claimed and Running at T0, with its lease."""
    plane.clock.now = T0
    deployment = plane.deploy(name=name, **deployment_fields)
    run = service.run_deployment(deployment.id, DeploymentRunRequest(), **plane.ports,
                                 now=plane.clock())
    lease = plane.claim(run.id, attempt=0).lease
    assert plane.report(run.id, Running(), lease, f"start-{name}").status is TransitionStatus.ACCEPT
    return run, lease


def with_stored(plane: Plane, run_id: str, **fields: Any) -> None:
    """Overwrite fields of the stored run as legacy data would hold them (no validation)."""
    stored = plane.store.get_flow_run(run_id)
    plane.store.update_flow_run(stored.model_copy(update=fields))


def monitor(plane: Plane, store: Any = None, seconds_after_t0: float = DEAD):
    plane.clock.now = T0 + timedelta(seconds=seconds_after_t0)
    return monitor_runs(store=store or plane.store, queue=plane.queue, metrics=plane.metrics,
                        now=plane.clock(), heartbeat_timeout=TIMEOUT)


class TestMonitor:
    def test_a_run_with_an_extreme_stored_retry_delay_is_retried_without_overflow(self, plane):
        # Given two silent runs, one storing a retry delay from before the bounds (1e12 s
        # overflowed `now + timedelta(...)` and aborted every tick) and one storing 1e308,
        extreme, _ = running(plane, "extreme", retries=2)
        huge, _ = running(plane, "huge", retries=2)
        other, _ = running(plane, "other")
        with_stored(plane, extreme.id, retry_delay_seconds=1e12)
        with_stored(plane, huge.id, retry_delay_seconds=1e308)
        # When the monitor ticks past their heartbeat timeout,
        result = monitor(plane)
        # Then both await their retry at most MAX_RETRY_DELAY_SECONDS from now, and the other
        # run of the same tick is crashed as usual.
        assert (result.retried, result.crashed, result.failed) == (2, 1, 0)
        for run_id in (extreme.id, huge.id):
            stored = plane.store.get_flow_run(run_id)
            assert stored.state.name == "AwaitingRetry"
            assert stored.scheduled_at == plane.clock() + timedelta(seconds=MAX_RETRY_DELAY_SECONDS)
        assert plane.store.get_flow_run(other.id).state.type is StateType.CRASHED
        assert plane.metrics.counter(TICK_RECORD_ERRORS) == 0

    def test_a_run_whose_handling_raises_is_logged_counted_and_skipped(self, plane, caplog):
        # Given two silent runs, and a store that fails unexpectedly for one of them,
        bad, _ = running(plane, "bad")
        good, _ = running(plane, "good")
        store = FailingStore(plane.store, "set_flow_run_state",
                             lambda run, *_: run.id == bad.id)
        # When the monitor ticks,
        with caplog.at_level(logging.ERROR):
            result = monitor(plane, store)
        # Then the good run is crashed, the bad one is skipped, logged with its id and counted,
        assert store.raised == 1
        assert (result.crashed, result.failed) == (1, 1)
        assert plane.store.get_flow_run(good.id).state.type is StateType.CRASHED
        assert plane.store.get_flow_run(bad.id).state.type is StateType.RUNNING
        assert plane.metrics.counter(TICK_RECORD_ERRORS, {"tick": "monitor"}) == 1
        assert any(bad.id in record.getMessage() and record.exc_info
                   for record in caplog.records)
        # and the next tick (the store healed) crashes it too.
        assert monitor(plane, seconds_after_t0=DEAD + 60).crashed == 1

    def test_a_late_run_whose_handling_raises_does_not_stop_the_others(self, plane):
        plane.clock.now = T0
        runs = [service.run_deployment(plane.deploy(name=f"d{i}").id, DeploymentRunRequest(),
                                       **plane.ports, now=T0) for i in range(3)]
        bad = runs[1]
        store = FailingStore(plane.store, "set_flow_run_state", lambda run, *_: run.id == bad.id)
        result = monitor(plane, store, seconds_after_t0=20)
        assert (result.late, result.failed) == (2, 1)
        assert [plane.store.get_flow_run(r.id).state.name for r in runs] == [
            "Late", "Scheduled", "Late"]

    def test_the_repair_pass_skips_a_run_whose_handling_raises(self, plane):
        plane.clock.now = T0
        runs = [service.run_deployment(plane.deploy(name=f"d{i}").id, DeploymentRunRequest(),
                                       **plane.ports, now=T0) for i in range(3)]
        bad = runs[0]
        store = FailingStore(plane.store, "update_flow_run", lambda run, *_: run.id == bad.id)
        plane.queue.sent.clear()  # the messages were lost
        result = monitor(plane, store, seconds_after_t0=21 * 60)
        assert (result.repaired, result.failed) == (2, 1)
        assert {run_id for run_id, _, _ in plane.queue.sent} == {r.id for r in runs[1:]}
        assert plane.metrics.counter(TICK_RECORD_ERRORS, {"tick": "monitor"}) == 1


class TestScheduler:
    def test_a_deployment_whose_handling_raises_does_not_stop_the_others(self, plane, caplog):
        # Given two scheduled deployments, and a store that fails unexpectedly for one's runs,
        plane.clock.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        bad = plane.deploy(name="bad", schedules=[Schedule(cron="*/10 * * * *")])
        good = plane.deploy(name="good", schedules=[Schedule(cron="*/10 * * * *")])
        store = FailingStore(plane.store, "create_flow_run",
                             lambda run, *_: run.deployment_id == bad.id)
        # When the scheduler ticks,
        with caplog.at_level(logging.ERROR):
            result = schedule_deployments(store=store, queue=plane.queue, metrics=plane.metrics,
                                          now=plane.clock() + timedelta(seconds=30))
        # Then the good deployment has its runs, and the bad one is logged, counted, skipped.
        assert len(plane.runs(good)) == 6 and plane.runs(bad) == []
        assert result.created == 6 and result.failed == 1
        assert plane.metrics.counter(TICK_RECORD_ERRORS, {"tick": "scheduler"}) == 1
        assert any(bad.id in record.getMessage() for record in caplog.records)

    def test_a_stored_schedule_that_overflows_or_no_longer_computes_is_skipped(self, plane):
        # Given deployments stored before today's rules: an interval of 1e12 s anchored at the
        # calendar's end, an unknown time zone, a sub-microsecond interval, a lateness window
        # of 1e300 s (past timedelta's range); and a sound one,
        plane.clock.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        broken = {
            "overflow": Schedule(interval_seconds=1e12,
                                 anchor=datetime(9999, 12, 31, 23, 0, tzinfo=UTC)),
            "zone": Schedule(cron="0 * * * *", timezone="Not/AZone"),
            "tiny": Schedule(interval_seconds=1e-9),
            "lateness": Schedule(cron="*/10 * * * *"),
        }
        for name, schedule in broken.items():
            deployment = plane.deploy(name=name)
            plane.store.update_deployment(deployment.model_copy(update={
                "schedules": [schedule], "max_lateness_seconds": 1e300, "catchup": True}))
        good = plane.deploy(name="good", schedules=[Schedule(cron="*/10 * * * *")])
        # When the scheduler ticks, Then nothing escapes, and the sound deployment is scheduled.
        result = schedule_deployments(**plane.ports, now=plane.clock() + timedelta(seconds=30))
        assert len(plane.runs(good)) == 6
        assert result.failed == plane.metrics.counter(TICK_RECORD_ERRORS) >= 2

    def test_enqueue_due_runs_counts_failures_for_the_tick_that_called_it(self, plane):
        plane.clock.now = T0
        runs = [service.run_deployment(plane.deploy(name=f"d{i}").id, DeploymentRunRequest(),
                                       **plane.ports, now=T0) for i in range(2)]
        for run in runs:
            with_stored(plane, run.id, enqueued_at=None)
        store = FailingStore(plane.store, "update_flow_run",
                             lambda run, *_: run.id == runs[0].id)
        sent = enqueue_due_runs(store=store, queue=plane.queue, metrics=plane.metrics, now=T0)
        assert sent == 1
        assert plane.metrics.counter(TICK_RECORD_ERRORS, {"tick": "scheduler"}) == 1
