"""Flows: parameters, subflows, retries, timeouts, hooks, logging, final states."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import BaseModel, SecretStr

from sluice import flow, get_run_logger, task
from sluice.exceptions import MissingContextError, ParameterValidationError
from sluice.models import StateType


class Window(BaseModel):
    start: int
    end: int


def test_parameters_are_coerced_from_type_hints(reporter):
    @flow
    def pipeline(day: int, window: Window, label: str = "x"):
        return day, window, label

    day, window, label = pipeline("7", {"start": 1, "end": "2"})
    assert day == 7 and window == Window(start=1, end=2) and label == "x"
    run = reporter.last_flow_run()
    assert run.parameters == {"day": 7, "window": {"start": 1, "end": 2}, "label": "x"}


def test_invalid_parameters_fail_the_run_before_it_runs(reporter):
    ran = []

    @flow
    def pipeline(day: int, window: Window):
        ran.append(1)

    state = pipeline("monday", {"start": 1}, return_state=True)
    assert state.is_failed() and not ran
    assert "day" in state.message and "window.end" in state.message
    assert reporter.state_names_of(reporter.last_flow_run().id) == ["Pending", "Failed"]
    with pytest.raises(ParameterValidationError) as info:
        pipeline("monday", {"start": 1, "end": 2})
    assert info.value.details[0]["field"] == "day"


def test_validation_can_be_turned_off(reporter):
    @flow(validate_parameters=False)
    def pipeline(day: int):
        return day

    assert pipeline("monday") == "monday"


def test_wrong_arguments_raise_like_a_plain_call(reporter):
    @flow
    def pipeline(day: int):
        return day

    with pytest.raises(TypeError):
        pipeline(1, 2)


def test_secret_parameters_are_stored_masked(reporter):
    @flow
    def pipeline(password: SecretStr):
        return password.get_secret_value()

    assert pipeline("hunter2") == "hunter2"
    assert "hunter2" not in reporter.last_flow_run().model_dump_json()


def test_subflow_is_its_own_run_linked_to_the_parent(reporter):
    @flow
    def child(x: int):
        return x * 2

    @flow
    def parent():
        return child(21)

    assert parent() == 42
    runs = list(reporter.flow_runs.values())
    parent_run = next(r for r in runs if r.flow_name == "parent")
    child_run = next(r for r in runs if r.flow_name == "child")
    assert child_run.parent_flow_run_id == parent_run.id
    assert child_run.state.is_completed() and parent_run.state.is_completed()


def test_failing_subflow_fails_its_parent(reporter):
    @flow
    def child():
        raise ValueError("child broke")

    @flow
    def parent():
        child()

    state = parent(return_state=True)
    assert state.is_failed() and "child broke" in state.message
    child_run = next(r for r in reporter.flow_runs.values() if r.flow_name == "child")
    assert child_run.state.is_failed()


def test_flow_retries_rerun_the_body(reporter):
    attempts = []

    @flow(retries=2, retry_delay_seconds=0.01)
    def pipeline():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("flaky")
        return "ok"

    assert pipeline() == "ok"
    run = reporter.last_flow_run()
    assert run.run_count == 3
    assert reporter.state_names_of(run.id) == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying",
        "Completed"]


def test_flow_retries_after_failed_tasks(reporter):
    calls = []

    @task
    def sometimes():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first time")

    @flow(retries=1)
    def pipeline():
        sometimes.submit()

    assert pipeline(return_state=True).is_completed()
    assert len(calls) == 2


def test_sync_flow_timeout(reporter):
    release = threading.Event()

    @flow(timeout_seconds=0.1)
    def pipeline():
        release.wait(5)

    state = pipeline(return_state=True)
    release.set()
    assert state.name == "TimedOut" and state.type is StateType.FAILED


def test_async_flow_timeout(reporter):
    @flow(timeout_seconds=0.05)
    async def pipeline():
        await asyncio.sleep(5)

    state = asyncio.run(pipeline(return_state=True))
    assert state.name == "TimedOut"


def test_flow_hooks(reporter):
    seen = []

    def record(fl, run, state):
        seen.append((fl.name, run.flow_name, state.name))

    @flow(on_completion=record)
    def good():
        return 1

    @flow(on_failure=[record])
    def bad():
        raise ValueError("x")

    @flow(on_crashed=[record])
    def crashes():
        raise KeyboardInterrupt

    good()
    bad(return_state=True)
    with pytest.raises(KeyboardInterrupt):
        crashes()
    assert seen == [("good", "good", "Completed"), ("bad", "bad", "Failed"),
                    ("crashes", "crashes", "Crashed")]


def test_cancellation_hook_runs_when_the_control_plane_aborts(reporter):
    seen = []

    @flow(on_cancellation=lambda fl, run, state: seen.append(state.name))
    def pipeline():
        reporter.abort_next.add(reporter.last_flow_run().id)
        return 1

    state = pipeline(return_state=True)
    assert state.is_cancelled() and seen == ["Cancelled"]


def test_run_logger_and_log_prints(reporter, capsys):
    @task
    def step():
        get_run_logger().warning("from the task")
        print("task print")

    @flow(log_prints=True)
    def pipeline():
        get_run_logger().info("from the flow %d", 1)
        print("flow print")
        step()

    pipeline()
    run = reporter.last_flow_run()
    logs = reporter.logs_of(run.id)
    messages = [r.message for r in logs]
    assert "from the flow 1" in messages and "flow print" in messages
    assert "task print" in messages
    task_line = next(r for r in logs if r.message == "from the task")
    assert task_line.task_run_id is not None and task_line.level.value == "WARNING"
    assert "flow print" in capsys.readouterr().err  # shown on the console too


def test_prints_without_log_prints_stay_plain(reporter, capsys):
    @flow
    def pipeline():
        print("just stdout")

    pipeline()
    assert "just stdout" in capsys.readouterr().out
    assert all(r.message != "just stdout" for r in reporter.logs)


def test_get_run_logger_outside_a_run():
    with pytest.raises(MissingContextError, match="@flow"):
        get_run_logger()


def test_async_flow_with_subflow(reporter):
    @flow
    async def child(x: int):
        await asyncio.sleep(0)
        return x + 1

    @flow
    async def parent():
        return await child(1)

    assert asyncio.run(parent()) == 2


def test_flow_without_control_plane_prints_one_hint(capsys):
    import sluice.engine.reporters as reporters

    reporters._local_reporter = None

    @flow
    def pipeline():
        return 1

    pipeline()
    pipeline()
    err = capsys.readouterr().err
    assert err.count("no control plane configured") == 1
    assert reporters.local_reporter().last_flow_run().state.is_completed()


def test_definitions_never_run_code():
    ran = []

    @flow
    def pipeline():
        ran.append(1)

    @task
    def step():
        ran.append(1)

    pipeline.with_options(retries=1)
    assert ran == [] and pipeline.fn.__name__ == "pipeline" and step.fn.__name__ == "step"


def test_run_times_are_recorded(reporter):
    @flow
    def pipeline():
        time.sleep(0.01)

    pipeline()
    run = reporter.last_flow_run()
    assert run.duration_seconds >= 0.01 and run.run_count == 1
