"""State types, named states and the `State` wire model."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ._fast import construct


class StateType(str, enum.Enum):
    """The nine state types every run moves through (named states sit on top)."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATE_TYPES


TERMINAL_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)

#: The default name of each state type; other names (Late, Retrying, ...) refine a type.
DEFAULT_STATE_NAMES: dict[StateType, str] = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
}

#: Named states users know, each bound to the one type it refines.
NAMED_STATES: dict[str, StateType] = {
    "Scheduled": StateType.SCHEDULED,
    "Late": StateType.SCHEDULED,
    "AwaitingRetry": StateType.SCHEDULED,
    "Pending": StateType.PENDING,
    "Running": StateType.RUNNING,
    "Retrying": StateType.RUNNING,
    "Paused": StateType.PAUSED,
    "Suspended": StateType.PAUSED,
    "Cancelling": StateType.CANCELLING,
    "Cancelled": StateType.CANCELLED,
    "Completed": StateType.COMPLETED,
    "Cached": StateType.COMPLETED,
    "Failed": StateType.FAILED,
    "TimedOut": StateType.FAILED,
    "Crashed": StateType.CRASHED,
}

#: Longest state message the control plane stores; longer ones are cut by the SDK and refused (413)
#: by the API. Well under DynamoDB's 400 KB item limit.
MAX_STATE_MESSAGE_CHARS = 4_000


_UTC = timezone.utc


def utcnow() -> datetime:
    return datetime.now(_UTC)


class State(BaseModel):
    """One state of a flow run or task run: a type, a name refining it, when, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: StateType
    name: str = ""
    timestamp: datetime = Field(default_factory=utcnow)
    message: str | None = Field(default=None, max_length=MAX_STATE_MESSAGE_CHARS)
    #: For Scheduled/AwaitingRetry: when the run should start.
    scheduled_time: datetime | None = None
    #: Small machine-readable details (exit code, error type, cache key ...).
    details: dict[str, Any] | None = None
    #: In the process that ran it: the return value (Completed) or the exception (otherwise).
    #: Never serialized: results stay on the user's side.
    _result: Any = PrivateAttr(default=None)
    #: Set by the engine on the states of its runs. A state without it was made by user code
    #: (`Completed(...)`, `Failed(...)`): returned by a flow or task, it is the run's final state
    #: as is (Prefect's "manual" states).
    _of_run: bool = PrivateAttr(default=False)

    def result(self, raise_on_failure: bool = True) -> Any:
        """The value this final state carries in the process that ran it; for a failed state,
        raise its exception (or return it when `raise_on_failure=False`)."""
        from ..engine.futures import state_result

        return state_result(self, raise_on_failure)


    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_STATE_TYPES

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def __str__(self) -> str:
        return f"{self.name}({self.message!r})" if self.message else self.name


def _state_post_init(self: State, __context: Any) -> None:
    # The private attributes' defaults, set in one step: pydantic's generic initialisation of
    # them (one `get_default` per attribute) was half the cost of validating a State, and the
    # API validates one per task-run record it ingests.
    _set(self, "__pydantic_private__", {"_result": None, "_of_run": False})
    if not self.name:
        _set(self, "name", DEFAULT_STATE_NAMES[self.type])


_set = object.__setattr__
# After the class is built: pydantic wraps a `model_post_init` defined in the class body with its
# generic private-attribute initialisation; validation calls this one by name instead.
State.model_post_init = _state_post_init  # type: ignore[method-assign]


def new_state(
    type: StateType,
    name: str | None = None,
    message: str | None = None,
    *,
    scheduled_time: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> State:
    """Build a state without validation: the engine's hot path makes many of these."""
    if message is not None and len(message) > MAX_STATE_MESSAGE_CHARS:
        message = message[: MAX_STATE_MESSAGE_CHARS - 1] + "…"
    return construct(State, {
        "type": type,
        "name": name or DEFAULT_STATE_NAMES[type],
        "timestamp": utcnow(),
        "message": message,
        "scheduled_time": scheduled_time,
        "details": details,
    }, {"_result": None, "_of_run": False})


def Scheduled(scheduled_time: datetime | None = None, message: str | None = None) -> State:
    return new_state(StateType.SCHEDULED, "Scheduled", message, scheduled_time=scheduled_time)


def Late(scheduled_time: datetime | None = None, message: str | None = None) -> State:
    return new_state(StateType.SCHEDULED, "Late", message, scheduled_time=scheduled_time)


def AwaitingRetry(scheduled_time: datetime | None = None, message: str | None = None) -> State:
    return new_state(StateType.SCHEDULED, "AwaitingRetry", message, scheduled_time=scheduled_time)


def Pending(message: str | None = None) -> State:
    return new_state(StateType.PENDING, "Pending", message)


def Running(message: str | None = None) -> State:
    return new_state(StateType.RUNNING, "Running", message)


def Retrying(message: str | None = None) -> State:
    return new_state(StateType.RUNNING, "Retrying", message)


def Paused(message: str | None = None) -> State:
    return new_state(StateType.PAUSED, "Paused", message)


#: The name of a PAUSED run that an operator suspended: no attempt holds it until it is resumed.
SUSPENDED_STATE_NAME = "Suspended"


def Suspended(message: str | None = None) -> State:
    """A run suspended by an operator (`sluice flow-run suspend`): set by the control plane
    only; `sluice flow-run resume` queues a new attempt."""
    return new_state(StateType.PAUSED, SUSPENDED_STATE_NAME, message)


def Cancelling(message: str | None = None) -> State:
    return new_state(StateType.CANCELLING, "Cancelling", message)


def _with_data(state: State, data: Any) -> State:
    if not isinstance(state.name, str) or not 0 < len(state.name) <= 64:
        raise ValueError(f"a state's name must be a non-empty string of at most 64 characters, "
                         f"got {state.name!r}; e.g. Completed(name='Skipped')")
    state._result = data
    return state


def Cancelled(message: str | None = None, *, data: Any = None, name: str | None = None) -> State:
    """A Cancelled state; returned by a flow or task, the run ends Cancelled (`data`: what
    `.result(raise_on_failure=False)` gives, e.g. an exception)."""
    return _with_data(new_state(StateType.CANCELLED, name or "Cancelled", message), data)


def Completed(message: str | None = None, details: dict[str, Any] | None = None, *,
              data: Any = None, name: str | None = None) -> State:
    """A Completed state; returned by a flow or task, the run ends Completed with value `data`
    (e.g. `return Completed(message="skipped")`, or `name="Skipped"` for a name of your own)."""
    return _with_data(new_state(StateType.COMPLETED, name or "Completed", message,
                                details=details), data)


def Cached(message: str | None = None, details: dict[str, Any] | None = None) -> State:
    return new_state(StateType.COMPLETED, "Cached", message, details=details)


def Failed(message: str | None = None, details: dict[str, Any] | None = None, *,
           data: Any = None, name: str | None = None) -> State:
    """A Failed state; returned by a flow or task, the run ends Failed (`data`: the exception
    `.result()` raises; without one it raises `FailedRun` with the message)."""
    return _with_data(new_state(StateType.FAILED, name or "Failed", message, details=details),
                      data)


def TimedOut(message: str | None = None) -> State:
    return new_state(StateType.FAILED, "TimedOut", message)


def Crashed(message: str | None = None, details: dict[str, Any] | None = None, *,
            data: Any = None) -> State:
    return _with_data(new_state(StateType.CRASHED, "Crashed", message, details=details), data)
