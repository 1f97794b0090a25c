"""Durations as people type them (`90s`, `10m`, `2h`, `1d`, `1h30m`) and start times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, option: str) -> float:
    """`90`, `90s`, `10m`, `2h`, `1d`, `1w` (or `1h30m`) as seconds; refuses anything else."""
    import re

    from ..exceptions import ConfigurationError

    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise ConfigurationError(f"{option} {text!r} is not a duration; write e.g. 90s, 10m, "
                                 "2h, 1d or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def start_time(start_in: str | None, start_at: datetime | None) -> datetime | None:
    """When `--start-in` / `--start-at` say the run starts (UTC), or None for now."""
    from ..exceptions import ConfigurationError

    if start_in is not None and start_at is not None:
        raise ConfigurationError("--start-in and --start-at both say when to start: give one")
    if start_at is not None:
        return (start_at if start_at.tzinfo else start_at.astimezone()).astimezone(timezone.utc)
    if start_in is None:
        return None
    seconds = parse_duration(start_in, "--start-in")
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)
