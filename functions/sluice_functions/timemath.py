"""Datetime arithmetic that cannot overflow: the control plane adds stored numbers to times.

A delay, a timeout or a lateness window comes from a stored record (a run's
`retry_delay_seconds`, a deployment's `max_lateness_seconds` ...). The API bounds them where
they enter (`sluice.models.bounds`), but records written before a bound existed, or by another
version, still hold whatever was accepted then; and `datetime + timedelta` raises
`OverflowError` past year 9999 (as does `timedelta(seconds=1e12 * 1e3)`). One such record must
not abort a scheduler or monitor tick, nor make a route answer 500, so every addition of a
stored number to a time goes through here: results are clamped to the calendar's edges, and
NaN counts as zero.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
#: The calendar's edges (aware, UTC): the clamp of every addition that would leave it.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
#: Just under the longest timedelta (about 2.7 million years), both ways (-timedelta.max is
#: below timedelta.min): any duration is clamped into +-this.
_LONGEST_SECONDS = float((timedelta.max.days - 1) * 86_400)


def seconds(value: float | int | None, *, maximum: float | None = None) -> timedelta:
    """`value` seconds as a timedelta, never raising: None and NaN are zero, and the result
    is clamped to +-`maximum` seconds when given (else to the longest timedelta)."""
    if value is None:
        return timedelta(0)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.inf if isinstance(value, int) and value > 0 else 0.0
    if math.isnan(number):
        return timedelta(0)
    limit = _LONGEST_SECONDS if maximum is None else min(float(maximum), _LONGEST_SECONDS)
    number = max(-limit, min(limit, number))
    try:
        return timedelta(seconds=number)
    except OverflowError:  # not reached: the clamp keeps a day's room
        return timedelta.max if number > 0 else timedelta.min


def shift(moment: datetime, delta: timedelta) -> datetime:
    """`moment + delta`, clamped to the calendar's edges instead of raising `OverflowError`
    (the clamp keeps `moment`'s time zone when it can, else it is UTC)."""
    try:
        return moment + delta
    except OverflowError:
        edge = datetime.max if delta > timedelta(0) else datetime.min
        return edge.replace(tzinfo=moment.tzinfo)


def add_seconds(moment: datetime, value: float | int | None, *,
                maximum: float | None = None) -> datetime:
    """`moment` plus `value` seconds (see `seconds` and `shift`): never raises."""
    return shift(moment, seconds(value, maximum=maximum))


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC (a naive one read as UTC), clamped to the calendar's edges: year 1 at
    +01:00 has no UTC equivalent, so it becomes `EARLIEST` (and the far end `LATEST`)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return EARLIEST if moment.year == datetime.min.year else LATEST
