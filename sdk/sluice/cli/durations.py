"""Durations as people type them: `90s`, `10m`, `2h`, `1d`, `1h30m`."""

from __future__ import annotations

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
