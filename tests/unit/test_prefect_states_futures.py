"""Issue 14: states decide outcomes, and futures behave as Prefect users expect."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, NamedTuple

import pytest
from pydantic import BaseModel

from sluice import (
    Cancelled,
    Completed,
    Failed,
    Running,
    TaskFutureList,
    allow_failure,
    flow,
    task,
    unmapped,
)
from sluice.exceptions import CancelledRun, FailedRun, UpstreamFailed
from sluice.models import State, StateType


@task
def one(x: Any) -> Any:
    return x


@task
def boom(message: str = "boom") -> None:
    raise ValueError(message)


def _task_runs_by_name(reporter) -> dict[str, Any]:
    return {t.name: t for t in reporter.task_runs.values()}


# -- states decide outcomes ------------------------------------------------------------------

def test_a_flow_that_returns_completed_ends_completed_with_its_message(reporter):
    # Given a flow that skips its work by returning a Completed state
    @flow
    def nightly():
        return Completed(message="skipped")

    # When it runs, Then it ends in that state and its caller gets None (no data)
    state = nightly(return_state=True)
    assert state.type is StateType.COMPLETED and state.message == "skipped"
    assert nightly() is None


def test_a_returned_completed_state_carries_its_data_and_name(reporter):
    @flow
    def nightly():
        return Completed(message="already loaded", name="Skipped", data={"rows": 0})

    state = nightly(return_state=True)
    assert state.name == "Skipped" and state.result() == {"rows": 0}
    assert nightly() == {"rows": 0}


def test_a_flow_that_returns_failed_ends_failed_and_its_caller_raises(reporter):
    # Given a flow that decides it failed without raising
    @flow
    def check():
        return Failed(message="3 rows did not validate")

    # When it runs, Then it is Failed with that message, and calling it raises FailedRun
    state = check(return_state=True)
    assert state.is_failed() and state.message == "3 rows did not validate"
    with pytest.raises(FailedRun, match="3 rows did not validate"):
        check()


def test_a_returned_failed_state_with_an_exception_raises_that_exception(reporter):
    @flow
    def check():
        return Failed(message="bad input", data=KeyError("day"))

    with pytest.raises(KeyError):
        check()


def test_a_flow_that_returns_cancelled_ends_cancelled_and_is_not_retried(reporter):
    calls = []

    @flow(retries=2)
    def maybe():
        calls.append(1)
        return Cancelled(message="nothing to do today")

    state = maybe(return_state=True)
    assert state.is_cancelled() and state.message == "nothing to do today"
    assert len(calls) == 1
    with pytest.raises(CancelledRun, match="nothing to do today"):
        maybe()


def test_a_returned_state_that_is_not_final_fails_the_run_with_the_fix(reporter):
    @flow
    def odd():
        return Running()

    state = odd(return_state=True)
    assert state.is_failed() and "returned a Running state" in state.message
    assert "return one of those" in state.message


def test_a_task_that_returns_a_state_ends_in_it(reporter):
    # Given tasks that return Completed (named Skipped) and Failed states
    @task
    def skip():
        return Completed(message="cached elsewhere", name="Skipped")

    @task
    def refuse():
        return Failed(message="not today")

    @flow
    def pipeline():
        skipped = skip(return_state=True)
        refused = refuse(return_state=True)
        return skipped.name, refused.type, refused.message

    # When the flow runs, Then each task run ends in the state it returned
    assert pipeline() == ("Skipped", StateType.FAILED, "not today")
    runs = _task_runs_by_name(reporter)
    assert runs["skip-0"].state.name == "Skipped"
    assert runs["refuse-0"].state.is_failed()


def test_a_task_returning_failed_fails_its_caller_with_the_message(reporter):
    @task
    def refuse():
        return Failed(message="not today")

    @flow
    def pipeline():
        return refuse()

    with pytest.raises(FailedRun, match="not today"):
        pipeline()


def test_a_flow_that_returns_futures_ends_by_them_and_its_caller_gets_their_values(reporter):
    @flow
    def fan_out():
        return [one.submit(1), one.submit(2)]

    state = fan_out(return_state=True)
    assert state.is_completed() and state.message == "All states completed."
    assert fan_out() == [1, 2]


def test_futures_returned_in_a_dict_or_beside_values_give_their_values(reporter):
    @flow
    def as_dict():
        return {"a": one.submit(1), "b": 2}

    @flow
    def mixed():
        return [one.submit(3), "plain"]

    assert as_dict() == {"a": 1, "b": 2}
    assert mixed() == [3, "plain"]


def test_a_flow_that_returns_a_failed_future_fails_and_raises_its_error(reporter):
    @flow
    def fan_out():
        return [one.submit(1), boom.submit("second")]

    # When it runs, Then it is Failed ("1/2 states failed."), the caller gets the task's error,
    # and without raising it gets the value and the failed state in place
    state = fan_out(return_state=True)
    assert state.is_failed() and state.message == "1/2 states failed."
    value, failed = state.result(raise_on_failure=False)
    assert value == 1 and isinstance(failed, State) and failed.is_failed()
    with pytest.raises(ValueError, match="second"):
        fan_out()


def test_a_flow_that_returns_task_states_gets_the_states_back(reporter):
    @flow
    def pipeline():
        return one(1, return_state=True), one(2, return_state=True)

    first, second = pipeline()
    assert isinstance(first, State) and first.result() == 1 and second.result() == 2


def test_a_flow_that_returns_a_failed_task_state_fails(reporter):
    @flow
    def pipeline():
        return boom("inner", return_state=True)

    state = pipeline(return_state=True)
    assert state.is_failed() and state.message == "1/1 states failed."
    assert state.result(raise_on_failure=False).is_failed()
    with pytest.raises(ValueError, match="inner"):
        pipeline()


def test_a_cancelled_state_among_returned_states_cancels_the_flow(reporter):
    @flow
    def pipeline():
        return [one(1, return_state=True), Cancelled(message="stop")]

    state = pipeline(return_state=True)
    assert state.is_cancelled() and state.message == "1/2 states cancelled."


# -- states as task inputs ---------------------------------------------------------------------

def test_a_completed_state_passed_to_a_task_is_its_value_and_its_upstream(reporter):
    @flow
    def pipeline():
        state = one.submit(20, return_state=True)
        return one(state)  # the state itself is the argument

    assert pipeline() == 20
    runs = _task_runs_by_name(reporter)
    assert runs["one-1"].upstream_task_run_ids == [runs["one-0"].id]


def test_a_failed_state_passed_to_a_task_fails_it_naming_the_upstream(reporter):
    # Given a failed upstream whose state is passed on (a deliberate difference: Prefect
    # leaves the downstream NotReady; here it ends Failed and names the upstream)
    @flow
    def pipeline():
        state = boom.submit(return_state=True)
        downstream = one(state, return_state=True)
        return downstream.is_failed(), downstream.message, downstream.result(False)

    failed, message, error = pipeline()
    assert failed and "upstream task run 'boom-0' ended Failed" in message
    assert "allow_failure" in message and isinstance(error, UpstreamFailed)


def test_a_state_the_user_made_can_be_passed_as_an_input(reporter):
    @flow
    def pipeline():
        ok = one(Completed(data=5))
        refused = one(Failed(message="no"), return_state=True)
        return ok, refused.message

    ok, message = pipeline()
    assert ok == 5 and message.startswith("an upstream state ended Failed: no")


def test_allow_failure_passes_a_failed_states_exception(reporter):
    @flow
    def pipeline():
        state = boom.submit("x", return_state=True)
        return one(allow_failure(state))

    error = pipeline()
    assert isinstance(error, ValueError) and str(error) == "x"


# -- futures ----------------------------------------------------------------------------------

def test_future_state_answers_at_once_while_the_run_is_running(reporter):
    gate = threading.Event()
    started = threading.Event()

    @task
    def blocked():
        started.set()
        gate.wait(10)
        return "done"

    @flow
    def pipeline():
        future = blocked.submit()
        before = future.state  # Pending or Running: it does not wait
        started.wait(10)
        during = future.state
        gate.set()
        future.wait()
        return before.type, during.type, future.state.type, future.result()

    before, during, after, value = pipeline()
    assert before in (StateType.PENDING, StateType.RUNNING)
    assert during is StateType.RUNNING
    assert after is StateType.COMPLETED and value == "done"


def test_submit_and_map_accept_return_state(reporter):
    @flow
    def pipeline():
        submitted = one.submit(1, return_state=True)
        mapped = one.map([2, 3], return_state=True)
        failed = boom.submit(return_state=True)  # seen by the caller: does not fail the flow
        return submitted, mapped, failed

    submitted, mapped, failed = pipeline()
    assert isinstance(submitted, State) and submitted.result() == 1
    assert [s.result() for s in mapped] == [2, 3]
    assert failed.is_failed()
    assert reporter.last_flow_run().state.is_completed()


@dataclasses.dataclass(frozen=True)
class Pair:
    left: Any
    right: Any


class Order(BaseModel):
    id: Any
    lines: list[Any]


class Point(NamedTuple):
    x: Any
    y: Any


def test_futures_inside_collections_dataclasses_and_models_are_resolved(reporter):
    @task
    def show(value: Any) -> Any:
        return value

    @flow
    def pipeline():
        a, b = one.submit("a"), one.submit(2)
        return show({a: b, "list": [a, (b, {b})]}), show(Pair(a, [b])), \
            show(Order(id=a, lines=[b, b])), show(Point(a, b))

    mapping, pair, order, point = pipeline()
    assert mapping == {"a": 2, "list": ["a", (2, {2})]}
    assert pair == Pair("a", [2])
    assert order == Order(id="a", lines=[2, 2])
    assert point == Point("a", 2) and isinstance(point, Point)
    runs = _task_runs_by_name(reporter)
    assert sorted(runs["show-0"].upstream_task_run_ids) == sorted(
        [runs["one-0"].id, runs["one-1"].id])


def test_unchanged_arguments_are_passed_as_the_same_objects(reporter):
    payload = {"k": [1, 2]}

    @task
    def same(value: Any) -> bool:
        return value is payload

    @flow
    def pipeline():
        return same(payload)

    assert pipeline() is True


def test_map_keeps_upstream_links_for_futures_passed_whole(reporter):
    @task
    def add(x: int, y: int) -> int:
        return x + y

    @flow
    def pipeline():
        base = one.submit(10)
        other = one.submit(100)
        futures = add.map([1, 2], unmapped(base))
        more = add.map([3], other)  # a future is not iterable: passed whole, as in Prefect 3
        return futures, more

    futures, more = pipeline()
    runs = _task_runs_by_name(reporter)
    assert runs["add-0"].upstream_task_run_ids == [runs["one-0"].id]
    assert runs["add-1"].upstream_task_run_ids == [runs["one-0"].id]
    assert runs["add-2"].upstream_task_run_ids == [runs["one-1"].id]
    assert futures.result() == [11, 12] and more.result() == [103]


def test_map_returns_a_future_list_with_result_and_wait(reporter):
    @flow
    def pipeline():
        futures = one.map([1, 2, 3])
        assert isinstance(futures, TaskFutureList) and isinstance(futures, list)
        futures.wait()
        assert all(f.done() for f in futures)
        failing = boom.map(["a", "b"])
        errors = failing.result(raise_on_failure=False)
        return futures.result(), [str(e) for e in errors]

    assert pipeline() == ([1, 2, 3], ["a", "b"])


def test_a_future_list_passed_to_a_task_arrives_as_a_list_of_values(reporter):
    @task
    def total(values: list[int]) -> tuple[str, int]:
        return type(values).__name__, sum(values)

    @flow
    def pipeline():
        return total(one.map([1, 2, 3]))

    assert pipeline() == ("list", 6)


def test_future_list_result_raises_the_first_failure(reporter):
    @flow
    def pipeline():
        return boom.map(["first", "second"]).result()

    with pytest.raises(ValueError, match="first"):
        pipeline()


def test_map_over_an_allow_failure_list_wraps_each_element(reporter):
    @flow
    def pipeline():
        upstream = [boom.submit("bad"), one.submit(1)]
        return one.map(allow_failure(upstream)).result()

    error, value = pipeline()
    assert isinstance(error, ValueError) and value == 1


def test_wait_for_on_a_subflow_waits_and_a_failed_upstream_fails_it(reporter):
    ran = []

    @flow
    def child(x: int) -> int:
        ran.append(x)
        return x * 2

    @flow
    def parent():
        ok = one.submit(1)
        bad = boom.submit()
        first = child(1, wait_for=[ok])
        second = child(2, wait_for=[bad], return_state=True)
        return first, second

    first, second = parent()
    assert first == 2 and ran == [1]
    assert second.is_failed() and "upstream task run 'boom-0' ended Failed" in second.message


def test_futures_and_states_passed_to_a_subflow_are_resolved(reporter):
    @flow
    def child(x: int, items: list[int]) -> int:
        return x + sum(items)

    @flow
    def parent():
        return child(one.submit(1), [one.submit(2), one(3, return_state=True)])

    assert parent() == 6


def test_an_unobserved_failed_submit_still_fails_the_flow(reporter):
    # A deliberate difference: Prefect completes such a flow; here the failure is not lost
    @flow
    def careless():
        boom.submit("lost")
        return Completed(message="all good?")

    state = careless(return_state=True)
    assert state.is_failed() and "boom-0" in state.message
