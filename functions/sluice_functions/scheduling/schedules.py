"""Schedule math: when a schedule fires, whether a schedule is valid, and the ids of its runs.

Pure functions, no I/O; every datetime in and out is timezone-aware, and every time returned is
UTC.

Cron (`Schedule.cron`): standard 5 fields (minute hour day-of-month month day-of-week) read
by croniter in the schedule's IANA `timezone`. Other dialects are refused, because croniter
would read them differently from what their author meant: a 6th field is *seconds* to croniter
but the year to EventBridge, and `cron(...)`/`rate(...)`/`?` are EventBridge syntax.

Daylight-saving time, for cron:

* Spring forward: a wall time that does not exist that day (02:30 in Europe/Berlin on the last
  Sunday of March) fires once, at the first wall time after the gap (03:00) - croniter's
  semantics. Times in the skipped hour of sub-hourly schedules collapse into that one run too.
* Fall back: a wall time that happens twice (02:30 on the last Sunday of October) fires once,
  at its first occurrence, when the expression names its minute and hour (neither field starts
  with `*`), like Vixie cron's "fixed-time jobs". Expressions with a wildcard minute or hour
  (`*/15 * * * *`, `0 * * * *`) fire in both passes of the repeated hour: they describe elapsed
  time, and skipping would leave an hour-long hole.

Interval (`Schedule.interval_seconds` with `anchor` and `timezone`): slots are `anchor + k *
interval`. A whole number of days keeps the anchor's wall-clock time in the timezone across DST
(daily at 02:00 stays at 02:00; a wall time skipped by spring-forward moves forward by the gap,
a repeated one fires at its first occurrence); any other interval is elapsed time. A naive
anchor is read in the schedule's timezone; no anchor means 2020-01-01 00:00 there.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from itertools import islice
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from sluice.exceptions import ValidationError
from sluice.models import MAX_INTERVAL_SECONDS, Schedule

from ..timemath import as_utc, shift

UTC = timezone.utc
#: Cron fields Sluice reads.
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
#: Interval schedules start here (in the schedule's timezone) when they have no anchor.
DEFAULT_INTERVAL_ANCHOR = datetime(2020, 1, 1)
#: Shortest interval: the scheduler works a minute ahead and creates at most
#: `MAX_UPCOMING_RUNS` runs per schedule, so sub-second intervals cannot be honoured.
MIN_INTERVAL_SECONDS = 1.0
#: The namespace of run ids derived from schedule slots (uuid5). Never change it: the ids of
#: runs already created would no longer match their slots.
SLOT_ID_NAMESPACE = uuid.UUID("5c1e3a52-9d1f-4b5e-8f0b-6a1d2c3e4f50")
_DAY_SECONDS = 24 * 60 * 60
_ONE_MICROSECOND = timedelta(microseconds=1)
_CRON_MACRO_EQUIVALENTS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# ---- validation ----------------------------------------------------------------------------------


def validate_schedule(schedule: Schedule, *, field: str = "schedule") -> None:
    """Raise `sluice.exceptions.ValidationError` naming the field and the fix when `schedule`
    cannot be used: not exactly one of cron / interval_seconds, a cron expression that is not
    5-field cron (EventBridge syntax, croniter's seconds field, macros) or never fires, an
    interval under a second or over `MAX_INTERVAL_SECONDS` (a leap year), an anchor on a cron
    schedule, or an unknown time zone."""
    if (schedule.cron is None) == (schedule.interval_seconds is None):
        _refuse(field, None, "give exactly one of cron or interval_seconds",
                f"{field}: give exactly one of cron or interval_seconds")
    tz = _zone_or_refuse(schedule.timezone, field)
    if schedule.anchor is not None:
        try:
            _anchor(schedule).astimezone(UTC)
        except OverflowError:
            _refuse(field, "anchor", "out of range",
                    f"{field}.anchor: {schedule.anchor.isoformat()} has no UTC equivalent "
                    "(it is at the calendar's edge); give an anchor between 1970 and 3000")
    if schedule.cron is not None:
        if schedule.anchor is not None:
            _refuse(field, "anchor", "only interval schedules take an anchor",
                    f"{field}.anchor: only interval schedules take an anchor; remove it from "
                    "the cron schedule")
        _check_cron(schedule.cron, field, tz)
    elif schedule.interval_seconds is not None and schedule.interval_seconds < MIN_INTERVAL_SECONDS:
        _refuse(field, "interval_seconds", f"at least {MIN_INTERVAL_SECONDS:g} second",
                f"{field}.interval_seconds: {schedule.interval_seconds:g} is under the shortest "
                f"interval of {MIN_INTERVAL_SECONDS:g} second")
    elif schedule.interval_seconds is not None and not (
            schedule.interval_seconds <= MAX_INTERVAL_SECONDS):
        _refuse(field, "interval_seconds", f"at most {MAX_INTERVAL_SECONDS} seconds",
                f"{field}.interval_seconds: {schedule.interval_seconds:g} is over the longest "
                f"interval of {MAX_INTERVAL_SECONDS} seconds (366 days, "
                "sluice.models.MAX_INTERVAL_SECONDS); use a cron schedule for yearly runs")


def validate_schedules(schedules: Sequence[Schedule], *, field: str = "schedules") -> None:
    """`validate_schedule` for each, and no two schedules with the same `schedule_key` (their
    runs would share ids, so one schedule's runs would silently replace the other's)."""
    seen: dict[str, int] = {}
    for index, schedule in enumerate(schedules):
        validate_schedule(schedule, field=f"{field}[{index}]")
        key = schedule_key(schedule)
        if key in seen:
            _refuse(f"{field}[{index}]", None, f"same schedule as {field}[{seen[key]}]",
                    f"{field}[{index}] fires at the same times as {field}[{seen[key]}]; give "
                    "each schedule a distinct id (e.g. when they pass different parameters)")
        seen[key] = index


def _check_cron(expression: str, field: str, tz: ZoneInfo) -> None:
    where = f"{field}.cron"
    text = expression.strip()
    lowered = text.lower()
    example = "e.g. '0 2 * * *' for 02:00 every day"
    if lowered.startswith(("cron(", "rate(")):
        hint = ("use interval_seconds (--interval SECONDS) for a rate"
                if lowered.startswith("rate(") else
                "write the standard 5 fields without the wrapper and without the year field, "
                "with '*' for '?'")
        _refuse(field, "cron", "EventBridge syntax",
                f"{where}: {expression!r} is EventBridge schedule syntax; Sluice takes standard "
                f"5-field cron (minute hour day-of-month month day-of-week): {hint}")
    if lowered in _CRON_MACRO_EQUIVALENTS:
        _refuse(field, "cron", "macros are not accepted",
                f"{where}: write {expression!r} as 5-field cron: "
                f"{_CRON_MACRO_EQUIVALENTS[lowered]!r}")
    fields = text.split()
    if len(fields) != len(CRON_FIELDS):
        if len(fields) in (6, 7):
            hint = ("a 6th field is the year to EventBridge but seconds to croniter, so it is "
                    "refused: drop the extra fields" + (" and write '*' for '?'" if "?" in text
                                                        else ""))
        else:
            hint = example
        _refuse(field, "cron", f"{len(fields)} fields instead of 5",
                f"{where}: {expression!r} has {len(fields)} fields; Sluice takes standard "
                f"5-field cron (minute hour day-of-month month day-of-week); {hint}")
    if "?" in text:
        _refuse(field, "cron", "'?' is EventBridge syntax",
                f"{where}: {expression!r} uses '?', which is EventBridge syntax; write '*'")
    try:
        croniter(text)
    except (ValueError, KeyError) as exc:
        _refuse(field, "cron", "not a cron expression",
                f"{where}: {expression!r} is not a valid cron expression ({exc}); {example}")
    try:
        next(iter_times(Schedule(cron=text, timezone=tz.key), datetime(2020, 1, 1, tzinfo=UTC)))
    except (ValueError, StopIteration):
        _refuse(field, "cron", "never fires",
                f"{where}: {expression!r} never fires (no such date); {example}")


def _zone_or_refuse(name: str, field: str) -> ZoneInfo:
    try:
        return schedule_zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        suggestion = _similar_zone(name)
        hint = f"; did you mean {suggestion!r}?" if suggestion else " such as 'Europe/Berlin'"
        _refuse(field, "timezone", "unknown time zone",
                f"{field}.timezone: {name!r} is not an IANA time zone name{hint}")


@lru_cache(maxsize=256)
def schedule_zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (cached: ZoneInfo reads a file). Raises ZoneInfoNotFoundError or
    ValueError for a name that is not a zone."""
    if not name or name.startswith("/") or ".." in name:
        raise ValueError(f"{name!r} is not a zone name")
    return ZoneInfo(name)


def _similar_zone(name: str) -> str | None:
    """The zone the user most likely meant: the same name in other case, else the closest
    spelling (`America/New_Yrok` -> `America/New_York`), else None."""
    wanted = name.strip().lower().replace(" ", "_")
    by_lower = {zone.lower(): zone for zone in available_timezones()}
    if wanted in by_lower:
        return by_lower[wanted]
    import difflib

    close = difflib.get_close_matches(wanted, list(by_lower), n=1, cutoff=0.75)
    if not close and "/" not in wanted:  # "berlin" -> "Europe/Berlin": match the city alone
        cities = {key.rpartition("/")[2]: key for key in sorted(by_lower)}
        close = [cities[c] for c in difflib.get_close_matches(wanted, list(cities), n=1,
                                                              cutoff=0.8)]
    return by_lower[close[0]] if close else None


def _refuse(field: str, sub: str | None, msg: str, message: str) -> NoReturn:
    loc = [field] if sub is None else [field, sub]
    raise ValidationError(message, details=[{"loc": loc, "msg": msg}])


# ---- identity ------------------------------------------------------------------------------------


def schedule_key(schedule: Schedule) -> str:
    """What identifies a schedule in its runs' ids: its `id` when it has one, otherwise a
    fingerprint of when it fires (cron or interval + anchor, and timezone). The fingerprint
    survives re-deploys and reordering; parameters and `active` are not part of it, so changing
    them never makes a second run for a time that already has one."""
    if schedule.id:
        return schedule.id
    timing: dict[str, Any] = {"timezone": schedule.timezone}
    if schedule.cron is not None:
        timing["cron"] = " ".join(schedule.cron.split())
    else:
        timing["interval_seconds"] = schedule.interval_seconds
        timing["anchor"] = as_utc(_anchor(schedule)).isoformat()
    digest = hashlib.sha256(json.dumps(timing, sort_keys=True).encode()).hexdigest()
    return f"auto-{digest[:16]}"


def slot_run_id(deployment_id: str, key: str, slot: datetime) -> str:
    """The id of the run a schedule makes for one time (32 hex characters): the same deployment,
    schedule key and time always give the same id, so the scheduler, concurrent ticks and
    backfills can only ever create one run per slot (the store refuses a second insert)."""
    instant = slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return uuid.uuid5(SLOT_ID_NAMESPACE, f"{deployment_id}/{key}/{instant}").hex


# ---- times ---------------------------------------------------------------------------------------


def iter_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Every time the schedule fires strictly after `after`, in order (UTC; endless, except
    that the times end at the calendar's edge, year 9999, instead of overflowing)."""
    _require_aware(after, "after")
    tz = schedule_zone(schedule.timezone)
    if schedule.cron is not None:
        return _within_calendar(_cron_times(schedule.cron, tz, after, forward=True))
    return _within_calendar(_interval_times(schedule, after, forward=True))


def iter_times_before(schedule: Schedule, before: datetime) -> Iterator[datetime]:
    """Every time the schedule fired strictly before `before`, newest first (UTC; ends at the
    calendar's edge, year 1)."""
    _require_aware(before, "before")
    tz = schedule_zone(schedule.timezone)
    if schedule.cron is not None:
        return _within_calendar(_cron_times(schedule.cron, tz, before, forward=False))
    return _within_calendar(_interval_times(schedule, before, forward=False))


def _within_calendar(times: Iterator[datetime]) -> Iterator[datetime]:
    """`times` until one would fall outside the calendar (datetime arithmetic overflows there):
    a stored schedule with an extreme anchor or interval ends instead of failing its tick."""
    try:
        yield from times
    except OverflowError:
        return


def next_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next `count` times strictly after `after` (UTC, ascending)."""
    return list(islice(iter_times(schedule, after), count))


def previous_times(schedule: Schedule, before: datetime, count: int) -> list[datetime]:
    """The last `count` times strictly before `before` (UTC, newest first)."""
    return list(islice(iter_times_before(schedule, before), count))


def times_between(
    schedule: Schedule, start: datetime, end: datetime, *, limit: int | None = None
) -> list[datetime]:
    """The times in [start, end), ascending; at most `limit` of them when given."""
    _require_aware(start, "start")
    found: list[datetime] = []
    for when in iter_times(schedule, shift(start, -_ONE_MICROSECOND)):
        if when >= end or (limit is not None and len(found) >= limit):
            break
        found.append(when)
    return found


def upcoming_times(
    schedule: Schedule,
    now: datetime,
    *,
    min_count: int,
    horizon: timedelta,
    max_count: int,
) -> list[datetime]:
    """The times after `now` the scheduler creates runs for: at least `min_count`, every one
    within `horizon`, and never more than `max_count`."""
    found: list[datetime] = []
    for when in iter_times(schedule, now):
        if len(found) >= max_count or (len(found) >= min_count and when > shift(now, horizon)):
            break
        found.append(when)
    return found


def is_schedule_time(schedule: Schedule, when: datetime) -> bool:
    """Whether the schedule fires at exactly `when`."""
    return next(iter_times(schedule, shift(when, -_ONE_MICROSECOND)), None) == when


def _cron_times(expression: str, tz: ZoneInfo, start: datetime, *, forward: bool
                ) -> Iterator[datetime]:
    fields = expression.split()
    # Vixie cron's fixed-time jobs: their repeated fall-back wall time fires once (see module doc).
    fixed_time = not fields[0].startswith("*") and not fields[1].startswith("*")
    iterator = croniter(expression, start.astimezone(tz))
    step = iterator.get_next if forward else iterator.get_prev
    previous: datetime | None = None
    while True:
        try:
            when = step(datetime).astimezone(UTC)
        except ValueError:  # CroniterBadDateError: no further date exists
            return
        if fixed_time and when.astimezone(tz).fold == 1:
            continue  # the second pass of a repeated wall time (fall back)
        if when == previous:
            continue  # two wall times of a skipped hour that croniter mapped to one instant
        previous = when
        yield when


def _interval_times(schedule: Schedule, start: datetime, *, forward: bool) -> Iterator[datetime]:
    assert schedule.interval_seconds is not None
    anchor = _anchor(schedule)
    interval = schedule.interval_seconds
    if not interval * 1_000_000 >= 1:  # a stored interval from before the bounds
        raise ValueError(f"interval_seconds={interval!r} is not a usable interval")
    if interval % _DAY_SECONDS == 0:
        yield from _wall_clock_days(anchor, schedule_zone(schedule.timezone),
                                    int(interval // _DAY_SECONDS), start, forward=forward)
        return
    # Elapsed time: computed in UTC (aware arithmetic within one zone would add wall time).
    anchor = anchor.astimezone(UTC)
    step_us = max(1, round(interval * 1_000_000))
    offset_us = _micros(start.astimezone(UTC) - anchor)
    # The index of the first slot strictly after (or last strictly before) `start`.
    index = offset_us // step_us + 1 if forward else -((-offset_us) // step_us) - 1
    direction = 1 if forward else -1
    while True:
        yield anchor + timedelta(microseconds=index * step_us)
        index += direction


def _wall_clock_days(anchor: datetime, tz: ZoneInfo, days: int, start: datetime, *,
                     forward: bool) -> Iterator[datetime]:
    wall = anchor.astimezone(tz).replace(tzinfo=None, fold=0)

    def slot(index: int) -> datetime:
        # fold=0: a repeated wall time means its first pass; a skipped one lands after the gap.
        return (wall + timedelta(days=index * days)).replace(tzinfo=tz).astimezone(UTC)

    elapsed = start.astimezone(UTC) - anchor.astimezone(UTC)
    index = math.floor(elapsed.total_seconds() / (days * _DAY_SECONDS))
    if forward:
        while slot(index) > start:
            index -= 1
        while slot(index) <= start:
            index += 1
    else:
        while slot(index) < start:
            index += 1
        while slot(index) >= start:
            index -= 1
    direction = 1 if forward else -1
    while True:
        yield slot(index)
        index += direction


def _anchor(schedule: Schedule) -> datetime:
    tz = schedule_zone(schedule.timezone)
    anchor = schedule.anchor or DEFAULT_INTERVAL_ANCHOR
    return anchor.replace(tzinfo=tz) if anchor.tzinfo is None else anchor


def _micros(delta: timedelta) -> int:
    return (delta.days * _DAY_SECONDS + delta.seconds) * 1_000_000 + delta.microseconds


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
