"""Deployments in words, as `deployment ls|inspect` show them: schedules ("every 20 seconds",
"every day at 02:00 Europe/Berlin (cron '0 2 * * *')": common cron shapes are put in words, any
other expression is shown as its cron text), code sources and parameters (`key=value`), never
Python reprs. Shared by the CLI and the control plane (the console's `GET /stats/deployments`)."""

from __future__ import annotations

import json
from typing import Any

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_DAY_NAMES = {day[:3].lower(): n for n, day in enumerate(_DAYS)}
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def describe_interval(seconds: float) -> str:
    """"every 20 seconds", "every 5 minutes", "every hour", "every 1.5 seconds"."""
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def _number(field: str, low: int, high: int) -> int | None:
    return int(field) if field.isdigit() and low <= int(field) <= high else None


def _step(field: str) -> int | None:
    """N of a field written "*/N"."""
    if field.startswith("*/"):
        return _number(field[2:], 1, 59)
    return None


def _numbers(field: str, low: int, high: int) -> list[int] | None:
    """The values of a comma-separated list of plain numbers, or None for any other field."""
    values = [_number(part, low, high) for part in field.split(",")]
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


def _day(field: str) -> int | None:
    if field.lower() in _DAY_NAMES:
        return _DAY_NAMES[field.lower()]
    number = _number(field, 0, 7)
    return None if number is None else number % 7


def _days(field: str) -> str | None:
    """"Monday", "Monday and Thursday", "weekday (Monday to Friday)"."""
    if field in ("1-5", "mon-fri", "MON-FRI"):
        return "weekday (Monday to Friday)"
    if field in ("0,6", "6,0", "sat,sun", "SAT,SUN"):
        return "Saturday and Sunday"
    days = [_day(part) for part in field.split(",")]
    if any(d is None for d in days):
        return None
    names = [_DAYS[d] for d in days]  # type: ignore[index]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_cron(expression: str) -> str | None:
    """The words of a common 5-field cron shape (every N minutes, hourly at :MM, every N hours,
    daily at HH:MM, weekly on a day at HH:MM, monthly on day D at HH:MM), or None."""
    fields = expression.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if month != "*":
        return None
    if (minute, hour, dom, dow) == ("*", "*", "*", "*"):
        return "every minute"
    step = _step(minute)
    if step is not None and (hour, dom, dow) == ("*", "*", "*"):
        return "every minute" if step == 1 else f"every {step} minutes"
    at_minute = _number(minute, 0, 59)
    if at_minute is None:
        return None
    if (hour, dom, dow) == ("*", "*", "*"):
        return f"hourly at :{at_minute:02d}"
    hour_step = _step(hour)
    if hour_step is not None and (dom, dow) == ("*", "*"):
        every = "every hour" if hour_step == 1 else f"every {hour_step} hours"
        return f"{every} at :{at_minute:02d}"
    hours = _numbers(hour, 0, 23)
    if hours is None:
        return None
    at = " and ".join(f"{h:02d}:{at_minute:02d}" for h in hours)
    if (dom, dow) == ("*", "*"):
        return f"every day at {at}"
    if dom == "*":
        days = _days(dow)
        return None if days is None else f"every {days} at {at}"
    day_of_month = _number(dom, 1, 31)
    if dow == "*" and day_of_month is not None:
        return f"monthly on the {_ordinal(day_of_month)} at {at}"
    return None


def describe_schedule(schedule: Any, *, parameters: bool = True, status: bool = True,
                      cron_text: bool = True) -> str:
    """A deployment schedule in words: "every 20 seconds", "every day at 02:00 Europe/Berlin
    (cron '0 2 * * *')", "cron '5 4 * 1 *' UTC"; with its parameters and whether it is
    inactive. A table with columns for those leaves them out; `cron_text=False` leaves out
    the cron text of a schedule put in words."""
    if schedule.cron:
        words = describe_cron(schedule.cron)
        cron = f"cron '{schedule.cron}'"
        if words:
            what = f"{words} {schedule.timezone}" + (f" ({cron})" if cron_text else "")
        else:
            what = f"{cron} {schedule.timezone}"
    elif schedule.interval_seconds:
        what = describe_interval(schedule.interval_seconds)
        if schedule.anchor is not None:
            what += f" from {schedule.anchor.isoformat(sep=' ')}"
    else:
        what = "no times"
    if parameters and schedule.parameters:
        what += f" with {describe_parameters(schedule.parameters)}"
    return what + ("" if schedule.active or not status else " (inactive)")


def describe_parameters(parameters: dict[str, Any]) -> str:
    """Parameters as `key=value` pairs, values as JSON (what `--param key=value` takes)."""
    return ", ".join(f"{key}={json.dumps(value, default=str)}"
                     for key, value in parameters.items()) or "-"


def describe_source(source: Any) -> str:
    """Where workers get a deployment's code: "local path /x", "git https://… @ main
    (subdir)", "bundle sha256 abcd1234ef56… (requirements.txt)"."""
    kind = getattr(source.kind, "value", source.kind)
    if kind == "git":
        what = f"git {source.repository or '?'} @ {source.ref or 'its default branch'}"
        if source.subdirectory:
            what += f" ({source.subdirectory})"
    elif kind == "bundle":
        what = f"bundle sha256 {(source.bundle_sha256 or '?')[:12]}…"
    else:
        what = f"local path {source.path or '?'}"
    if source.requirements:
        what += f", installs {source.requirements}"
    return what
