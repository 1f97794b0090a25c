"""What a returned value says about how its run ends (Prefect's "final state determination").

* A state made by user code (`Completed(message="skipped")`, `Failed(...)`, `Cancelled(...)`)
  is the run's final state as is; the caller gets its `data` (or, failed, an exception).
* A run's state (from `return_state=True` or `future.state`), a `TaskFuture`, or a
  list/tuple/set made only of these decide the outcome from theirs: all completed ->
  Completed, any cancelled -> Cancelled, otherwise Failed. The caller gets the same shape back
  with futures replaced by their values and states kept as states; a failed outcome raises the
  first failure's exception (`.result(raise_on_failure=False)` gives the states instead).
* Anything else: the run completed with that value.
"""

from __future__ import annotations

from typing import Any

from ..models import State, StateType, new_state
from .futures import TaskFuture

_COLLECTIONS = (list, tuple, set, frozenset)
_PLAIN = frozenset({int, float, str, bytes, bool, type(None), dict})
_FINAL_TYPES = (StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED)


def is_outcome(value: Any) -> bool:
    """Whether a returned value decides the run's final state (cheap: the hot path asks)."""
    if type(value) in _PLAIN:
        return False
    if isinstance(value, (State, TaskFuture)):
        return True
    if type(value) in _COLLECTIONS and value:
        return all(isinstance(v, (State, TaskFuture)) for v in value)
    return False


def outcome_of(value: Any, what: str) -> State:
    """The final state that a returned state, future or collection of them decides (see the
    module doc); its result is what the caller gets. `what` names the run in messages."""
    if isinstance(value, State) and not (value.__pydantic_private__ or {}).get("_of_run"):
        return _manual(value, what)
    if isinstance(value, (State, TaskFuture)):
        state = _member(value)
        data = state._result if isinstance(value, TaskFuture) else value  # type: ignore[attr-defined]
        return _aggregate([state], data)
    states = [_member(item) for item in value]
    members = [s._result if isinstance(item, TaskFuture) and s.is_completed() else  # type: ignore[attr-defined]
               (s if isinstance(item, TaskFuture) else item)
               for item, s in zip(value, states)]
    return _aggregate(states, members if type(value) is list else type(value)(members))


def _member(item: State | TaskFuture[Any]) -> State:
    if isinstance(item, TaskFuture):
        item._observed = True  # returned: its outcome is the run's, so it is not "unobserved"
        return item.final_state()
    return item


def _aggregate(states: list[State], data: Any) -> State:
    total = len(states)
    bad = [s for s in states if not s.is_completed()]
    not_final = sum(1 for s in bad if not s.is_terminal)
    if not bad:
        end = new_state(StateType.COMPLETED, message="All states completed.")
    elif any(s.is_cancelled() for s in bad):
        n = sum(1 for s in bad if s.is_cancelled())
        end = new_state(StateType.CANCELLED, message=f"{n}/{total} states cancelled.")
    elif not_final:
        end = new_state(StateType.FAILED, message=f"{not_final}/{total} states are not final "
                                                  f"(wait for a future before returning its state).")
    else:
        end = new_state(StateType.FAILED, message=f"{len(bad)}/{total} states failed.")
    end._result = data  # type: ignore[attr-defined]
    return end


def _manual(state: State, what: str) -> State:
    """A new final state like the user's (the run gets its own timestamp), with its data."""
    if state.type not in _FINAL_TYPES:
        failed = new_state(
            StateType.FAILED,
            message=f"{what} returned a {state.name} state; a run can only end Completed, Failed, "
                    f"Cancelled or Crashed: return one of those",
        )
        failed._result = failure_of(failed)  # type: ignore[attr-defined]
        return failed
    final = new_state(state.type, state.name, state.message, details=state.details)
    final._result = state._result  # type: ignore[attr-defined]
    return final


def failure_of(state: State) -> BaseException:
    """The exception a non-completed final state stands for: its own; for states returned by
    user code, the first failed member's; else one built from its message."""
    from ..exceptions import CancelledRun, FailedRun

    data = state._result  # type: ignore[attr-defined]
    if isinstance(data, BaseException):
        return data
    if isinstance(data, State) and data is not state and not data.is_completed():
        return failure_of(data)
    if type(data) in _COLLECTIONS:
        for member in data:
            if isinstance(member, State) and not member.is_completed():
                return failure_of(member)
    text = f"{state.name}: {state.message}" if state.message else state.name
    return CancelledRun(text) if state.is_cancelled() else FailedRun(text)
