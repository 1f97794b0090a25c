"""State constructors as Prefect users import them (`from sluice.states import Completed`).

Return one from a flow or task to decide how its run ends:

    @flow
    def nightly(day: str):
        if already_loaded(day):
            return Completed(message="skipped")
        ...

The same names are in `sluice` and in `sluice.models` (the wire types).
"""

from __future__ import annotations

from .models.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    TimedOut,
)

__all__ = [
    "State", "StateType", "Scheduled", "Late", "AwaitingRetry", "Pending", "Running", "Retrying",
    "Paused", "Cancelling", "Cancelled", "Completed", "Cached", "Failed", "TimedOut", "Crashed",
]
