"""Tasks inside flows: tracking, retries, timeouts, futures, map, hooks, async."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sluice import as_completed, flow, task, unmapped, wait
from sluice.exceptions import InvalidMapArguments, SluiceError
from sluice.models import StateType


def test_task_called_in_a_flow_is_tracked_and_returns_its_value(reporter):
    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow
    def pipeline():
        return add(1, 2) + add(3, 4)

    # When the flow runs, Then the value comes back and each call is a task run
    assert pipeline() == 10
    run = reporter.last_flow_run()
    task_runs = sorted(reporter.task_runs_of(run.id), key=lambda t: t.name)
    assert [t.name for t in task_runs] == ["add-0", "add-1"]
    for t in task_runs:
        assert reporter.state_names_of(t.id) == ["Pending", "Running", "Completed"]
        assert t.run_count == 1 and t.start_time and t.end_time >= t.start_time


def test_task_outside_a_flow_is_a_tracked_run(reporter):
    # Given a task with retries, called with no flow around it (Prefect 3)
    calls = []

    @task(retries=3)
    def boom():
        calls.append(1)
        raise ValueError("retried outside a flow too")

    # When it is called, Then it is retried and fails with its error, as a tracked task run
    with pytest.raises(ValueError):
        boom()
    assert len(calls) == 4
    [task_run] = reporter.task_runs.values()
    assert task_run.run_count == 4 and task_run.state.name == "Failed"
    # And .fn stays the plain function; .submit() still needs a flow
    calls.clear()
    with pytest.raises(ValueError):
        boom.fn()
    assert len(calls) == 1
    with pytest.raises(SluiceError, match="inside a function decorated with @flow"):
        boom.submit()


def test_retries_with_delays_then_success(reporter):
    attempts = []

    @task(retries=3, retry_delay_seconds=[0.01, 0.02, 0.03])
    def flaky():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    @flow
    def pipeline():
        return flaky()

    assert pipeline() == "ok"
    (t,) = reporter.task_runs.values()
    assert t.run_count == 3
    assert reporter.state_names_of(t.id) == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying",
        "Completed"]
    assert attempts[1] - attempts[0] >= 0.01 and attempts[2] - attempts[1] >= 0.02


def test_retries_exhausted_fail_the_task_and_the_flow(reporter):
    @task(retries=1)
    def always():
        raise RuntimeError("broken")

    @flow
    def pipeline():
        return always()

    state = pipeline(return_state=True)
    assert state.type is StateType.FAILED and "RuntimeError: broken" in state.message
    (t,) = reporter.task_runs.values()
    assert t.run_count == 2 and t.state.name == "Failed"
    with pytest.raises(RuntimeError, match="broken"):
        pipeline()


def test_retry_condition_fn_can_stop_retries(reporter):
    calls = []

    @task(retries=5, retry_condition_fn=lambda t, run, state: "transient" in state.message)
    def work():
        calls.append(1)
        raise ValueError("permanent")

    @flow
    def pipeline():
        return work(return_state=True)

    # (a flow that returns a failed task state fails too, and carries that state)
    assert pipeline(return_state=True).result(raise_on_failure=False).is_failed()
    assert len(calls) == 1


def test_retry_jitter_stays_within_its_factor(reporter):
    t = task(retries=1, retry_delay_seconds=10, retry_jitter_factor=0.5)(lambda: None)
    from sluice.engine.task_engine import TaskRunner

    @flow
    def pipeline():
        from sluice.engine.context import flow_run_ctx

        runner = TaskRunner(t, flow_run_ctx.get(), (), {}, None)
        return [runner._retry_delay(1) for _ in range(200)]

    delays = pipeline()
    assert all(5 <= d <= 15 for d in delays) and len(set(delays)) > 1


def test_sync_task_timeout(reporter):
    release = threading.Event()

    @task(timeout_seconds=0.1)
    def blocks():
        release.wait(5)

    @flow
    def pipeline():
        return blocks(return_state=True)

    started = time.monotonic()
    state = pipeline(return_state=True).result(raise_on_failure=False)
    release.set()
    assert state.name == "TimedOut" and state.type is StateType.FAILED
    assert "timeout of 0.1 s" in state.message
    assert time.monotonic() - started < 4


def test_async_task_timeout_and_retry(reporter):
    calls = []

    @task(timeout_seconds=0.05, retries=1)
    async def slow():
        calls.append(1)
        await asyncio.sleep(5)

    @flow
    async def pipeline():
        return await slow(return_state=True)

    state = asyncio.run(pipeline(return_state=True)).result(raise_on_failure=False)
    assert state.name == "TimedOut" and len(calls) == 2


def test_async_tasks_in_async_flow_and_sync_flow(reporter):
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @flow
    async def async_pipeline():
        return await asyncio.gather(double(1), double(2))

    @flow
    def sync_pipeline():
        return [double(3), double.submit(4).result()]

    assert asyncio.run(async_pipeline()) == [2, 4]
    assert sync_pipeline() == [6, 8]


def test_submit_runs_concurrently_with_max_workers(reporter):
    active, peak = [0], [0]
    lock = threading.Lock()

    @task
    def work(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return i

    @flow(max_workers=3)
    def pipeline():
        futures = [work.submit(i) for i in range(9)]
        return [f.result() for f in futures]

    assert pipeline() == list(range(9))
    assert 2 <= peak[0] <= 3


def test_map_returns_futures_in_input_order_with_unmapped(reporter):
    @task
    def scale(x, factor, offset=0):
        time.sleep(0.001 * (5 - x))  # later inputs finish first
        return x * factor + offset

    @flow
    def pipeline():
        futures = scale.map([1, 2, 3], unmapped(10), offset=[0, 1, 2])
        return [f.result() for f in futures]

    assert pipeline() == [10, 21, 32]
    names = sorted(t.name for t in reporter.task_runs.values())
    assert names == ["scale-0", "scale-1", "scale-2"]


def test_map_over_unequal_lengths_is_refused(reporter):
    @task
    def pair(a, b):
        return a, b

    @flow
    def pipeline():
        return pair.map([1, 2, 3], [1, 2])

    with pytest.raises(InvalidMapArguments, match="argument 1 has 3, argument 2 has 2"):
        pipeline()


def test_map_needs_an_iterable(reporter):
    @task
    def one(a):
        return a

    @flow
    def pipeline():
        return one.map("abc")  # a string is passed whole, so nothing is mapped

    with pytest.raises(InvalidMapArguments, match="no iterable"):
        pipeline()


def test_map_over_empty_input_gives_no_futures(reporter):
    @task
    def one(a):
        return a

    @flow
    def pipeline():
        return one.map([])

    assert pipeline() == []


def test_future_result_timeout_and_raise_on_failure(reporter):
    gate = threading.Event()

    @task
    def waits():
        gate.wait(5)
        return "late"

    @task
    def fails():
        raise KeyError("missing")

    @flow
    def pipeline():
        slow = waits.submit()
        with pytest.raises(TimeoutError):
            slow.result(timeout=0.05)
        gate.set()
        bad = fails.submit()
        error = bad.result(raise_on_failure=False)
        return slow.result(), error

    value, error = pipeline()
    assert value == "late" and isinstance(error, KeyError)


def test_wait_for_orders_tasks_and_upstream_failure_propagates(reporter):
    order = []

    @task
    def first():
        time.sleep(0.05)
        order.append("first")

    @task
    def second():
        order.append("second")

    @task
    def broken():
        raise ValueError("x")

    @flow
    def pipeline():
        a = first.submit()
        b = second.submit(wait_for=[a])
        b.result()
        c = broken.submit()
        d = second.submit(wait_for=[c])
        return d.result(raise_on_failure=False)

    error = pipeline()
    assert order == ["first", "second"]
    assert "upstream task run 'broken-0'" in str(error)
    d = [t for t in reporter.task_runs.values() if t.name == "second-1"][0]
    assert d.state.is_failed() and d.upstream_task_run_ids


def test_futures_as_arguments_are_resolved(reporter):
    @task
    def one():
        return 1

    @task
    def add(a, b):
        return a + b

    @flow
    def pipeline():
        x = one.submit()
        return add.submit(x, [x, 2][0]).result()

    assert pipeline() == 2


def test_wait_and_as_completed(reporter):
    @task
    def sleepy(t):
        time.sleep(t)
        return t

    @flow
    def pipeline():
        futures = [sleepy.submit(t) for t in (0.15, 0.0, 0.05)]
        done, not_done = wait(futures, timeout=0.1)
        early = {f.result() for f in done}
        order = [f.result() for f in as_completed(futures)]
        return early, not_done, order

    early, not_done, order = pipeline()
    assert early == {0.0, 0.05} and len(not_done) == 1
    assert sorted(order) == [0.0, 0.05, 0.15] and order[-1] == 0.15


def test_task_hooks_receive_task_run_and_state(reporter):
    seen = []

    def on_ok(tk, run, state):
        seen.append(("ok", tk.name, run.name, state.name))

    def on_bad(tk, run, state):
        seen.append(("bad", tk.name, run.name, state.name))

    def broken_hook(tk, run, state):
        raise RuntimeError("hook bug")

    good = task(on_completion=[on_ok, broken_hook])(lambda: 1)
    bad = task(name="bad", on_failure=on_bad)(lambda: 1 / 0)

    @flow
    def pipeline():
        good()
        bad(return_state=True)

    pipeline()
    assert ("ok", "<lambda>", "<lambda>-0", "Completed") in seen
    assert ("bad", "bad", "bad-0", "Failed") in seen
    assert any("hook bug" in r.message for r in reporter.logs)


def test_unobserved_failed_future_fails_the_flow(reporter):
    @task
    def broken():
        raise ValueError("nobody looked")

    @flow
    def pipeline():
        broken.submit()
        return "done"

    state = pipeline(return_state=True)
    assert state.is_failed() and "broken-0" in state.message


def test_observed_failed_future_does_not_fail_the_flow(reporter):
    @task
    def broken():
        raise ValueError("handled")

    @flow
    def pipeline():
        f = broken.submit()
        return type(f.result(raise_on_failure=False)).__name__

    assert pipeline() == "ValueError"


def test_returned_futures_are_resolved(reporter):
    @task
    def one(x):
        return x

    @flow
    def pipeline():
        return one.map([1, 2])

    assert pipeline() == [1, 2]


def test_nested_task_records_its_parent(reporter):
    @task
    def inner():
        return 1

    @task
    def outer():
        return inner() + 1

    @flow
    def pipeline():
        return outer()

    assert pipeline() == 2
    by_name = {t.name: t for t in reporter.task_runs.values()}
    assert by_name["inner-0"].parent_task_run_id == by_name["outer-0"].id
