"""Datetime arithmetic on stored numbers never raises: it clamps at the calendar's edges."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from sluice_functions.timemath import EARLIEST, LATEST, add_seconds, as_utc, seconds, shift

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, NOW + timedelta(seconds=10)),
        (-10, NOW - timedelta(seconds=10)),
        (1e12, LATEST),  # 31,688 years: past year 9999 (`now + timedelta` raised OverflowError)
        (1e15, LATEST), (math.inf, LATEST), (10**400, LATEST),
        (-1e15, EARLIEST), (-math.inf, EARLIEST),
        (math.nan, NOW), (None, NOW),
    ],
)
def test_adding_any_number_of_seconds_never_raises(value, expected):
    assert add_seconds(NOW, value) == expected


def test_a_maximum_clamps_the_duration_itself():
    assert seconds(1e12, maximum=3600) == timedelta(hours=1)
    assert seconds(-1e12, maximum=3600) == -timedelta(hours=1)
    assert add_seconds(NOW, math.inf, maximum=60) == NOW + timedelta(minutes=1)


def test_shift_keeps_the_time_zone_and_clamps_both_ways():
    plus_two = timezone(timedelta(hours=2))
    late = datetime(9999, 12, 31, tzinfo=plus_two)
    assert shift(late, timedelta(days=2)) == datetime.max.replace(tzinfo=plus_two)
    assert shift(EARLIEST, -timedelta(microseconds=1)) == EARLIEST


def test_as_utc_reads_naive_times_as_utc_and_clamps_times_without_a_utc_equivalent():
    assert as_utc(datetime(2024, 5, 1, 12)) == NOW
    assert as_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))) == EARLIEST
    assert as_utc(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-12)))) == LATEST
