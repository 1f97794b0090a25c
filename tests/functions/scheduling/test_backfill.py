"""Backfills: the runs the schedules would have made, never doubled, fed N at a time."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import UTC, Plane
from sluice.exceptions import ValidationError
from sluice.models import Completed, Failed, Running, Schedule, State, StateType
from sluice_functions.monitoring import monitor_runs
from sluice_functions.scheduling import (
    backfill_deployment,
    schedule_deployments,
    schedule_key,
    slot_run_id,
)

HOURLY = Schedule(cron="0 * * * *")
BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, 1, hour, minute, tzinfo=UTC)


def backfill(plane: Plane, ref: str, start: datetime, end: datetime, **options):
    return backfill_deployment(ref, start, end, **plane.ports, now=plane.clock(), **options)


def finish(plane: Plane, run_id: str, state: State, worker: str = "w1") -> None:
    run = plane.store.get_flow_run(run_id)
    lease = plane.claim(run_id, worker=worker, attempt=run.run_count).lease
    plane.report(run_id, Running(), lease, f"run-{run.run_count}")
    plane.report(run_id, state, lease, f"end-{run.run_count}")


def started(plane: Plane, among: list[str]) -> set[str]:
    """Those of `among` that got a queue message (the scheduler's own runs aside)."""
    return {run_id for run_id, _, _ in plane.queue.sent} & set(among)


def test_a_backfill_over_both_dst_changes_never_doubles_a_scheduled_run(plane):
    plane.clock.now = datetime(2024, 1, 1, tzinfo=UTC)
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    dep = plane.deploy(schedules=[schedule])
    # The scheduler ran for a few days around the spring change and made those runs itself.
    for day in (29, 30, 31):
        schedule_deployments(**plane.ports, now=datetime(2024, 3, day, 0, 0, tzinfo=UTC))
    scheduled = {run.id for run in plane.runs(dep)}
    assert len(scheduled) >= 3
    plane.clock.now = datetime(2024, 11, 1, tzinfo=UTC)
    result = backfill(plane, dep.id, datetime(2024, 3, 25, tzinfo=UTC),
                      datetime(2024, 10, 30, tzinfo=UTC))
    runs = plane.runs(dep)
    per_local_day = Counter(run.scheduled_at.astimezone(BERLIN).date() for run in runs)
    assert set(per_local_day.values()) == {1}  # one run per day, DST days included
    assert result.slots == (datetime(2024, 10, 30) - datetime(2024, 3, 25)).days == 219
    assert result.existing == len(scheduled & {r.id for r in runs})
    assert result.created == 219 - result.existing
    by_day = {run.scheduled_at.astimezone(BERLIN).strftime("%m-%d"): run for run in runs}
    assert by_day["03-31"].scheduled_at.astimezone(BERLIN).strftime("%H:%M%z") == "03:00+0200"
    assert by_day["10-27"].scheduled_at.astimezone(BERLIN).strftime("%H:%M%z") == "02:30+0200"
    key = schedule_key(schedule)
    assert all(run.id == slot_run_id(dep.id, key, run.scheduled_at) for run in runs)


def hourly_history(plane: Plane, **deployment_fields):
    plane.clock.now = at(0)
    dep = plane.deploy(schedules=[HOURLY], **deployment_fields)
    plane.clock.now = at(6, 30)
    return dep


class TestFeeding:
    def test_at_most_max_active_run_at_a_time_and_later_ticks_feed_the_rest(self, plane):
        dep = hourly_history(plane)
        result = backfill(plane, dep.id, at(0), at(6), max_active=2)
        assert (result.created, result.released) == (6, 2)
        ids = [slot_run_id(dep.id, schedule_key(HOURLY), at(h)) for h in range(6)]
        assert started(plane, ids) == set(ids[:2])  # oldest first
        held = plane.store.get_flow_run(ids[2])
        assert held.state.type is StateType.SCHEDULED and held.enqueued_at is None
        assert held.state.details["held_by"] == "backfill"
        assert f"backfill:{result.backfill_id}" in held.tags

        plane.clock.now = at(6, 31)
        schedule_deployments(**plane.ports, now=plane.clock())
        assert started(plane, ids) == set(ids[:2])  # nothing finished: nothing fed
        finish(plane, ids[0], Completed())
        schedule_deployments(**plane.ports, now=plane.clock())
        assert started(plane, ids) == set(ids[:3])
        for run_id in ids[1:]:
            finish(plane, run_id, Completed())
            schedule_deployments(**plane.ports, now=plane.clock())
        assert started(plane, ids) == set(ids)
        assert {plane.store.get_flow_run(i).state.type for i in ids} == {StateType.COMPLETED}

    def test_feeding_respects_the_deployments_concurrency_limit(self, plane):
        dep = hourly_history(plane, concurrency_limit=1)
        assert backfill(plane, dep.id, at(0), at(6), max_active=4).released == 1

    def test_without_max_active_every_run_starts_at_once(self, plane):
        dep = hourly_history(plane)
        assert backfill(plane, dep.id, at(0), at(6)).released == 6

    def test_backfill_runs_are_not_called_late(self, plane):
        dep = hourly_history(plane)
        backfill(plane, dep.id, at(0), at(6), max_active=2)
        result = monitor_runs(**plane.ports, now=at(6, 45), heartbeat_timeout=30)
        assert result.late == 0


class TestReprocess:
    def scenario(self, plane: Plane):
        """Runs of 00:00 (Failed), 01:00 (Completed), 02:00 (Crashed... by the monitor)."""
        dep = hourly_history(plane)
        backfill(plane, dep.id, at(0), at(3))
        ids = [slot_run_id(dep.id, schedule_key(HOURLY), at(h)) for h in range(3)]
        finish(plane, ids[0], Failed("boom"))
        finish(plane, ids[1], Completed())
        run = plane.store.get_flow_run(ids[2])
        plane.claim(ids[2], attempt=run.run_count)
        plane.clock.now = at(6, 40)
        monitor_runs(**plane.ports, now=plane.clock(), heartbeat_timeout=30)
        assert plane.store.get_flow_run(ids[2]).state.type is StateType.CRASHED
        plane.queue.sent.clear()
        return dep, ids

    def test_none_leaves_every_existing_run_alone(self, plane):
        dep, ids = self.scenario(plane)
        result = backfill(plane, dep.id, at(0), at(4))
        assert (result.created, result.existing, result.reprocessed) == (1, 3, 0)

    def test_failed_retries_failed_and_crashed_runs_as_new_attempts(self, plane):
        dep, ids = self.scenario(plane)
        result = backfill(plane, dep.id, at(0), at(3), reprocess="failed", max_active=1)
        assert (result.reprocessed, result.existing, result.released) == (2, 1, 1)
        retried = [plane.store.get_flow_run(i) for i in (ids[0], ids[2])]
        assert [r.state.name for r in retried] == ["AwaitingRetry", "AwaitingRetry"]
        (first,) = started(plane, ids)  # the other waits for its turn
        assert plane.queue.sends_of(first) == [(1, 0)]  # attempt 2 of the same run
        finish(plane, first, Completed())
        schedule_deployments(**plane.ports, now=plane.clock())
        assert started(plane, ids) == {ids[0], ids[2]}

    def test_all_also_reruns_completed_runs_as_new_runs(self, plane):
        dep, ids = self.scenario(plane)
        result = backfill(plane, dep.id, at(0), at(3), reprocess="all")
        assert (result.reprocessed, result.existing) == (3, 0)
        reruns = [run for run in plane.runs(dep) if f"rerun-of:{ids[1]}" in run.tags]
        assert len(reruns) == 1 and reruns[0].scheduled_at == at(1)
        assert plane.store.get_flow_run(ids[1]).state.type is StateType.COMPLETED

    def test_the_same_backfill_id_makes_a_repeated_call_a_no_op(self, plane):
        dep = hourly_history(plane)
        first = backfill(plane, dep.id, at(0), at(3), reprocess="all", backfill_id="bf-1")
        again = backfill(plane, dep.id, at(0), at(3), reprocess="all", backfill_id="bf-1")
        assert (first.created, again.created, again.reprocessed) == (3, 0, 0)
        assert len(plane.runs(dep)) == 3


class TestRefusals:
    @pytest.mark.parametrize("start, end, options, says", [
        (datetime(2024, 5, 1), at(3), {}, "start 2024-05-01T00:00:00 has no time zone"),
        (at(3), at(3), {}, "is not after start"),
        (at(0), at(7), {}, "is in the future"),
        (at(0), at(3), {"reprocess": "some"}, "reprocess must be one of"),
        (at(0), at(3), {"max_active": 0}, "max_active must be at least 1"),
        (at(0), at(3), {"backfill_id": "a b"}, "backfill_id 'a b'"),
        (datetime(2023, 1, 1, tzinfo=UTC), at(3), {}, "more than 10000 scheduled times"),
    ])
    def test_a_bad_request_is_refused_and_writes_nothing(self, plane, start, end, options, says):
        dep = hourly_history(plane)
        with pytest.raises(ValidationError, match=says):
            backfill(plane, dep.id, start, end, **options)
        assert plane.runs(dep) == []

    def test_a_deployment_without_an_active_schedule_cannot_be_backfilled(self, plane):
        plane.clock.now = at(6)
        dep = plane.deploy()
        with pytest.raises(ValidationError, match="has no active schedule"):
            backfill(plane, "etl/nightly", at(0), at(3))
        assert dep.schedules == []

    def test_parameters_the_schema_refuses_are_refused_before_any_write(self, plane):
        plane.clock.now = at(0)
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
        bad = Schedule(id="bad", cron="30 * * * *", parameters={"n": "x"})
        with pytest.raises(ValidationError, match=r"schedules\[1\]\.parameters\.n"):
            plane.deploy(parameter_schema=schema, schedules=[HOURLY, bad])
        # ... but one stored before that check existed is still refused by the backfill
        dep = plane.deploy(parameter_schema=schema, schedules=[HOURLY])
        dep = plane.store.update_deployment(dep.model_copy(update={"schedules": [HOURLY, bad]}))
        plane.clock.now = at(6, 30)
        with pytest.raises(ValidationError, match="parameters.n"):
            backfill(plane, dep.id, at(0), at(6))
        assert plane.runs(dep) == []
