"""Schedule math: cron and interval times across daylight-saving changes, slot ids, validation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.exceptions import ValidationError
from sluice.models import Schedule
from sluice_functions.scheduling import (
    is_schedule_time,
    next_times,
    previous_times,
    schedule_key,
    slot_run_id,
    times_between,
    upcoming_times,
    validate_schedule,
    validate_schedules,
)

UTC = timezone.utc
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def local(times: list[datetime], tz: ZoneInfo) -> list[str]:
    """Times as local wall clock with their offset, e.g. '2024-03-31 03:00+02:00'."""
    return [t.astimezone(tz).strftime("%Y-%m-%d %H:%M%z") for t in times]


class TestCronAcrossDaylightSaving:
    @pytest.mark.parametrize("tz, day_before, expected", [
        # Europe/Berlin springs forward 2024-03-31 02:00 -> 03:00
        ("Europe/Berlin", datetime(2024, 3, 30, 12, tzinfo=UTC),
         ["2024-03-31 03:00+0200", "2024-04-01 02:30+0200"]),
        # America/New_York springs forward 2024-03-10 02:00 -> 03:00
        ("America/New_York", datetime(2024, 3, 9, 12, tzinfo=UTC),
         ["2024-03-10 03:00-0400", "2024-03-11 02:30-0400"]),
    ])
    def test_a_time_skipped_by_spring_forward_fires_once_right_after_the_gap(
        self, tz, day_before, expected
    ):
        schedule = Schedule(cron="30 2 * * *", timezone=tz)
        assert local(next_times(schedule, day_before, 2), ZoneInfo(tz)) == expected

    @pytest.mark.parametrize("tz, cron, day_before, expected", [
        # Berlin falls back 2024-10-27 03:00 -> 02:00: 02:30 happens twice
        ("Europe/Berlin", "30 2 * * *", datetime(2024, 10, 26, 12, tzinfo=UTC),
         ["2024-10-27 02:30+0200", "2024-10-28 02:30+0100"]),
        # New York falls back 2024-11-03 02:00 -> 01:00: 01:30 happens twice
        ("America/New_York", "30 1 * * *", datetime(2024, 11, 2, 12, tzinfo=UTC),
         ["2024-11-03 01:30-0400", "2024-11-04 01:30-0500"]),
    ])
    def test_a_time_repeated_by_fall_back_fires_once_at_its_first_pass(
        self, tz, cron, day_before, expected
    ):
        schedule = Schedule(cron=cron, timezone=tz)
        assert local(next_times(schedule, day_before, 2), ZoneInfo(tz)) == expected

    def test_a_wildcard_hour_schedule_fires_in_both_passes_of_the_repeated_hour(self):
        # Elapsed-time schedules keep their rhythm: hourly stays one hour apart in UTC.
        schedule = Schedule(cron="0 * * * *", timezone="Europe/Berlin")
        times = next_times(schedule, datetime(2024, 10, 26, 23, 30, tzinfo=UTC), 4)
        assert local(times, BERLIN) == ["2024-10-27 02:00+0200", "2024-10-27 02:00+0100",
                                        "2024-10-27 03:00+0100", "2024-10-27 04:00+0100"]
        assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:]))

    def test_a_sub_hourly_schedule_skips_the_missing_hour_and_runs_once_after_it(self):
        schedule = Schedule(cron="*/30 * * * *", timezone="America/New_York")
        times = next_times(schedule, datetime(2024, 3, 10, 6, 15, tzinfo=UTC), 3)
        assert local(times, NEW_YORK) == ["2024-03-10 01:30-0500", "2024-03-10 03:00-0400",
                                          "2024-03-10 03:30-0400"]

    def test_times_are_utc_and_strictly_after(self):
        schedule = Schedule(cron="0 2 * * *", timezone="Europe/Berlin")
        first = next_times(schedule, datetime(2024, 5, 1, tzinfo=UTC), 1)[0]
        assert first == datetime(2024, 5, 2, 0, 0, tzinfo=UTC) and first.tzinfo is UTC
        assert next_times(schedule, first, 1)[0] == first + timedelta(days=1)


class TestIntervals:
    def test_a_daily_interval_keeps_its_wall_clock_time_across_both_changes(self):
        schedule = Schedule(interval_seconds=86400, anchor=datetime(2024, 1, 1, 1, 30),
                            timezone="America/New_York")
        spring = next_times(schedule, datetime(2024, 3, 9, tzinfo=UTC), 3)
        fall = next_times(schedule, datetime(2024, 11, 2, tzinfo=UTC), 3)
        assert local(spring, NEW_YORK) == ["2024-03-09 01:30-0500", "2024-03-10 01:30-0500",
                                           "2024-03-11 01:30-0400"]
        # 01:30 happens twice on 2024-11-03: the first pass, once
        assert local(fall, NEW_YORK) == ["2024-11-02 01:30-0400", "2024-11-03 01:30-0400",
                                         "2024-11-04 01:30-0500"]

    def test_a_daily_interval_at_a_skipped_time_moves_forward_by_the_gap(self):
        schedule = Schedule(interval_seconds=86400, anchor=datetime(2024, 1, 1, 2, 30),
                            timezone="Europe/Berlin")
        times = next_times(schedule, datetime(2024, 3, 30, 12, tzinfo=UTC), 2)
        assert local(times, BERLIN) == ["2024-03-31 03:30+0200", "2024-04-01 02:30+0200"]

    def test_a_sub_day_interval_is_elapsed_time_across_dst(self):
        schedule = Schedule(interval_seconds=5400, anchor=datetime(2024, 3, 31, 0, 0),
                            timezone="Europe/Berlin")  # anchor 00:00 CET = 23:00Z
        times = next_times(schedule, datetime(2024, 3, 30, 23, 0, tzinfo=UTC), 3)
        assert [t - times[0] for t in times] == [timedelta(0), timedelta(minutes=90),
                                                 timedelta(minutes=180)]
        assert local(times, BERLIN) == ["2024-03-31 01:30+0100", "2024-03-31 04:00+0200",
                                        "2024-03-31 05:30+0200"]

    def test_the_anchor_sets_the_phase(self):
        schedule = Schedule(interval_seconds=300, anchor=datetime(2024, 5, 1, 0, 2, tzinfo=UTC))
        assert next_times(schedule, datetime(2024, 5, 1, 12, 0, tzinfo=UTC), 2) == [
            datetime(2024, 5, 1, 12, 2, tzinfo=UTC), datetime(2024, 5, 1, 12, 7, tzinfo=UTC)]


SCHEDULES = st.sampled_from([
    Schedule(cron="30 2 * * *", timezone="Europe/Berlin"),
    Schedule(cron="*/20 1-3 * * *", timezone="America/New_York"),
    Schedule(cron="0 * * * *", timezone="Europe/Berlin"),
    Schedule(cron="15 1 * * 0", timezone="America/New_York"),
    Schedule(interval_seconds=86400, anchor=datetime(2024, 1, 1, 2, 30), timezone="Europe/Berlin"),
    Schedule(interval_seconds=2 * 86400, anchor=datetime(2024, 1, 1, 1, 30),
             timezone="America/New_York"),
    Schedule(interval_seconds=2700, timezone="Europe/Berlin"),
])
AROUND_DST = st.datetimes(min_value=datetime(2024, 3, 8), max_value=datetime(2024, 3, 12),
                          timezones=st.just(UTC)) | st.datetimes(
    min_value=datetime(2024, 10, 25), max_value=datetime(2024, 11, 5), timezones=st.just(UTC))


@settings(max_examples=60, deadline=None)
@given(schedule=SCHEDULES, start=AROUND_DST)
def test_walking_back_finds_exactly_the_times_walking_forward_found(schedule, start):
    forward = next_times(schedule, start, 8)
    end = forward[-1] + timedelta(microseconds=1)
    backward = previous_times(schedule, end, 8)
    assert list(reversed(backward)) == forward
    assert forward == sorted(set(forward))  # strictly increasing: no doubled time
    assert times_between(schedule, forward[0], end) == forward
    assert all(is_schedule_time(schedule, t) for t in forward)
    assert not is_schedule_time(schedule, forward[0] + timedelta(seconds=1))


def test_upcoming_is_the_next_three_or_the_next_hour_whichever_is_more():
    now = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    daily = Schedule(cron="0 2 * * *")
    every_minute = Schedule(cron="* * * * *")
    assert len(upcoming_times(daily, now, min_count=3, horizon=timedelta(hours=1),
                              max_count=100)) == 3
    assert len(upcoming_times(every_minute, now, min_count=3, horizon=timedelta(hours=1),
                              max_count=100)) == 60
    assert len(upcoming_times(Schedule(interval_seconds=1), now, min_count=3,
                              horizon=timedelta(hours=1), max_count=100)) == 100


class TestIdentity:
    def test_the_same_slot_always_maps_to_the_same_32_hex_id(self):
        slot = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
        same_instant = slot.astimezone(BERLIN)
        first = slot_run_id("dep", "k", slot)
        assert first == slot_run_id("dep", "k", same_instant)
        assert len(first) == 32 and int(first, 16) >= 0
        assert len({first, slot_run_id("dep2", "k", slot), slot_run_id("dep", "k2", slot),
                    slot_run_id("dep", "k", slot + timedelta(microseconds=1))}) == 4

    def test_a_schedule_key_survives_redeploys_and_parameter_changes(self):
        a = Schedule(cron="0  2 * * *", timezone="Europe/Berlin", parameters={"x": 1})
        b = Schedule(cron="0 2 * * *", timezone="Europe/Berlin", parameters={"x": 2},
                     active=False)
        assert schedule_key(a) == schedule_key(b)
        assert schedule_key(a) != schedule_key(Schedule(cron="0 2 * * *", timezone="UTC"))
        assert schedule_key(Schedule(id="morning", cron="0 2 * * *")) == "morning"

    def test_two_schedules_that_fire_as_one_need_distinct_ids(self):
        twins = [Schedule(cron="0 2 * * *", parameters={"region": "eu"}),
                 Schedule(cron="0 2 * * *", parameters={"region": "us"})]
        with pytest.raises(ValidationError, match=r"schedules\[1\].*distinct id"):
            validate_schedules(twins)
        validate_schedules([twins[0].model_copy(update={"id": "eu"}),
                            twins[1].model_copy(update={"id": "us"})])


class TestValidation:
    @pytest.mark.parametrize("cron, says", [
        ("0 2 * * ? *", "drop the extra fields and write '*' for '?'"),
        ("cron(0 2 * * ? *)", "EventBridge schedule syntax"),
        ("rate(5 minutes)", "use interval_seconds"),
        ("0 0 2 * * *", "seconds to croniter"),
        ("0 2 ? * MON", "'?', which is EventBridge syntax; write '*'"),
        ("@daily", "'0 0 * * *'"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 2 * *", "4 fields"),
        ("0 0 31 2 *", "never fires"),
    ])
    def test_a_bad_cron_is_refused_naming_the_field_and_the_fix(self, cron, says):
        with pytest.raises(ValidationError) as error:
            validate_schedule(Schedule(cron=cron), field="schedules[0]")
        assert error.value.message.startswith("schedules[0].cron: ")
        assert says in error.value.message
        assert error.value.details[0]["loc"] == ["schedules[0]", "cron"]

    @pytest.mark.parametrize("zone, says", [
        ("Mars/Olympus", "not an IANA time zone name"),
        ("europe/berlin", "did you mean 'Europe/Berlin'?"),
        ("", "not an IANA time zone name"),
    ])
    def test_an_unknown_time_zone_is_refused(self, zone, says):
        with pytest.raises(ValidationError) as error:
            validate_schedule(Schedule(cron="0 2 * * *", timezone=zone))
        assert says in error.value.message and "schedule.timezone" in error.value.message

    @pytest.mark.parametrize("schedule, says", [
        (Schedule(), "exactly one of cron or interval_seconds"),
        (Schedule(cron="0 2 * * *", interval_seconds=60), "exactly one of"),
        (Schedule(cron="0 2 * * *", anchor=datetime(2024, 1, 1)), "only interval schedules"),
        (Schedule(interval_seconds=0.5), "under the shortest interval"),
    ])
    def test_other_mistakes_are_refused(self, schedule, says):
        with pytest.raises(ValidationError, match=says):
            validate_schedule(schedule)

    @pytest.mark.parametrize("schedule", [
        Schedule(cron="0 2 * * 1-5", timezone="America/New_York"),
        Schedule(cron="*/15 8-18 * JAN-MAR MON"),
        Schedule(cron="0 2 L * *"),
        Schedule(interval_seconds=300, anchor=datetime(2024, 1, 1, tzinfo=UTC)),
    ])
    def test_good_schedules_pass(self, schedule):
        validate_schedule(schedule)

    def test_the_deployment_service_refuses_eventbridge_syntax_and_writes_nothing(self, plane):
        with pytest.raises(ValidationError, match=r"schedules\[0\]\.cron"):
            plane.deploy(schedules=[Schedule(cron="0 2 * * ? *")])
        assert plane.runs() == [] and plane.store.list_deployments(limit=10).items == []
