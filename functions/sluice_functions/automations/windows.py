"""Deadlines of proactive triggers: "03:00 Europe/Berlin" as UTC instants, DST included."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


def latest_deadline(daily_at: str, tz_name: str, now: datetime) -> datetime:
    """The latest instant <= `now` that is `daily_at` (HH:MM) on the wall clock of `tz_name`,
    in UTC. On a day the clock skips that time, the deadline is the first instant after the
    gap (zoneinfo's fold=0 reading); on a day it repeats it, the first occurrence."""
    zone = ZoneInfo(tz_name)
    hours, minutes = (int(part) for part in daily_at.split(":"))
    local_today = now.astimezone(zone).date()
    for days_back in range(0, 3):
        day = local_today - timedelta(days=days_back)
        local = datetime.combine(day, time(hours, minutes), tzinfo=zone)
        candidate = local.astimezone(timezone.utc)
        if candidate <= now:
            return candidate
    raise AssertionError("a deadline within three days always exists")
