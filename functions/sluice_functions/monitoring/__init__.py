"""The monitor: crashed runs (expired heartbeats), late runs, and lost queue messages."""

from .monitor import (
    DEFAULT_LATE_GRACE,
    DEFAULT_REPAIR_AFTER,
    MonitorTickResult,
    crash_silent_runs,
    last_sign_of_life,
    mark_late_runs,
    monitor_runs,
)

__all__ = [
    "DEFAULT_LATE_GRACE", "DEFAULT_REPAIR_AFTER", "MonitorTickResult", "crash_silent_runs",
    "last_sign_of_life", "mark_late_runs", "monitor_runs",
]
