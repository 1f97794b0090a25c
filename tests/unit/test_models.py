"""The wire contract: states and records the engine builds survive a JSON round trip."""

from __future__ import annotations

import pytest

from sluice import models
from sluice.models import NAMED_STATES, State, StateType, TaskRun, new_id, new_state


def test_every_named_state_has_its_type():
    for name, state_type in NAMED_STATES.items():
        state = getattr(models, name)()
        assert state.name == name and state.type is state_type


def test_fast_built_state_round_trips_and_keeps_result_private():
    state = new_state(StateType.FAILED, message="x" * 10_000, details={"code": 3})
    state._result = ValueError("kept in process")
    data = state.model_dump_json()
    again = State.model_validate_json(data)
    assert again.type is StateType.FAILED and again.details == {"code": 3}
    assert len(again.message) == models.MAX_STATE_MESSAGE_CHARS
    assert "kept in process" not in data


def test_state_validation_refuses_unknown_types_and_fields():
    with pytest.raises(Exception):
        State.model_validate({"type": "EXPLODED"})
    with pytest.raises(Exception):
        State.model_validate({"type": "FAILED", "color": "red"})


def test_terminal_types():
    assert {t for t in StateType if t.is_terminal} == set(models.TERMINAL_STATE_TYPES)
    assert models.Completed().is_terminal and not models.Running().is_terminal


def test_ids_sort_by_creation_time():
    ids = [new_id() for _ in range(50)]
    assert len(set(ids)) == 50 and all(len(i) == 32 for i in ids)
    assert ids[0] < ids[-1]


def test_task_run_round_trip():
    run = TaskRun(id=new_id(), flow_run_id="f", task_name="t", name="t-0",
                  state=models.Completed())
    assert TaskRun.model_validate_json(run.model_dump_json()) == run
