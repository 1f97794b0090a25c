"""The scheduler tick on the real SQLite store and queue, with a hand-moved clock."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest

from conftest import UTC, Plane
from sluice.models import DeploymentUpdate, Schedule, StateType
from sluice_functions import service
from sluice_functions.scheduling import (
    AUTO_SCHEDULED_TAG,
    CatchUpPolicy,
    schedule_deployments,
    schedule_key,
    slot_run_id,
)

S, CA = StateType.SCHEDULED, StateType.CANCELLED
HOURLY = Schedule(cron="0 * * * *")


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, 1, hour, minute, second, tzinfo=UTC)


def tick(plane: Plane, when: datetime | None = None):
    if when is not None:
        plane.clock.now = when
    return schedule_deployments(**plane.ports, now=plane.clock())


def slot_id(deployment, slot: datetime, schedule: Schedule = HOURLY) -> str:
    return slot_run_id(deployment.id, schedule_key(schedule), slot)


def by_time(plane: Plane, deployment) -> dict[str, tuple[str, bool]]:
    """{"HH:MM": (state name, held)} of the deployment's runs."""
    return {
        run.scheduled_at.strftime("%H:%M"): (
            run.state.name, bool(run.state.details and run.state.details.get("held_by")))
        for run in plane.runs(deployment)
    }


def hourly_deployment(plane: Plane, created: datetime, **fields):
    plane.clock.now = created
    return plane.deploy(schedules=[HOURLY], **fields)


class TestUpcomingRuns:
    def test_upcoming_runs_are_created_held_and_released_a_tick_before_they_are_due(self, plane):
        plane.clock.now = at(12, 0)
        dep = plane.deploy(schedules=[Schedule(cron="*/10 * * * *")])
        first = tick(plane, at(12, 0, 30))
        assert first.created == 6  # the next hour: 12:10 .. 13:00
        assert by_time(plane, dep) == {f"{h}:{m}": ("Scheduled", True) for h, m in [
            ("12", "10"), ("12", "20"), ("12", "30"), ("12", "40"), ("12", "50"), ("13", "00")]}
        assert plane.queue.sent == []  # nothing is due before the next tick
        run = plane.store.get_flow_run(slot_id(dep, at(12, 10), Schedule(cron="*/10 * * * *")))
        assert AUTO_SCHEDULED_TAG in run.tags and run.pool == "etl"

        second = tick(plane, at(12, 8, 30))
        assert (second.released, second.created) == (1, 0)  # 12:10 released; 13:10 is 61 min out
        assert plane.queue.sent == [(run.id, 0, 90)]  # visible at 12:10:00 sharp
        released = plane.store.get_flow_run(run.id)
        assert released.state.name == "Scheduled" and released.state.details is None
        assert released.enqueued_at == at(12, 8, 30)

    def test_a_run_due_before_the_next_tick_is_created_released(self, plane):
        plane.clock.now = at(12, 0)
        dep = plane.deploy(schedules=[Schedule(interval_seconds=45, anchor=at(0, 0))])
        tick(plane, at(12, 0, 1))
        assert by_time(plane, dep)["12:00"] == ("Scheduled", False)  # 12:00:45
        assert plane.queue.sent[0][2] == 44

    def test_ticking_again_changes_nothing(self, plane):
        dep = hourly_deployment(plane, at(11, 30))
        tick(plane, at(11, 59))
        before = (plane.runs(dep), list(plane.queue.sent))
        again = [tick(plane, at(11, 59)) for _ in range(3)]
        assert [(r.created, r.released, r.enqueued) for r in again] == [(0, 0, 0)] * 3
        assert (plane.runs(dep), plane.queue.sent) == before

    def test_inactive_schedules_and_paused_deployments_make_no_runs(self, plane):
        plane.clock.now = at(11)
        plane.deploy(name="off", schedules=[HOURLY.model_copy(update={"active": False})])
        plane.deploy(name="paused", schedules=[HOURLY], paused=True)
        assert tick(plane, at(11, 1)).created == 0 and plane.runs() == []


def test_five_concurrent_ticks_make_one_run_per_time_and_send_each_once(plane):
    plane.clock.now = at(11, 59)
    deployments = [plane.deploy(name=f"d{i}", schedules=[Schedule(cron="*/2 * * * *")])
                   for i in range(3)]
    now = at(11, 59, 30)
    start = threading.Barrier(5)
    results, errors = [], []

    def fire() -> None:
        try:
            start.wait()
            results.append(schedule_deployments(**plane.ports, now=now))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fire) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    runs = plane.runs()
    slots = Counter((run.deployment_id, run.scheduled_at) for run in runs)
    assert len(runs) == 3 * 30 and set(slots.values()) == {1}  # 12:00 .. 12:58, once each
    assert sum(result.created for result in results) == len(runs)
    assert {run.id for run in runs} == {
        slot_id(dep, at(12, 0) + timedelta(minutes=2 * i), Schedule(cron="*/2 * * * *"))
        for dep in deployments for i in range(30)}
    sends = Counter(run_id for run_id, _, _ in plane.queue.sent)
    assert len(sends) == 3 and set(sends.values()) == {1}  # each 12:00 run, once


class TestCatchUp:
    def missed(self, plane: Plane, **fields):
        """Hourly from 12:00:30; runs made up to 15:00; the scheduler is down until 17:20."""
        dep = hourly_deployment(plane, at(12, 0, 30), **fields)
        assert tick(plane, at(12, 1)).created == 3  # 13:00, 14:00, 15:00, held
        return dep, tick(plane, at(17, 20))

    def test_without_catchup_only_the_most_recent_missed_time_starts(self, plane):
        dep, result = self.missed(plane)
        runs = by_time(plane, dep)
        assert {k: v for k, v in runs.items() if k <= "17:00"} == {
            "13:00": ("Cancelled", False), "14:00": ("Cancelled", False),
            "15:00": ("Cancelled", False), "17:00": ("Scheduled", False)}
        assert (result.skipped, result.created) == (3, 4)  # 17:00 + 18:00..20:00 ahead
        assert plane.queue.sent == [(slot_id(dep, at(17)), 0, 0)]
        skipped = plane.store.get_flow_run(slot_id(dep, at(13)))
        assert "only the most recent missed run starts" in skipped.state.message

    def test_with_catchup_every_missed_time_starts(self, plane):
        dep, result = self.missed(plane, catchup=True)
        started = [t for t, (name, held) in by_time(plane, dep).items()
                   if name == "Scheduled" and not held]
        assert started == ["13:00", "14:00", "15:00", "16:00", "17:00"]
        assert result.skipped == 0 and len(plane.queue.sent) == 5
        assert {delay for _, _, delay in plane.queue.sent} == {0}

    def test_with_catchup_and_max_lateness_older_times_are_skipped(self, plane):
        dep, result = self.missed(plane, catchup=True, max_lateness_seconds=2.5 * 3600)
        runs = by_time(plane, dep)
        assert [runs[t][0] for t in ("13:00", "14:00", "15:00", "16:00", "17:00")] == [
            "Cancelled", "Cancelled", "Scheduled", "Scheduled", "Scheduled"]
        assert result.skipped == 2 and len(plane.queue.sent) == 3

    def test_a_tick_late_by_less_than_a_tick_interval_skips_nothing(self, plane):
        plane.clock.now = at(12)
        dep = plane.deploy(schedules=[Schedule(cron="* * * * *")])
        tick(plane, at(12, 0, 1))
        result = tick(plane, at(12, 3, 50))  # ticks at 12:01 .. 12:03 were lost
        assert result.skipped == 0
        assert [t for t, (name, held) in by_time(plane, dep).items() if not held][:5] == [
            "12:01", "12:02", "12:03", "12:04", "12:05"]

    def test_a_new_schedule_does_not_start_its_past_times(self, plane):
        dep = hourly_deployment(plane, at(9))  # hourly since 09:00 but first ticked at 12:30
        plane.clock.now = at(12, 30)
        service.update_deployment(dep.id, DeploymentUpdate(schedules=[
            HOURLY, Schedule(id="noon", cron="0 12 * * *")]), store=plane.store,
            now=plane.clock())
        tick(plane, at(12, 30, 10))
        noon = [r for r in plane.runs(dep) if r.id.startswith(slot_run_id(dep.id, "noon", at(12)))]
        assert noon == []  # added at 12:30: today's 12:00 is not a missed run
        # ... whereas the hourly schedule, older than the update, is judged by its last run:
        # it never had one, so 12:00 (before the update) does not start either.
        assert plane.queue.sent == []

    def test_a_deployment_made_just_before_a_time_starts_it_even_if_the_first_tick_is_late(
        self, plane
    ):
        plane.clock.now = at(11, 59, 50)
        dep = plane.deploy(schedules=[Schedule(cron="0 12 * * *")])
        tick(plane, at(12, 0, 20))
        assert plane.queue.sent == [(slot_id(dep, at(12), Schedule(cron="0 12 * * *")), 0, 0)]

    @pytest.mark.parametrize("catchup, lateness, slot, expected", [
        (False, None, at(17, 9, 30), True),    # within a tick interval: on time
        (False, None, at(16), False),          # missed, not the latest
        (False, None, at(17), True),           # missed, the latest
        (False, 300, at(17), False),           # the latest, but too late
        (True, None, at(3), True),
        (True, 3600, at(16, 10), True),
        (True, 3600, at(16), False),
    ])
    def test_the_policy(self, catchup, lateness, slot, expected):
        max_lateness = None if lateness is None else timedelta(seconds=lateness)
        policy = CatchUpPolicy(catchup=catchup, on_time_grace=timedelta(minutes=1),
                               max_lateness=max_lateness)
        assert policy.should_start(slot, now=at(17, 10), latest=at(17)) is expected


class TestPauseAndChanges:
    def test_a_paused_deployment_holds_its_runs_and_catches_up_on_resume(self, plane):
        dep = hourly_deployment(plane, at(12, 0, 30))
        tick(plane, at(12, 1))
        plane.clock.now = at(12, 30)
        service.update_deployment(dep.id, DeploymentUpdate(paused=True), store=plane.store,
                                  now=plane.clock())
        for hour in (13, 14):
            result = tick(plane, at(hour, 1))
            assert (result.created, result.released, result.skipped) == (0, 0, 0)
        assert plane.queue.sent == []
        assert by_time(plane, dep)["13:00"] == ("Scheduled", True)
        # A held time that came due while paused says why it waits (what `flow-run ls` shows).
        waiting = plane.store.get_flow_run(slot_id(dep, at(13)))
        assert waiting.state.message.startswith(
            f"waiting: deployment {dep.flow_name}/{dep.name} is paused; on resume the catch-up "
            "policy decides")
        not_due = plane.store.get_flow_run(slot_id(dep, at(15)))
        assert not_due.state.message is None
        versions = {r.id: r.version for r in plane.runs(dep)}
        tick(plane, at(14, 2))
        assert {r.id: r.version for r in plane.runs(dep)} == versions  # no write when unchanged

        plane.clock.now = at(14, 30)
        service.update_deployment(dep.id, DeploymentUpdate(paused=False), store=plane.store,
                                  now=plane.clock())
        result = tick(plane, at(14, 31))
        runs = by_time(plane, dep)
        assert (runs["13:00"], runs["14:00"]) == (("Cancelled", False), ("Scheduled", False))
        assert (result.skipped, result.released) == (1, 1)
        assert plane.queue.sent == [(slot_id(dep, at(14)), 0, 0)]
        skipped = plane.store.get_flow_run(slot_id(dep, at(13)))
        assert skipped.state.message.startswith("skipped: missed while the scheduler was not "
                                                "running or the deployment was paused")

    def test_held_runs_of_a_removed_or_changed_schedule_are_cancelled(self, plane):
        plane.clock.now = at(11)
        first = Schedule(id="main", cron="0 * * * *")
        dep = plane.deploy(schedules=[first])
        tick(plane, at(11, 1))  # 12:00 .. 14:00 held
        plane.clock.now = at(11, 10)
        moved = Schedule(id="main", cron="30 * * * *")
        plane.deploy(schedules=[moved])
        result = tick(plane, at(11, 11))
        runs = by_time(plane, dep)
        assert [runs[t][0] for t in ("12:00", "13:00", "14:00")] == ["Cancelled"] * 3
        assert [runs[t] for t in ("11:30", "12:30", "13:30")] == [("Scheduled", True)] * 3
        assert result.cancelled == 3
        assert "schedule was removed, deactivated or changed" in plane.store.get_flow_run(
            slot_run_id(dep.id, "main", at(12))).state.message

    def test_held_runs_of_a_deleted_deployment_are_cancelled(self, plane):
        dep = hourly_deployment(plane, at(11))
        tick(plane, at(11, 1))
        service.delete_deployment(dep.id, store=plane.store)
        assert tick(plane, at(11, 2)).cancelled == 3
        assert {run.state.type for run in plane.runs()} == {CA}

    def test_a_released_run_takes_the_deployments_current_parameters_and_pool(self, plane):
        plane.clock.now = at(11)
        schedule = Schedule(cron="0 12 * * *", parameters={"region": "eu"})
        dep = plane.deploy(schedules=[schedule], parameters={"n": 1})
        tick(plane, at(11, 1))
        run_id = slot_id(dep, at(12), schedule)
        assert plane.store.get_flow_run(run_id).parameters == {"n": 1, "region": "eu"}
        plane.clock.now = at(11, 30)
        plane.deploy(schedules=[schedule], parameters={"n": 2}, pool="fast", retries=2)
        tick(plane, at(11, 59))
        run = plane.store.get_flow_run(run_id)
        assert (run.parameters, run.pool, run.retries) == ({"n": 2, "region": "eu"}, "fast", 2)
        assert plane.queue.sent == [(run_id, 0, 60)]
