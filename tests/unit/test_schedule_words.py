"""Issue 15: `deployment ls|inspect` show schedules in words, not Python reprs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sluice.cli.schedule_words import (describe_cron, describe_interval, describe_parameters,
                                       describe_schedule)
from sluice.models import Schedule


@pytest.mark.parametrize(("cron", "words"), [
    ("* * * * *", "every minute"),
    ("*/5 * * * *", "every 5 minutes"),
    ("7 * * * *", "hourly at :07"),
    ("0 */6 * * *", "every 6 hours at :00"),
    ("0 2 * * *", "every day at 02:00"),
    ("30 8,17 * * *", "every day at 08:30 and 17:30"),
    ("15 9 * * 1", "every Monday at 09:15"),
    ("15 9 * * 7", "every Sunday at 09:15"),
    ("15 9 * * mon,thu", "every Monday and Thursday at 09:15"),
    ("0 6 * * 1-5", "every weekday (Monday to Friday) at 06:00"),
    ("0 0 1 * *", "monthly on the 1st at 00:00"),
    ("45 23 22 * *", "monthly on the 22nd at 23:45"),
])
def test_common_cron_shapes_are_put_in_words(cron, words):
    # Given a common cron shape / When it is described / Then it reads as words
    assert describe_cron(cron) == words


@pytest.mark.parametrize("cron", ["5 4 * 1 *", "0-10 * * * *", "0 2 1 * 1", "*/7 2 * * *",
                                  "0 2 * *", "0 2 L * *"])
def test_other_cron_expressions_have_no_words(cron):
    # Given a shape the words do not cover / When it is described / Then there are none
    assert describe_cron(cron) is None


@pytest.mark.parametrize(("seconds", "words"), [
    (20, "every 20 seconds"), (1, "every second"), (1.5, "every 1.5 seconds"),
    (300, "every 5 minutes"), (3600, "every hour"), (7200, "every 2 hours"),
    (86400, "every day"), (90, "every 90 seconds"),
])
def test_intervals_are_put_in_words(seconds, words):
    assert describe_interval(seconds) == words


def test_a_cron_schedule_shows_its_words_zone_and_cron_text():
    # Given a daily cron in Berlin time
    schedule = Schedule(cron="0 2 * * *", timezone="Europe/Berlin")
    # When described / Then the words, the zone and the cron text read in one line
    assert describe_schedule(schedule) == \
        "every day at 02:00 Europe/Berlin (cron '0 2 * * *')"


def test_an_uncommon_cron_falls_back_to_its_text():
    assert describe_schedule(Schedule(cron="5 4 * 1 *")) == "cron '5 4 * 1 *' UTC"


def test_an_interval_schedule_with_parameters_and_inactive():
    # Given an inactive interval schedule with parameters and an anchor
    schedule = Schedule(interval_seconds=20, parameters={"n": 3, "name": "x"}, active=False,
                        anchor=datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc))
    # When described / Then no Python repr: key=value pairs with JSON values
    assert describe_schedule(schedule) == \
        'every 20 seconds from 2026-01-01 02:00:00+00:00 with n=3, name="x" (inactive)'


def test_parameters_read_as_key_value_json():
    assert describe_parameters({"a": [1, 2], "b": None, "c": True}) == \
        "a=[1, 2], b=null, c=true"
    assert describe_parameters({}) == "-"
